"""Tool reliability: failure rates per tool, and the retry, breaker or fallback that helps.

Timeouts are left to the latency analyzer (a timeout too tight is fixed by the timeout).
For the remaining failures of a tool, the order of calls tells the story:

- failures that cluster in time (a failure is followed by another far more often than
  the overall rate) are outages: retrying hammers a dead service, so a circuit breaker;
- independent, retryable failures are what retries fix: the chance that a retry fails
  too is measured from retried calls when the agent retries, else from the call that
  followed each failure, and the attempts are chosen so that little is left;
- failures retries cannot fix, on a read-only tool whose inputs repeat, are served by a
  cache fallback when an earlier success with the same arguments is recent enough.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from typing import Any

from tuneloop.analysis.recommend.common import (
    clamp,
    confidence_above,
    confidence_diff,
    examples,
    is_timeout,
    pct,
    quantile,
    round_up,
    set_value,
)
from tuneloop.analysis.recommend.context import Context
from tuneloop.analysis.recommend.findings import AnalyzerResult, Finding, Impact
from tuneloop.analysis.recommend.window import ToolCallFact
from tuneloop.config.model import ALL_RETRY_ON, RetryOn

MAX_ATTEMPTS = 5
_CODE = re.compile(r"\b([45]\d\d)\b")


def retry_kind(error_type: str | None) -> RetryOn | None:
    """The retry policy's name for a failure kind (``503`` is ``server_error``)."""
    text = (error_type or "").lower()
    code = _CODE.search(text)
    if code is not None:
        value = int(code.group(1))
        if value == 429:
            return "rate_limit"
        return "server_error" if value >= 500 else ("timeout" if value == 408 else None)
    if is_timeout(text):
        return "timeout"
    if "rate" in text or "throttl" in text:
        return "rate_limit"
    if "connect" in text or "reset" in text or "unreachable" in text:
        return "connection"
    if "unavailable" in text or "server" in text or "overload" in text:
        return "server_error"
    return None


def analyze_tools(ctx: Context) -> AnalyzerResult:
    """Tool reliability findings for every tool with enough calls."""
    by_tool: defaultdict[str, list[ToolCallFact]] = defaultdict(list)
    for call in ctx.window.tool_calls:
        by_tool[call.tool].append(call)
    result = AnalyzerResult()
    for tool, calls in sorted(by_tool.items()):
        if len(calls) < ctx.options.min_calls:
            continue
        calls.sort(key=lambda c: (c.started_ms, c.trace_id))
        result += _one_tool(ctx, tool, calls)
    return result


def _one_tool(ctx: Context, tool: str, calls: list[ToolCallFact]) -> AnalyzerResult:
    opts = ctx.options
    n = len(calls)
    failed = [c.failed and not is_timeout(c.error_type) for c in calls]
    failures = [c for c, bad in zip(calls, failed, strict=True) if bad]
    rate = len(failures) / n
    if len(failures) < opts.min_events or rate < opts.min_rate:
        return AnalyzerResult()
    settings = ctx.tool_or_default(tool)
    listed = ctx.tool(tool) is not None
    base: dict[str, Any] = {
        "tool": tool,
        "calls": n,
        "failures": len(failures),
        "failure_rate": round(rate, 4),
        "retryable_failures": sum(c.retryable for c in failures),
        "error_types": _top_errors(failures),
        "side_effect": settings.side_effect if listed else "read (default: tool not in config)",
        "calls_per_day": round(_weighted(ctx, calls) / ctx.window.duration_days, 1),
        "example_trace_ids": examples(c.trace_id for c in failures),
    }
    after_fail = [nxt for prev, nxt in itertools.pairwise(failed) if prev]
    follow_rate = sum(after_fail) / len(after_fail) if after_fail else rate
    base["fail_after_fail_rate"] = round(follow_rate, 4)
    clustered = (
        len(after_fail) >= opts.min_events
        and follow_rate >= max(3 * rate, rate + 0.15)
        and confidence_diff(follow_rate, len(after_fail), rate, n) >= 0.95
    )
    if clustered:
        result = _breaker(ctx, tool, calls, failed, rate, follow_rate, base)
        return result + _cache_fallback(ctx, tool, rate, base, reason="failures cluster")
    retryable = [c for c in failures if c.retryable]
    if len(retryable) >= len(failures) / 2:
        if settings.side_effect != "read":
            note = (
                f"{tool}: {pct(rate)} of calls fail with retryable errors, but the tool has "
                f"side effects ({settings.side_effect}); retries not proposed (make it "
                "idempotent first)"
            )
            return AnalyzerResult(notes=(note,))
        retry = _retry(ctx, tool, calls, failures, retryable, follow_rate, len(after_fail), base)
        if retry.findings:
            return retry
    return _cache_fallback(ctx, tool, rate, base, reason="retries do not remove them")


def _retry(
    ctx: Context,
    tool: str,
    calls: list[ToolCallFact],
    failures: list[ToolCallFact],
    retryable: list[ToolCallFact],
    follow_rate: float,
    follow_n: int,
    base: dict[str, Any],
) -> AnalyzerResult:
    opts = ctx.options
    n = len(calls)
    settings = ctx.tool_or_default(tool)
    current = settings.retry.max_attempts
    retried = [c for c in calls if c.retries > 0]
    attempts = sum(c.retries for c in retried)
    failed_attempts = sum(c.retries - (0 if c.failed else 1) for c in retried)
    if len(retried) >= opts.min_events and attempts:
        again = failed_attempts / attempts
        basis_again = (
            f"{pct(1 - sum(c.failed for c in retried) / len(retried))} of retried calls "
            f"succeed in the window and {pct(again)} of retry attempts fail"
        )
    else:
        # Failures are independent (not clustered): a retry fails like any attempt, and
        # the overall rate estimates that better than the few pairs after a failure.
        again = max(len(failures) / n, follow_rate if follow_n >= opts.min_calls else 0.0)
        basis_again = (
            f"failures are independent (after a failure the next call fails "
            f"{pct(follow_rate)} of the time, {follow_n} pairs), so a retry fails about "
            f"{pct(again)} of the time"
        )
    p_retryable = len(retryable) / n
    target = max(0.005, p_retryable / 8)
    attempts_needed = None
    for total in range(current + 1, MAX_ATTEMPTS + 1):
        if p_retryable * again ** (total - current) <= target:
            attempts_needed = total
            break
    if attempts_needed is None:
        note = (
            f"{tool}: retryable failures ({pct(p_retryable)}) persist across attempts "
            f"({pct(again)} of retries fail again); more retries would not help"
        )
        return AnalyzerResult(notes=(note,))
    residual = p_retryable * again ** (attempts_needed - current)
    after = (len(failures) - len(retryable)) / n + residual
    kinds = sorted({k for c in retryable if (k := retry_kind(c.error_type)) is not None})
    change = [set_value(ctx.doc, ["tools", tool, "retry", "max_attempts"], attempts_needed)]
    missing = [k for k in kinds if k not in settings.retry.retry_on]
    if missing:
        retry_on = [k for k in ALL_RETRY_ON if k in settings.retry.retry_on or k in missing]
        change.append(set_value(ctx.doc, ["tools", tool, "retry", "retry_on"], retry_on))
    share = len(retryable) / len(failures)
    kinds_text = "/".join(sorted({c.error_type or "?" for c in retryable})[:3])
    impact = Impact(
        metric=f"{tool} error rate",
        before=len(failures) / n,
        after=after,
        unit="ratio",
        basis=(
            f"{pct(share)} of failures are retryable ({kinds_text}) and {basis_again}; "
            f"{attempts_needed} attempts instead of {current}"
        ),
    )
    finding = Finding(
        type="retry_policy",
        target=tool,
        kind="retry",
        title=f"Retry {tool} up to {attempts_needed} attempts: {pct(len(failures) / n)} of "
        "calls fail with retryable errors",
        evidence={
            **base,
            "retry_attempts_now": current,
            "retried_calls": len(retried),
            "retry_attempt_failure_rate": round(again, 4),
        },
        change=tuple(change),
        impact=impact,
        confidence=confidence_above(p_retryable, n, opts.min_rate),
        headline=len(failures) / n,
        fingerprint=ctx.fingerprint("retry_policy", tool, "retry", change),
    )
    return AnalyzerResult(findings=(finding,))


def _breaker(
    ctx: Context,
    tool: str,
    calls: list[ToolCallFact],
    failed: list[bool],
    rate: float,
    follow_rate: float,
    base: dict[str, Any],
) -> AnalyzerResult:
    if ctx.tool_or_default(tool).circuit_breaker is not None:
        return AnalyzerResult(notes=(f"{tool}: failures cluster, and a breaker is configured",))
    bursts: list[list[ToolCallFact]] = []
    current: list[ToolCallFact] = []
    for call, bad in zip(calls, failed, strict=True):
        if bad:
            current.append(call)
        elif current:
            bursts.append(current)
            current = []
    if current:
        bursts.append(current)
    long = [b for b in bursts if len(b) >= 3]
    if not long:
        return AnalyzerResult()
    in_bursts = sum(len(b) for b in long)
    sizes = sorted(len(b) for b in long)
    spans_s = [max((b[-1].started_ms - b[0].started_ms) / 1000, 1.0) for b in long]
    threshold = int(clamp(quantile(sizes, 0.25) // 2, 3, 10))
    window_s = float(round_up(clamp(quantile(spans_s, 0.5), 10, 600), 10))
    reset_s = float(round_up(clamp(quantile(spans_s, 0.5) / 2, 5, 300), 5))
    spared = sum(max(len(b) - threshold, 0) for b in long)
    per_day = 1 / ctx.window.duration_days / ctx.window.mean_sample_rate
    value = {"failure_threshold": threshold, "window_s": window_s, "reset_after_s": reset_s}
    change = [set_value(ctx.doc, ["tools", tool, "circuit_breaker"], value)]
    impact = Impact(
        metric=f"{tool} calls sent to a failing service",
        before=in_bursts * per_day,
        after=(in_bursts - spared) * per_day,
        unit="calls_per_day",
        basis=(
            f"{pct(in_bursts / sum(failed))} of failures come in {len(long)} bursts (median "
            f"{quantile(sizes, 0.5):.0f} failures over {quantile(spans_s, 0.5):.0f} s); after a "
            f"failure the next call fails {pct(follow_rate)} of the time against {pct(rate)} "
            f"overall; opening after {threshold} failures spares the rest of each burst"
        ),
    )
    finding = Finding(
        type="tool_rearrangement",
        target=tool,
        kind="circuit_breaker",
        title=f"Add a circuit breaker to {tool}: its failures come in bursts",
        evidence={**base, "bursts": len(long), "failures_in_bursts": in_bursts},
        change=tuple(change),
        impact=impact,
        confidence=confidence_diff(follow_rate, sum(failed), rate, len(calls)),
        headline=rate,
        fingerprint=ctx.fingerprint("tool_rearrangement", tool, "circuit_breaker", change),
    )
    return AnalyzerResult(findings=(finding,))


def _cache_fallback(
    ctx: Context, tool: str, rate: float, base: dict[str, Any], *, reason: str
) -> AnalyzerResult:
    opts = ctx.options
    settings = ctx.tool_or_default(tool)
    if settings.fallback is not None:
        return AnalyzerResult()
    if settings.side_effect != "read":
        return AnalyzerResult(
            notes=(
                f"{tool}: {pct(rate)} of calls fail ({reason}); not read-only, no cache fallback",
            )
        )
    samples = sorted(
        (s for s in ctx.window.spans if s.kind == "tool" and s.tool == tool and s.input_hash),
        key=lambda s: s.started_ms,
    )
    if not samples:
        return AnalyzerResult(
            notes=(
                f"{tool}: {pct(rate)} of calls fail ({reason}); spans carry no tool arguments, "
                "so a cache fallback was not assessed",
            )
        )
    last_ok: dict[str, int] = {}
    ages: list[float] = []
    failed_samples = 0
    for span in samples:
        key = span.input_hash or ""
        if span.error_type is None:
            last_ok[key] = span.started_ms
            continue
        if is_timeout(span.error_type):
            continue
        failed_samples += 1
        if key in last_ok:
            ages.append((span.started_ms - last_ok[key]) / 1000)
    if failed_samples < opts.min_events or len(ages) < max(opts.min_events // 2, 3):
        return AnalyzerResult()
    max_age = int(clamp(round_up(quantile(ages, 0.9), 60), 60, 86_400))
    covered = sum(age <= max_age for age in ages) / failed_samples
    if covered < 0.2:
        return AnalyzerResult()
    change = [
        set_value(ctx.doc, ["tools", tool, "fallback"], {"kind": "cache", "max_age_s": max_age})
    ]
    impact = Impact(
        metric=f"{tool} error rate",
        before=rate,
        after=rate * (1 - covered),
        unit="ratio",
        basis=(
            f"{pct(covered)} of sampled failures had a success with the same arguments "
            f"within {max_age} s before ({failed_samples} failures in {len(samples)} sampled calls)"
        ),
    )
    finding = Finding(
        type="tool_rearrangement",
        target=tool,
        kind="cache_fallback",
        title=f"Serve {tool} from a recent cached result when it fails ({reason})",
        evidence={**base, "sampled_calls": len(samples), "covered_failures": round(covered, 4)},
        change=tuple(change),
        impact=impact,
        confidence=confidence_above(covered, failed_samples, 0.1),
        headline=rate,
        fingerprint=ctx.fingerprint("tool_rearrangement", tool, "cache_fallback", change),
    )
    return AnalyzerResult(findings=(finding,))


def _top_errors(failures: list[ToolCallFact]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for call in failures:
        counts[call.error_type or "error"] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:5])


def _weighted(ctx: Context, calls: list[ToolCallFact]) -> float:
    index = ctx.window.index
    return sum(index.weight(c.trace_id) for c in calls)

"""Latency budgets: tool latency distributions against their configured timeouts.

A timeout cuts the distribution it measures: calls that hit it never show how long
they would have taken. So the successful latencies are fitted with a log-normal
censored at the timeout (a probability-plot regression that places each success at its
rank among all calls, timed-out ones included above them). From the fit:

- raise a timeout that cuts off a meaningful share of calls: to the fitted p99 times
  a margin, and say what share would still be cut;
- lower a timeout that waits far beyond the p99.9 of successes while failing calls
  hang until it expires: to a margin above that p99.9.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from tuneloop.analysis.recommend.common import (
    confidence_above,
    examples,
    is_timeout,
    pct,
    phi,
    quantile,
    round_up,
    set_value,
    z_of,
)
from tuneloop.analysis.recommend.context import Context
from tuneloop.analysis.recommend.findings import AnalyzerResult, Finding, Impact
from tuneloop.analysis.recommend.window import ToolCallFact

MIN_FIT_R2 = 0.9
_Z99 = z_of(0.99)
_Z999 = z_of(0.999)


@dataclass(frozen=True, slots=True)
class LogNormalFit:
    """A log-normal fitted to latencies censored at a timeout."""

    mu: float
    sigma: float
    r2: float

    def quantile(self, q: float) -> float:
        """The ``q`` quantile in milliseconds."""
        return math.exp(self.mu + self.sigma * z_of(q))

    def share_above(self, ms: float) -> float:
        """The share of calls the fit puts above ``ms``."""
        return 1 - phi((math.log(ms) - self.mu) / self.sigma)


def fit_censored_lognormal(successes: list[float], censored: int) -> LogNormalFit | None:
    """Fit ``successes`` as the lower part of a log-normal whose top ``censored`` were cut.

    Each success sits at its plotting position among all ``len(successes) + censored``
    calls (Blom's), so the fit extrapolates into the cut-off tail. None when there are
    too few points or the latencies are not log-normal enough to extrapolate (R² < 0.9).
    """
    values = sorted(v for v in successes if v > 0)
    m = len(values)
    if m < 20:
        return None
    total = m + censored
    xs = [z_of((i + 1 - 0.375) / (total + 0.25)) for i in range(m)]
    ys = [math.log(v) for v in values]
    mean_x, mean_y = sum(xs) / m, sum(ys) / m
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - mean_y) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    sigma = sxy / sxx
    mu = mean_y - sigma * mean_x
    r2 = sxy * sxy / (sxx * syy)
    if sigma <= 0 or r2 < MIN_FIT_R2:
        return None
    return LogNormalFit(mu, sigma, r2)


def analyze_latency(ctx: Context) -> AnalyzerResult:
    """Timeout findings for every tool with enough calls."""
    by_tool: defaultdict[str, list[ToolCallFact]] = defaultdict(list)
    for call in ctx.window.tool_calls:
        by_tool[call.tool].append(call)
    result = AnalyzerResult()
    for tool, calls in sorted(by_tool.items()):
        if len(calls) >= ctx.options.min_calls:
            result += _one_tool(ctx, tool, calls)
    return result


def _configured_timeout(
    ctx: Context, tool: str, timed_out: list[ToolCallFact]
) -> tuple[float, str]:
    settings = ctx.tool(tool)
    if settings is not None:
        return float(settings.timeout_ms), "config"
    single = [c.duration_ms for c in timed_out if c.retries == 0]
    if len(single) >= 3:
        # Not in the config: the timeout the agent used shows as the timed-out calls' length.
        return quantile(single, 0.5), "observed"
    return float(ctx.tool_or_default(tool).timeout_ms), "default"


def _one_tool(ctx: Context, tool: str, calls: list[ToolCallFact]) -> AnalyzerResult:
    # One attempt each: a retried call's duration adds up several attempts and waits.
    single = [c for c in calls if c.retries == 0]
    timed_out = [c for c in single if c.failed and is_timeout(c.error_type)]
    ok = [c.duration_ms for c in single if not c.failed]
    n = len(ok) + len(timed_out)
    if n < ctx.options.min_calls or len(ok) < 20:
        return AnalyzerResult()
    timeout_ms, source = _configured_timeout(ctx, tool, timed_out)
    fit = fit_censored_lognormal(ok, len(timed_out))
    share = len(timed_out) / n
    base: dict[str, Any] = {
        "tool": tool,
        "calls": n,
        "timeout_ms": timeout_ms,
        "timeout_source": source,
        "timed_out": len(timed_out),
        "timed_out_rate": round(share, 4),
        "success_p50_ms": round(quantile(ok, 0.5), 1),
        "success_p95_ms": round(quantile(ok, 0.95), 1),
        "success_p99_ms": round(quantile(ok, 0.99), 1),
    }
    if fit is not None:
        base["fit"] = {
            "median_ms": round(math.exp(fit.mu), 1),
            "sigma": round(fit.sigma, 3),
            "r2": round(fit.r2, 3),
            "p99_ms": round(fit.quantile(0.99), 1),
        }
    if len(timed_out) >= ctx.options.min_events and share >= ctx.options.min_rate:
        return _raise(ctx, tool, timeout_ms, share, n, fit, timed_out, base)
    return _lower(ctx, tool, timeout_ms, ok, timed_out, n, fit, base)


def _raise(
    ctx: Context,
    tool: str,
    timeout_ms: float,
    share: float,
    n: int,
    fit: LogNormalFit | None,
    timed_out: list[ToolCallFact],
    base: dict[str, Any],
) -> AnalyzerResult:
    if fit is None:
        note = (
            f"{tool}: {pct(share)} of calls hit the {timeout_ms:,.0f} ms timeout, but successful "
            "latencies do not fit a log-normal well enough to say how long the cut-off calls "
            "would have taken; no new timeout proposed"
        )
        return AnalyzerResult(notes=(note,))
    p99 = fit.quantile(0.99)
    step = 100 if p99 * ctx.options.timeout_margin < 10_000 else 1000
    proposed = round_up(p99 * ctx.options.timeout_margin, step)
    if proposed <= timeout_ms:
        return AnalyzerResult()
    if proposed > max(10 * timeout_ms, 600_000):
        note = (
            f"{tool}: fitted p99 {p99:,.0f} ms is far beyond the timeout; too uncertain to propose"
        )
        return AnalyzerResult(notes=(note,))
    after = fit.share_above(proposed)
    change = [set_value(ctx.doc, ["tools", tool, "timeout_ms"], proposed)]
    impact = Impact(
        metric=f"{tool} calls cut off by the timeout",
        before=share,
        after=after,
        unit="ratio",
        basis=(
            f"successful latencies fit a log-normal (median {math.exp(fit.mu):,.0f} ms, "
            f"sigma {fit.sigma:.2f}, R² {fit.r2:.2f}) censored at {timeout_ms:,.0f} ms; its p99 is "
            f"{p99:,.0f} ms and it puts {pct(after)} of calls above {proposed:,} ms"
        ),
    )
    finding = Finding(
        type="timeout_adjustment",
        target=tool,
        kind="raise_timeout",
        title=(
            f"Raise {tool}'s timeout to {proposed:,} ms: {pct(share)} of calls hit "
            f"{timeout_ms:,.0f} ms, below the tool's p{_percentile_at(fit, timeout_ms)}"
        ),
        evidence={**base, "example_trace_ids": examples(c.trace_id for c in timed_out)},
        change=tuple(change),
        impact=impact,
        confidence=confidence_above(share, n, ctx.options.min_rate),
        headline=share,
        fingerprint=ctx.fingerprint("timeout_adjustment", tool, "raise_timeout", change),
    )
    return AnalyzerResult(findings=(finding,))


def _lower(
    ctx: Context,
    tool: str,
    timeout_ms: float,
    ok: list[float],
    timed_out: list[ToolCallFact],
    n: int,
    fit: LogNormalFit | None,
    base: dict[str, Any],
) -> AnalyzerResult:
    hung = [c for c in timed_out if c.duration_ms >= 0.9 * timeout_ms]
    if len(hung) < ctx.options.min_events or len(hung) / n < 0.005:
        return AnalyzerResult()
    p999 = quantile(ok, 0.999) if len(ok) >= 1000 else (fit.quantile(0.999) if fit else None)
    if p999 is None or timeout_ms < 3 * p999:
        return AnalyzerResult()
    proposed = round_up(max(1.5 * p999, 2 * quantile(ok, 0.99)), 100)
    if proposed >= timeout_ms:
        return AnalyzerResult()
    cut = sum(v > proposed for v in ok) / len(ok)
    mean_hung = sum(c.duration_ms for c in hung) / len(hung)
    change = [set_value(ctx.doc, ["tools", tool, "timeout_ms"], proposed)]
    impact = Impact(
        metric=f"{tool} time spent on a hung call",
        before=mean_hung,
        after=float(proposed),
        unit="ms",
        basis=(
            f"{len(hung)} calls ({pct(len(hung) / n)}) hung until the {timeout_ms:,.0f} ms "
            f"timeout while successes finish by p99.9 = {p999:,.0f} ms; {pct(cut)} of "
            f"successful calls took longer than {proposed:,} ms"
        ),
    )
    finding = Finding(
        type="timeout_adjustment",
        target=tool,
        kind="lower_timeout",
        title=f"Lower {tool}'s timeout to {proposed:,} ms: hung calls wait {timeout_ms:,.0f} ms",
        evidence={
            **base,
            "hung": len(hung),
            "example_trace_ids": examples(c.trace_id for c in hung),
        },
        change=tuple(change),
        impact=impact,
        confidence=confidence_above(len(hung) / n, n, 0.0025),
        headline=len(hung) / n,
        fingerprint=ctx.fingerprint("timeout_adjustment", tool, "lower_timeout", change),
    )
    return AnalyzerResult(findings=(finding,))


def _percentile_at(fit: LogNormalFit, ms: float) -> str:
    return f"{(1 - fit.share_above(ms)) * 100:.0f}"

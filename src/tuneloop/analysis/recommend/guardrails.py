"""Guardrails: blocks that humans keep overriding, and silence before incidents.

- A guardrail that blocks often while humans let many of its blocks through
  (``tuneloop.guardrail.overridden`` on a span of the run, or ``guardrail_override``
  feedback) mostly blocks legitimate runs: its blocks go to human approval instead.
- A guardrail that almost never blocks while runs it let through cause incidents
  (``incident`` feedback) is too lax: it blocks instead of redacting, or also checks
  the model's output.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tuneloop import semconv
from tuneloop.analysis.recommend.common import confidence_above, examples, pct, pointer
from tuneloop.analysis.recommend.context import Context
from tuneloop.analysis.recommend.findings import AnalyzerResult, Finding, Impact

OVERRIDE_SHARE = 0.3
MIN_BLOCK_RATE = 0.02
LAX_BLOCK_RATE = 0.005
INCIDENT_RATE = 0.005


def analyze_guardrails(ctx: Context) -> AnalyzerResult:
    """Guardrail findings for every guardrail seen in the sampled spans."""
    checks: defaultdict[str, dict[str, str]] = defaultdict(dict)  # name -> trace -> verdict
    overridden: set[str] = set()
    for trace, spans in ctx.window.index.spans.items():
        for span in spans:
            if span.guardrail and span.verdict:
                previous = checks[span.guardrail].get(trace)
                if previous != semconv.GUARDRAIL_VERDICT_BLOCK:
                    checks[span.guardrail][trace] = span.verdict
            if span.overridden:
                overridden.add(trace)
    incidents: set[str] = set()
    for item in ctx.window.feedback:
        if item.value > 0 and item.name == semconv.FEEDBACK_GUARDRAIL_OVERRIDE:
            overridden.add(item.trace_id)
        if item.value > 0 and item.name == semconv.FEEDBACK_INCIDENT:
            incidents.add(item.trace_id)
    result = AnalyzerResult()
    for name, verdicts in sorted(checks.items()):
        if len(verdicts) < ctx.options.min_calls:
            continue
        result += _one(ctx, name, verdicts, overridden, incidents)
    return result


def _one(
    ctx: Context, name: str, verdicts: dict[str, str], overridden: set[str], incidents: set[str]
) -> AnalyzerResult:
    opts = ctx.options
    n = len(verdicts)
    blocked = [t for t, v in verdicts.items() if v == semconv.GUARDRAIL_VERDICT_BLOCK]
    block_rate = len(blocked) / n
    index = _config_index(ctx, name)
    base: dict[str, Any] = {
        "guardrail": name,
        "checks": n,
        "blocks": len(blocked),
        "block_rate": round(block_rate, 4),
    }
    if index is None:
        return AnalyzerResult(notes=(f"guardrail {name!r} is not in the config; not assessed",))
    spec = ctx.doc["guardrails"][index]
    overrides = [t for t in blocked if t in overridden]
    if len(blocked) >= opts.min_events and block_rate >= MIN_BLOCK_RATE:
        share = len(overrides) / len(blocked)
        if share >= OVERRIDE_SHARE and spec.get("action") == "block":
            change = [
                {
                    "op": "replace",
                    "path": pointer("guardrails", index, "action"),
                    "value": "require_approval",
                }
            ]
            finding = Finding(
                type="guardrail",
                target=name,
                kind="false_positives",
                title=f"Send {name}'s blocks to human approval: {pct(share)} are overridden",
                evidence={
                    **base,
                    "overridden": len(overrides),
                    "example_trace_ids": examples(overrides),
                },
                change=tuple(change),
                impact=Impact(
                    f"runs wrongly blocked by {name}",
                    block_rate * share,
                    0.0,
                    "ratio",
                    f"{pct(share)} of its {len(blocked)} blocks were overridden by a human; with "
                    "approval they proceed once approved instead of failing",
                ),
                confidence=confidence_above(share, len(blocked), OVERRIDE_SHARE / 2),
                headline=share,
                fingerprint=ctx.fingerprint("guardrail", name, "false_positives", change),
            )
            return AnalyzerResult(findings=(finding,) if ctx.keep(finding) else ())
    passed = [t for t, v in verdicts.items() if v != semconv.GUARDRAIL_VERDICT_BLOCK]
    hurt = [t for t in passed if t in incidents]
    rate = len(hurt) / n
    if (
        block_rate > LAX_BLOCK_RATE
        or len(hurt) < max(3, opts.min_events // 2)
        or rate < INCIDENT_RATE
    ):
        return AnalyzerResult()
    fired = [
        t for t in hurt if verdicts[t] != semconv.GUARDRAIL_VERDICT_ALLOW and verdicts[t] != "pass"
    ]
    if spec.get("action") != "block":
        change = [
            {"op": "replace", "path": pointer("guardrails", index, "action"), "value": "block"}
        ]
        how = f"block instead of {spec.get('action')}"
        after = (len(hurt) - len(fired)) / n
        basis = (
            f"{len(hurt)} of {n} runs it passed ({pct(rate)}) were reported as incidents while "
            f"it blocked {pct(block_rate)}; it had flagged {len(fired)} of them "
            f"({spec.get('action')}), which blocking stops"
        )
    elif "output" not in spec.get("hops", []):
        change = [
            {"op": "add", "path": pointer("guardrails", index, "hops", "-"), "value": "output"}
        ]
        how = "also check the model's output"
        after = rate
        basis = (
            f"{len(hurt)} of {n} runs it passed ({pct(rate)}) were reported as incidents; what "
            "checking outputs catches cannot be read from traces: the eval gate decides"
        )
    else:
        note = (
            f"guardrail {name!r}: {len(hurt)} incidents after it passed, and it already "
            "blocks at every hop"
        )
        return AnalyzerResult(notes=(note,))
    finding = Finding(
        type="guardrail",
        target=name,
        kind="too_lax",
        title=f"Tighten {name} ({how}): it rarely blocks; {len(hurt)} runs it passed had incidents",
        evidence={**base, "incidents_after_pass": len(hurt), "example_trace_ids": examples(hurt)},
        change=tuple(change),
        impact=Impact(f"incidents after {name} passed", rate, after, "ratio", basis),
        confidence=confidence_above(rate, n, INCIDENT_RATE / 2),
        headline=rate,
        fingerprint=ctx.fingerprint("guardrail", name, "too_lax", change),
        requires_eval_gate=True,
    )
    return AnalyzerResult(findings=(finding,) if ctx.keep(finding) else ())


def _config_index(ctx: Context, name: str) -> int | None:
    for i, spec in enumerate(ctx.doc.get("guardrails") or []):
        if spec.get("name") == name:
            return i
    return None

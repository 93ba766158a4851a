"""Decision quality: how often a routing / classification step is corrected, and why.

A decision is a span with ``tuneloop.decision.step`` and ``.value``. It counts as a
misclassification when the run corrects it: a span of the run marks the step
``corrected`` (a re-route, a human or eval label on the run), a later decision of the
same step in the run picks another value (re-routing), or feedback ``decision.<step>``
says 0. Escalations and thumbs-down are reported beside it, not counted: they have
other causes.

The misclassification rate is then split by the step's model and temperature:

- when several temperatures (or models) were used, a significantly better one is
  proposed, with its observed rate as the estimate;
- with one setting, sampling shows in repeated inputs: identical inputs that got
  different decisions differ only by sampling. The share of corrected decisions that
  disagree with their input's majority decision is the share a temperature of 0 removes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tuneloop import semconv
from tuneloop.analysis.recommend.common import (
    confidence_above,
    confidence_diff,
    examples,
    pct,
    set_value,
)
from tuneloop.analysis.recommend.context import Context
from tuneloop.analysis.recommend.findings import AnalyzerResult, Finding, Impact
from tuneloop.analysis.recommend.window import SpanSample

# A classifier should pick the most likely label; below this, sampling is not the issue.
HOT_TEMPERATURE = 0.2
TARGET_TEMPERATURE = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    """One step's decision in one run, and whether the run corrected it."""

    trace_id: str
    value: str
    model: str | None
    provider: str | None
    temperature: float | None
    input_hash: str | None
    corrected: bool
    corrected_value: str | None


def collect_decisions(ctx: Context) -> dict[str, list[Decision]]:
    """Every sampled run's first decision per step, with its correction status."""
    window = ctx.window
    out: defaultdict[str, list[Decision]] = defaultdict(list)
    for trace_id, spans in window.index.spans.items():
        run = window.index.runs.get(trace_id)
        labels = _labels(window.index.feedback.get(trace_id, ()))
        by_step: defaultdict[str, list[SpanSample]] = defaultdict(list)
        corrections: dict[str, str | None] = {}
        for span in spans:
            if span.decision_step and span.decision_value is not None:
                by_step[span.decision_step].append(span)
            if span.decision_step and span.corrected:
                corrections[span.decision_step] = span.corrected_value
        for correction in run.corrections if run is not None else ():
            corrections.setdefault(correction.step, correction.value)
        for step, decided in by_step.items():
            first = decided[0]
            rerouted = next(
                (s.decision_value for s in decided[1:] if s.decision_value != first.decision_value),
                None,
            )
            corrected = step in corrections or rerouted is not None or labels.get(step) is False
            out[step].append(
                Decision(
                    trace_id=trace_id,
                    value=str(first.decision_value),
                    model=first.model,
                    provider=first.provider,
                    temperature=first.temperature,
                    input_hash=first.input_hash,
                    corrected=corrected,
                    corrected_value=corrections.get(step) or rerouted,
                )
            )
    return dict(out)


def _labels(feedback: Iterable[Any]) -> dict[str, bool]:
    labels: dict[str, bool] = {}
    for item in feedback:
        if item.name.startswith(semconv.FEEDBACK_DECISION_PREFIX):
            labels[item.name.removeprefix(semconv.FEEDBACK_DECISION_PREFIX)] = item.value > 0
    return labels


def analyze_decisions(ctx: Context) -> AnalyzerResult:
    """Decision-quality findings for every step with enough sampled decisions."""
    result = AnalyzerResult()
    for step, decisions in sorted(collect_decisions(ctx).items()):
        result += _one_step(ctx, step, decisions)
    return result


def _one_step(ctx: Context, step: str, decisions: list[Decision]) -> AnalyzerResult:
    opts = ctx.options
    n = len(decisions)
    wrong = [d for d in decisions if d.corrected]
    rate = len(wrong) / n if n else 0.0
    if n < opts.min_calls or len(wrong) < opts.min_events or rate < opts.min_rate:
        return AnalyzerResult()
    base = _evidence(ctx, step, decisions, wrong)
    by_temp = _rates(decisions, key=lambda d: d.temperature)
    by_model = _rates(decisions, key=lambda d: d.model)
    found = _compare(ctx, step, decisions, by_temp, by_model, rate, base)
    if found is not None:
        return found
    settings = Counter((d.model, d.temperature) for d in decisions).most_common(1)[0][0]
    model, temperature = settings
    if temperature is None or temperature <= HOT_TEMPERATURE:
        note = (
            f"{step}: {pct(rate)} of decisions are corrected at temperature {temperature}; "
            "sampling is not the cause (see the prompt optimizer)"
        )
        return AnalyzerResult(notes=(note,))
    return _sampling(ctx, step, decisions, wrong, rate, model, temperature, base)


def _sampling(
    ctx: Context,
    step: str,
    decisions: list[Decision],
    wrong: list[Decision],
    rate: float,
    model: str | None,
    temperature: float,
    base: dict[str, Any],
) -> AnalyzerResult:
    groups: defaultdict[str, list[Decision]] = defaultdict(list)
    for decision in decisions:
        if decision.input_hash:
            groups[decision.input_hash].append(decision)
    repeated: list[tuple[Decision, bool]] = []
    for members in groups.values():
        if len(members) < 2:
            continue
        value, count = Counter(d.value for d in members).most_common(1)[0]
        if count * 2 <= len(members):
            continue  # no majority: the input's usual answer is unknown
        repeated += [(d, d.value != value) for d in members]
    corrected_repeated = [off for d, off in repeated if d.corrected]
    disagree = sum(off for _, off in repeated)
    if len(repeated) < ctx.options.min_calls or len(corrected_repeated) < ctx.options.min_events:
        note = (
            f"{step}: {pct(rate)} of decisions are corrected at temperature {temperature}, "
            f"but too few repeated inputs ({len(repeated)}) to attribute it to sampling"
        )
        return AnalyzerResult(notes=(note,))
    sampled_share = sum(corrected_repeated) / len(corrected_repeated)
    if sampled_share < 0.3:
        note = (
            f"{step}: only {pct(sampled_share)} of corrected decisions on repeated inputs "
            "differ from the input's usual decision; sampling is not the main cause"
        )
        return AnalyzerResult(notes=(note,))
    current = ctx.doc.get("params", {}).get("temperature")
    if ctx.config is not None and current != temperature:
        note = (
            f"{step}: runs at temperature {temperature}, which the config does not set "
            f"(params.temperature is {current}); lower it where the agent sets it"
        )
        return AnalyzerResult(notes=(note,))
    change = [set_value(ctx.doc, ["params", "temperature"], TARGET_TEMPERATURE)]
    impact = Impact(
        metric=f"{step} misclassification rate",
        before=rate,
        after=rate * (1 - sampled_share),
        unit="ratio",
        basis=(
            f"{pct(disagree / len(repeated))} of {len(repeated):,} decisions on repeated inputs "
            f"differ from the input's usual decision, and {pct(sampled_share)} of the corrected "
            f"ones are such sampling flips, which temperature {TARGET_TEMPERATURE} removes"
        ),
    )
    finding = Finding(
        type="prompt_optimization",
        target=step,
        kind="lower_temperature",
        title=(
            f"Lower the temperature of {step} from {temperature} to {TARGET_TEMPERATURE}: "
            f"{pct(rate)} of its decisions are corrected, mostly sampling flips"
        ),
        evidence={
            **base,
            "model": model,
            "temperature": temperature,
            "repeated_input_decisions": len(repeated),
            "repeated_input_disagreement": round(disagree / len(repeated), 4),
            "sampling_share_of_corrections": round(sampled_share, 4),
        },
        change=tuple(change),
        impact=impact,
        confidence=confidence_above(rate * sampled_share, len(decisions), ctx.options.min_rate / 2),
        headline=rate,
        fingerprint=ctx.fingerprint("prompt_optimization", step, "lower_temperature", change),
    )
    return AnalyzerResult(findings=(finding,))


def _compare(
    ctx: Context,
    step: str,
    decisions: list[Decision],
    by_temp: dict[Any, tuple[int, int]],
    by_model: dict[Any, tuple[int, int]],
    rate: float,
    base: dict[str, Any],
) -> AnalyzerResult | None:
    """A finding from settings observed side by side, or None when there is one setting."""
    min_n = ctx.options.min_calls
    for axis, groups in (("temperature", by_temp), ("model", by_model)):
        usable = {k: v for k, v in groups.items() if k is not None and v[0] >= min_n}
        if len(usable) < 2:
            continue
        best = min(usable, key=lambda k: usable[k][1] / usable[k][0])
        best_n, best_wrong = usable[best]
        best_rate = best_wrong / best_n
        rest = [d for d in decisions if getattr(d, axis) != best]
        rest_rate = sum(d.corrected for d in rest) / len(rest)
        confidence = confidence_diff(rest_rate, len(rest), best_rate, best_n)
        if confidence < 0.95:
            continue
        table = {
            str(k): {"decisions": v[0], "rate": round(v[1] / v[0], 4)} for k, v in usable.items()
        }
        if axis == "temperature":
            current = ctx.doc.get("params", {}).get("temperature")
            if ctx.config is not None and current == best:
                continue
            change = [set_value(ctx.doc, ["params", "temperature"], best)]
            kind, type_ = "lower_temperature", "prompt_optimization"
            title = f"Run {step} at temperature {best}: its decisions are corrected least there"
        else:
            if ctx.config is not None and ctx.doc.get("model", {}).get("name") == best:
                continue
            provider = next((d.provider for d in decisions if d.model == best and d.provider), None)
            provider = provider or ctx.doc.get("model", {}).get("provider") or "unknown"
            change = [set_value(ctx.doc, ["model"], {"provider": provider, "name": best})]
            kind, type_ = "switch_model", "model_routing"
            title = f"Switch {step} to {best}: its decisions are corrected least"
        impact = Impact(
            metric=f"{step} misclassification rate",
            before=rate,
            after=best_rate,
            unit="ratio",
            basis=f"observed side by side by {axis}: {table}",
        )
        finding = Finding(
            type=type_,  # type: ignore[arg-type]
            target=step,
            kind=kind,
            title=title,
            evidence={**base, f"by_{axis}": table},
            change=tuple(change),
            impact=impact,
            confidence=confidence,
            headline=rate,
            fingerprint=ctx.fingerprint(type_, step, kind, change),
        )
        return AnalyzerResult(findings=(finding,))
    return None


def _rates(decisions: list[Decision], *, key: Any) -> dict[Any, tuple[int, int]]:
    out: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for decision in decisions:
        entry = out[key(decision)]
        entry[0] += 1
        entry[1] += decision.corrected
    return {k: (v[0], v[1]) for k, v in out.items()}


def _evidence(
    ctx: Context, step: str, decisions: list[Decision], wrong: list[Decision]
) -> dict[str, Any]:
    runs = ctx.window.index.runs
    feedback = ctx.window.index.feedback

    def escalated(items: list[Decision]) -> float:
        hit = [d for d in items if d.trace_id in runs]
        return sum(runs[d.trace_id].outcome == "escalated" for d in hit) / max(len(hit), 1)

    def thumbs_down(items: list[Decision]) -> float:
        scores = [
            f.value
            for d in items
            for f in feedback.get(d.trace_id, ())
            if f.name == semconv.FEEDBACK_THUMBS
        ]
        return sum(v <= 0 for v in scores) / max(len(scores), 1)

    right = [d for d in decisions if not d.corrected]
    confusions = Counter(f"{d.value} → {d.corrected_value or '?'}" for d in wrong)
    return {
        "step": step,
        "decisions": len(decisions),
        "corrected": len(wrong),
        "misclassification_rate": round(len(wrong) / len(decisions), 4),
        "top_confusions": dict(confusions.most_common(5)),
        "escalation_rate_corrected": round(escalated(wrong), 4),
        "escalation_rate_other": round(escalated(right), 4),
        "thumbs_down_rate_corrected": round(thumbs_down(wrong), 4),
        "thumbs_down_rate_other": round(thumbs_down(right), 4),
        "example_trace_ids": examples(d.trace_id for d in wrong),
    }

"""From metric results to one recommendation a team can act on.

In order: results with a sample ratio mismatch are not to be trusted (investigate); a
breached guardrail stops the experiment; a variant significantly better on the primary
metric ships once every guardrail is shown non-inferior for it (else keep running for
the units those checks need); a primary metric worse in every variant stops it; with no
significant effect, keep running until the planned sample size, then stop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tuneloop.stats.results import Comparison, MetricResult, Recommendation
from tuneloop.stats.specs import AnalysisSettings, MarginKind, Variant
from tuneloop.stats.srm import SrmResult


def _amount(value: float | None, kind: MarginKind) -> str:
    if value is None:
        return "?"
    return f"{value * 100:.1f} %" if kind == "relative" else f"{value:.4g}"


def _lift(comparison: Comparison) -> str:
    relative = comparison.relative.estimate
    absolute = comparison.absolute.estimate
    parts = []
    if relative is not None:
        parts.append(f"{relative * 100:+.1f} %")
    if absolute is not None:
        parts.append(f"{absolute:+.4g} absolute")
    return ", ".join(parts)


def _improvement(comparison: Comparison, increase: bool) -> float:
    estimate = comparison.relative.estimate
    if estimate is None:
        estimate = comparison.absolute.estimate or 0.0
    return estimate if increase else -estimate


def _units(metric: MetricResult) -> int:
    return sum(value.units for value in metric.values)


def _more(pairs: Sequence[tuple[MetricResult, Comparison]]) -> int | None:
    """Units still needed for the planned power; None when unknown or already there."""
    needs = [
        comparison.planned_units - _units(metric)
        for metric, comparison in pairs
        if comparison.planned_units is not None
    ]
    return max(needs) if needs and max(needs) > 0 else None


def recommend(
    metrics: Sequence[MetricResult],
    *,
    srm: SrmResult,
    variants: Sequence[Variant],
    settings: AnalysisSettings,
) -> Recommendation:
    """The next step for an experiment, with a sentence saying why."""
    control = variants[0].name
    if srm.flagged:
        return Recommendation(
            "investigate",
            f"investigate: sample ratio mismatch (p = {srm.p_value:.2g} < {srm.threshold:g}): "
            f"units per variant {list(srm.observed)} do not match the weights "
            f"{list(srm.weights)}; results are untrustworthy until the cause is fixed",
        )
    for metric in metrics:
        for comparison in metric.comparisons:
            guardrail = comparison.guardrail
            if guardrail is not None and guardrail.verdict == "breached":
                kind = guardrail.margin_kind
                return Recommendation(
                    "stop",
                    f"stop: guardrail {metric.name} breached in {comparison.variant}: worse by "
                    f"{_amount(guardrail.worse_by, kind)} (at least "
                    f"{_amount(guardrail.lower_bound, kind)}), allowed "
                    f"{_amount(guardrail.margin, kind)}",
                    variant=comparison.variant,
                )
    primary = next(metric for metric in metrics if metric.role == "primary")
    increase = primary.direction == "increase"
    winners = [c for c in primary.comparisons if c.significant and c.effect == "better"]
    if winners:
        best = max(winners, key=lambda c: _improvement(c, increase))
        pending = [
            (metric, comparison)
            for metric in metrics
            if metric.role == "guardrail"
            for comparison in metric.comparisons
            if comparison.variant == best.variant
            and (comparison.guardrail is None or comparison.guardrail.verdict != "non_inferior")
        ]
        if not pending:
            checked = any(metric.role == "guardrail" for metric in metrics)
            return Recommendation(
                "ship",
                f"ship {best.variant}: {primary.name} {_lift(best)} against {control} "
                f"(p = {_p(best, settings):.2g}); "
                + ("every guardrail non-inferior" if checked else "no guardrails configured"),
                variant=best.variant,
            )
        more = _more(pending)
        names = ", ".join(sorted({metric.name for metric, _ in pending}))
        return Recommendation(
            "keep_running",
            f"keep running: {best.variant} is better on {primary.name} ({_lift(best)}) but "
            f"guardrail(s) {names} are not yet shown non-inferior"
            + (f"; about {more:,} more units for {settings.power:.0%} power" if more else ""),
            variant=best.variant,
            more_units=more,
        )
    compared = primary.comparisons
    if all(c.status == "ok" and c.significant and c.effect == "worse" for c in compared):
        return Recommendation(
            "stop",
            f"stop: {primary.name} is significantly worse in every variant; keep {control}",
        )
    more = _more([(primary, c) for c in compared])
    if primary.status != "ok":
        reason = next((c.reason for c in compared if c.reason), "no data")
        return Recommendation(
            "keep_running",
            f"keep running: not enough data for {primary.name} ({reason})",
            more_units=more,
        )
    planned = [c.planned_units for c in compared if c.planned_units is not None]
    if not planned:
        return Recommendation(
            "keep_running",
            f"keep running: no significant difference on {primary.name} yet; set an mde on it "
            "to know how many units the planned power needs",
        )
    if more is not None:
        return Recommendation(
            "keep_running",
            f"keep running: {more:,} more units for {settings.power:.0%} power to detect the "
            f"planned effect on {primary.name}",
            more_units=more,
        )
    return Recommendation(
        "stop",
        f"stop: no significant effect on {primary.name} at the planned sample size "
        f"({max(planned):,} units); keep {control}",
    )


def _p(comparison: Comparison, settings: AnalysisSettings) -> float:
    value = (
        comparison.adjusted_always_valid_p_value
        if settings.method == "sequential"
        else comparison.adjusted_p_value
    )
    return math.nan if value is None else value

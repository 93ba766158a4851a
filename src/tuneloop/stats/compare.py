"""One metric, control against one treatment: lifts, p-values, sequences, guardrail verdict.

`compare` and `check_guardrail` are the pair-level entry points (the rollout controller
calls `check_guardrail` on every tick); `analyze` builds on the same functions for
experiments with several variants.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import replace

from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.stats.bootstrap import compare_quantiles
from tuneloop.stats.cuped import cuped
from tuneloop.stats.frequentist import difference, relative_difference
from tuneloop.stats.guardrails import (
    empty_guardrail,
    guardrail_from_inference,
    guardrail_without_data,
    quantile_guardrail,
)
from tuneloop.stats.power import PlanContext, planned_units
from tuneloop.stats.results import Comparison, Effect, GuardrailResult, Interval
from tuneloop.stats.sequential import always_valid_p_value, width_multiplier
from tuneloop.stats.specs import AnalysisSettings, MetricSpec
from tuneloop.stats.summaries import (
    AdjustedSummary,
    Estimate,
    MeanSummary,
    ProportionSummary,
    QuantileSummary,
    RatioSummary,
    Summary,
)

TESTS = {
    "binary": "two-proportion z-test (unpooled)",
    "continuous": "Welch t-test",
    "ratio": "delta-method z-test",
    "quantile": "bootstrap of the quantile difference",
}
_EXPECTED: dict[str, tuple[type, ...]] = {
    "binary": (ProportionSummary,),
    "continuous": (MeanSummary,),
    "ratio": (RatioSummary,),
    "quantile": (QuantileSummary,),
}


def describe_test(metric: MetricSpec, *, cuped_used: bool) -> str:
    """The test used for a metric, as stated in results."""
    return TESTS[metric.kind] + (" with CUPED" if cuped_used else "")


def estimates(
    metric: MetricSpec, summaries: Sequence[Summary], names: Sequence[str]
) -> tuple[list[Estimate], float | None]:
    """Per-variant estimates of a binary, continuous or ratio metric, CUPED-adjusted if given.

    Returns the estimates and the CUPED variance reduction (None without CUPED).

    Raises:
        InvalidInputError: a summary of the wrong type for the metric's kind.
    """
    expected = _EXPECTED[metric.kind]
    adjusted = [isinstance(s, AdjustedSummary) for s in summaries]
    for summary, name in zip(summaries, names, strict=True):
        inner = summary.metric if isinstance(summary, AdjustedSummary) else summary
        if not isinstance(inner, expected) or (adjusted[0] != isinstance(summary, AdjustedSummary)):
            raise InvalidInputError(
                f"metric {metric.name!r} is {metric.kind}: variant {name!r} must give a "
                f"{expected[0].__name__} (or an AdjustedSummary of one in every variant), "
                f"got {type(summary).__name__}"
            )
    if all(adjusted):
        result = cuped([s for s in summaries if isinstance(s, AdjustedSummary)])
        return list(result.estimates), result.variance_reduction
    return [s.estimate() for s in summaries], None  # type: ignore[union-attr]


def quantile_seed(settings: AnalysisSettings, metric: MetricSpec, index: int) -> list[int]:
    """Bootstrap seed of one comparison: independent of metric order and of other variants."""
    return [settings.seed, zlib.crc32(metric.name.encode()), index]


def _insufficient(
    metric: MetricSpec, control: Estimate, treatment: Estimate, names: tuple[str, str]
) -> str | None:
    for estimate, name in zip((control, treatment), names, strict=True):
        if estimate.n == 0:
            return f"no units in variant {name!r}"
        if estimate.n < 2:
            return f"variant {name!r} has 1 unit; at least 2 are needed"
        if metric.kind == "ratio" and not math.isfinite(estimate.mean):
            return f"the denominator of {metric.name!r} sums to 0 in variant {name!r}"
        if not (math.isfinite(estimate.mean) and math.isfinite(estimate.variance)):
            return f"variant {name!r} has no defined value of {metric.name!r}"
    if control.variance / control.n + treatment.variance / treatment.n <= 0:
        return "zero variance: within each variant, every unit has the same value"
    return None


def _effect(metric: MetricSpec, estimate: float, significant: bool) -> Effect:
    if not significant or estimate == 0:
        return "none"
    improved = (estimate > 0) == (metric.direction == "increase")
    return "better" if improved else "worse"


def _interval(estimate: float, lower: float, upper: float) -> Interval:
    return Interval(float(estimate), float(lower), float(upper))


def _sequence(estimate: float, se: float | None, multiplier: float) -> Interval:
    if se is None or not math.isfinite(se):
        return Interval()
    return _interval(estimate, estimate - multiplier * se, estimate + multiplier * se)


def _not_enough(
    metric: MetricSpec, variant: str, reason: str, *, settings: AnalysisSettings
) -> Comparison:
    guardrail = None
    if metric.role == "guardrail":
        base = empty_guardrail(metric, variant, settings=settings)
        guardrail = guardrail_without_data(base, reason)
    return Comparison(variant, "not_enough_data", reason, guardrail=guardrail)


def compare_estimates(
    metric: MetricSpec,
    control: Estimate,
    treatment: Estimate,
    *,
    names: tuple[str, str],
    settings: AnalysisSettings,
    interval_alpha: float,
    plan: PlanContext | None = None,
) -> Comparison:
    """Compare two estimates of a binary, continuous or ratio metric (no correction applied)."""
    variant = names[1]
    reason = _insufficient(metric, control, treatment, names)
    if reason is not None:
        return _not_enough(metric, variant, reason, settings=settings)
    args = (
        control.mean,
        control.variance,
        control.n,
        treatment.mean,
        treatment.variance,
        treatment.n,
    )
    welch = metric.kind == "continuous"
    absolute = difference(*args, welch=welch)
    relative = relative_difference(*args, welch=welch) if control.mean != 0 else None
    estimate, se = float(absolute.estimate), float(absolute.se)
    lower, upper = absolute.interval(interval_alpha)
    n_total = control.n + treatment.n
    multiplier = float(width_multiplier(n_total, interval_alpha, settings.sequential_tuning))
    p = float(absolute.p_value())
    always_valid = float(
        always_valid_p_value(
            estimate, se, n_total, alpha=settings.alpha, tuning=settings.sequential_tuning
        )
    )
    relative_interval = sequential_relative = Interval()
    if relative is not None:
        rel_lower, rel_upper = relative.interval(interval_alpha)
        relative_interval = _interval(float(relative.estimate), float(rel_lower), float(rel_upper))
        sequential_relative = _sequence(float(relative.estimate), float(relative.se), multiplier)
    guardrail = None
    if metric.role == "guardrail":
        chosen = absolute if metric.margin_kind == "absolute" else relative
        guardrail = guardrail_from_inference(
            metric, variant, chosen, settings=settings, n_total=n_total
        )
    planned = planned_units(
        metric,
        settings=settings,
        plan=plan,
        se=se,
        relative_se=None if relative is None else float(relative.se),
        control_value=control.mean,
        interval_alpha=interval_alpha,
    )
    return Comparison(
        variant,
        "ok",
        absolute=_interval(estimate, float(lower), float(upper)),
        relative=relative_interval,
        sequential_absolute=_sequence(estimate, se, multiplier),
        sequential_relative=sequential_relative,
        p_value=p,
        adjusted_p_value=p,
        always_valid_p_value=always_valid,
        adjusted_always_valid_p_value=always_valid,
        guardrail=guardrail,
        planned_units=planned,
    )


def compare_quantile_summaries(
    metric: MetricSpec,
    control: QuantileSummary,
    treatment: QuantileSummary,
    *,
    names: tuple[str, str],
    settings: AnalysisSettings,
    interval_alpha: float,
    seed: Sequence[int],
    plan: PlanContext | None = None,
) -> Comparison:
    """Compare a quantile metric by bootstrap (no correction applied)."""
    assert metric.quantile is not None
    variant = names[1]
    reason = next(
        (
            f"no values in variant {name!r}"
            for s, name in zip((control, treatment), names, strict=True)
            if s.n == 0
        ),
        None,
    )
    boot = None
    if reason is None:
        boot = compare_quantiles(
            control, treatment, metric.quantile, draws=settings.bootstrap_draws, seed=seed
        )
        if boot.se() == 0:
            reason = "zero variance: the bootstrap distribution of the quantile is a single value"
    if reason is not None or boot is None:
        return _not_enough(metric, variant, reason or "", settings=settings)
    n_total = control.n + treatment.n
    multiplier = float(width_multiplier(n_total, interval_alpha, settings.sequential_tuning))
    estimate, se = boot.difference, boot.se()
    lower, upper = boot.interval(interval_alpha) or (math.nan, math.nan)
    relative_interval = sequential_relative = Interval()
    rel = boot.relative
    rel_bounds = boot.interval(interval_alpha, relative=True)
    if rel is not None and rel_bounds is not None:
        relative_interval = _interval(rel, *rel_bounds)
        sequential_relative = _sequence(rel, boot.se(relative=True), multiplier)
    p = boot.p_value()
    assert se is not None
    always_valid = float(
        always_valid_p_value(
            estimate, se, n_total, alpha=settings.alpha, tuning=settings.sequential_tuning
        )
    )
    guardrail = None
    if metric.role == "guardrail":
        guardrail = quantile_guardrail(metric, variant, boot, settings=settings, n_total=n_total)
    planned = planned_units(
        metric,
        settings=settings,
        plan=plan,
        se=se,
        relative_se=boot.se(relative=True),
        control_value=boot.control,
        interval_alpha=interval_alpha,
    )
    return Comparison(
        variant,
        "ok",
        absolute=_interval(estimate, lower, upper),
        relative=relative_interval,
        sequential_absolute=_sequence(estimate, se, multiplier),
        sequential_relative=sequential_relative,
        p_value=p,
        adjusted_p_value=p,
        always_valid_p_value=always_valid,
        adjusted_always_valid_p_value=always_valid,
        guardrail=guardrail,
        planned_units=planned,
    )


def finish(metric: MetricSpec, comparison: Comparison, *, settings: AnalysisSettings) -> Comparison:
    """Decide significance and the direction of the effect from the adjusted p-values."""
    if comparison.status != "ok":
        return comparison
    p = (
        comparison.adjusted_always_valid_p_value
        if settings.method == "sequential"
        else comparison.adjusted_p_value
    )
    significant = p is not None and p < settings.alpha
    estimate = comparison.absolute.estimate or 0.0
    return replace(
        comparison, significant=significant, effect=_effect(metric, estimate, significant)
    )


def compare(
    metric: MetricSpec,
    control: Summary,
    treatment: Summary,
    *,
    settings: AnalysisSettings | None = None,
    names: tuple[str, str] = ("control", "treatment"),
) -> Comparison:
    """Compare one treatment with control on one metric.

    Args:
        metric: the metric (its kind picks the test; a guardrail also gets a verdict).
        control: the control's summary.
        treatment: the treatment's summary (same type as the control's).
        settings: alpha, method and tuning (defaults: 0.05, fixed-horizon).
        names: the variants' names, used in messages and results.

    Raises:
        InvalidInputError: summaries of a type that does not fit the metric's kind.
    """
    settings = settings or AnalysisSettings()
    if metric.kind == "quantile":
        if not isinstance(control, QuantileSummary) or not isinstance(treatment, QuantileSummary):
            raise InvalidInputError(
                f"metric {metric.name!r} is a quantile metric: give QuantileSummary values"
            )
        comparison = compare_quantile_summaries(
            metric,
            control,
            treatment,
            names=names,
            settings=settings,
            interval_alpha=settings.alpha,
            seed=quantile_seed(settings, metric, 1),
        )
    else:
        (a, b), _ = estimates(metric, [control, treatment], names)
        comparison = compare_estimates(
            metric, a, b, names=names, settings=settings, interval_alpha=settings.alpha
        )
    return finish(metric, comparison, settings=settings)


def check_guardrail(
    metric: MetricSpec,
    control: Summary,
    candidate: Summary,
    *,
    settings: AnalysisSettings | None = None,
    names: tuple[str, str] = ("stable", "candidate"),
) -> GuardrailResult:
    """Non-inferiority of a candidate against the stable version on one guardrail metric.

    With ``settings.method == "sequential"`` the verdict is valid however often it is
    checked (a rollout checks on every tick).

    Raises:
        ConfigError: the metric is not a guardrail (it has no margin).
        InvalidInputError: summaries of a type that does not fit the metric's kind.
    """
    if metric.role != "guardrail":
        raise ConfigError(f"metric {metric.name!r} is not a guardrail: give it a role and margin")
    result = compare(metric, control, candidate, settings=settings, names=names).guardrail
    assert result is not None
    return result

"""Guardrails: one-sided non-inferiority tests with a margin.

A guardrail states how much worse a treatment may be: "error rate no worse by more than
1 percentage point" (absolute margin 0.01), "p95 latency no worse by more than 10 %"
(relative margin 0.10). With ``worse_by`` the estimated harm (the difference, signed so
that positive is worse) and one-sided ``1 - alpha`` bounds on it:

- ``non_inferior`` when the upper bound is below the margin (the test of "worse by at
  least the margin" rejects at alpha);
- ``breached`` when the lower bound is above the margin (confidently worse than allowed);
- ``inconclusive`` otherwise: more data is needed either way.

Fixed-horizon bounds come from the z/t (or bootstrap) distribution; sequential bounds
from the two-sided confidence sequence at alpha, used one side at a time (conservative),
so a rollout may check them on every tick.
"""

from __future__ import annotations

import math

import numpy as np

from tuneloop.stats._numeric import Floats
from tuneloop.stats.bootstrap import QuantileComparison
from tuneloop.stats.frequentist import Inference
from tuneloop.stats.results import GuardrailResult, Verdict
from tuneloop.stats.sequential import always_valid_p_value, width_multiplier
from tuneloop.stats.specs import AnalysisSettings, MetricSpec


def _harm_sign(metric: MetricSpec) -> float:
    """+1 when an increase is harm (error rate, latency), -1 when a decrease is."""
    return 1.0 if metric.direction == "decrease" else -1.0


def empty_guardrail(
    metric: MetricSpec, variant: str, *, settings: AnalysisSettings
) -> GuardrailResult:
    """A guardrail result before any verdict."""
    assert metric.margin is not None
    return GuardrailResult(
        metric.name, variant, "ok", None, metric.margin, metric.margin_kind, method=settings.method
    )


def _verdict(lower: float, upper: float, margin: float) -> Verdict:
    if upper < margin:
        return "non_inferior"
    if lower > margin:
        return "breached"
    return "inconclusive"


def guardrail_from_inference(
    metric: MetricSpec,
    variant: str,
    inference: Inference | None,
    *,
    settings: AnalysisSettings,
    n_total: int,
) -> GuardrailResult:
    """Non-inferiority from a normal-theory inference on the difference (or relative lift)."""
    assert metric.margin is not None
    base = empty_guardrail(metric, variant, settings=settings)
    if inference is None or not math.isfinite(float(inference.se)):
        return guardrail_without_data(
            base, "the control's value is 0: a relative margin is undefined"
        )
    sign = _harm_sign(metric)
    harm = Inference(sign * inference.estimate, inference.se, inference.df)
    worse_by = float(harm.estimate)
    se = float(harm.se)
    if settings.method == "sequential":
        # The two-sided sequence at alpha gives one-sided bounds at alpha (conservatively).
        half = float(width_multiplier(n_total, settings.alpha, settings.sequential_tuning)) * se
        lower, upper = worse_by - half, worse_by + half
        p = 1.0
        if worse_by < metric.margin:
            p = float(
                always_valid_p_value(
                    worse_by,
                    se,
                    n_total,
                    alpha=settings.alpha,
                    tuning=settings.sequential_tuning,
                    null=metric.margin,
                )
            )
    else:
        low, high = harm.one_sided_bounds(settings.alpha)
        lower, upper = float(low), float(high)
        p = float(harm.p_below(metric.margin))
    return _guardrail_done(base, worse_by, lower, upper, p)


def guardrail_without_data(base: GuardrailResult, reason: str) -> GuardrailResult:
    """The guardrail result when the comparison has not enough data, with the reason."""
    return GuardrailResult(
        base.metric,
        base.variant,
        "not_enough_data",
        None,
        base.margin,
        base.margin_kind,
        method=base.method,
        reason=reason,
    )


def _guardrail_done(
    base: GuardrailResult, worse_by: float, lower: float, upper: float, p: float
) -> GuardrailResult:
    return GuardrailResult(
        base.metric,
        base.variant,
        "ok",
        _verdict(lower, upper, base.margin),
        base.margin,
        base.margin_kind,
        worse_by=worse_by,
        lower_bound=lower,
        upper_bound=upper,
        p_value=p,
        method=base.method,
    )


def quantile_guardrail(
    metric: MetricSpec,
    variant: str,
    boot: QuantileComparison,
    *,
    settings: AnalysisSettings,
    n_total: int,
) -> GuardrailResult:
    """Non-inferiority of a quantile metric from its bootstrap distribution."""
    assert metric.margin is not None
    relative = metric.margin_kind == "relative"
    base = empty_guardrail(metric, variant, settings=settings)
    draws = boot.draws(relative=relative)
    point = boot.relative if relative else boot.difference
    if draws is None or point is None:
        return guardrail_without_data(
            base, "the control's quantile is 0: a relative margin is undefined"
        )
    sign = _harm_sign(metric)
    harm: Floats = sign * draws
    worse_by = sign * point
    if settings.method == "sequential":
        se = float(np.std(harm, ddof=1))
        half = float(width_multiplier(n_total, settings.alpha, settings.sequential_tuning)) * se
        lower, upper = worse_by - half, worse_by + half
        p = 1.0
        if worse_by < metric.margin and se > 0:
            p = float(
                always_valid_p_value(
                    worse_by,
                    se,
                    n_total,
                    alpha=settings.alpha,
                    tuning=settings.sequential_tuning,
                    null=metric.margin,
                )
            )
    else:
        lower = float(np.quantile(harm, settings.alpha))
        upper = float(np.quantile(harm, 1 - settings.alpha))
        p = float(np.mean(harm >= metric.margin))
    return _guardrail_done(base, worse_by, lower, upper, p)

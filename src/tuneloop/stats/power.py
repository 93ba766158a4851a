"""Planning: units (and days) needed to detect a minimum effect with a given power.

The number a team needs before choosing "1-2 days or 7-14 days". For a difference of
means between control (weight w_a) and a treatment (weight w_b) of ``N`` total units,
the standard error is ``sqrt(c / N)`` with ``c = var_a / w_a + var_b / w_b``. A
fixed-horizon two-sided test at level alpha detects an effect d with power 1 - beta when
``d = sqrt(c / N) (z_{1-alpha/2} + z_{1-beta})``. A sequential test replaces
``z_{1-alpha/2}`` with the confidence sequence's width, which grows slowly with N, so N
is found numerically; it is the price of being allowed to look at any time (and to stop
early when the effect is larger than planned).

With several treatments, each comparison is planned at ``alpha / (k - 1)`` (Bonferroni;
Holm is never less powerful, so the plan is on the safe side).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tuneloop.errors import ConfigError
from tuneloop.stats._numeric import check_alpha, normal_quantile, to_jsonable
from tuneloop.stats.sequential import width_multiplier
from tuneloop.stats.specs import AnalysisSettings, MarginKind, Method, MetricSpec
from tuneloop.stats.srm import check_weights

PlannedKind = Literal["binary", "continuous", "ratio"]


@dataclass(frozen=True, slots=True)
class SamplePlan:
    """Units per variant (in the order of the weights), their total and the days it takes."""

    units_per_variant: tuple[int, ...]
    total_units: int
    days: int | None
    effect: float
    alpha_per_comparison: float
    power: float
    method: Method

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        out: dict[str, Any] = to_jsonable(self)
        return out


def required_units(
    c: float,
    effect: float,
    *,
    alpha: float,
    power: float,
    two_sided: bool = True,
    method: Method = "fixed",
    tuning: float | None = None,
    pair_share: float = 1.0,
) -> float:
    """Total units N such that an effect of ``effect`` is detected with ``power``.

    Args:
        c: ``var_a / w_a + var_b / w_b`` (per-unit variances over traffic weights).
        effect: the absolute effect (or margin) to detect; positive.
        alpha: significance level.
        power: probability of detecting the effect.
        two_sided: plan a two-sided test (False: one-sided, as for non-inferiority).
        method: ``sequential`` plans for the confidence sequence (which is two-sided at
            alpha for one-sided uses too, as the guardrail checks do).
        tuning: the sequence's tuning in units; default: the fixed-horizon sample size.
        pair_share: share of all units in the two compared variants (``w_a + w_b``).
    """
    z_power = normal_quantile(power)
    z_alpha = normal_quantile(1 - alpha / 2 if two_sided else 1 - alpha)
    fixed = c * (z_alpha + z_power) ** 2 / effect**2
    if method == "fixed":
        return fixed
    tune = tuning if tuning is not None else fixed * pair_share

    def detectable(n: float) -> float:
        return math.sqrt(c / n) * (float(width_multiplier(n * pair_share, alpha, tune)) + z_power)

    low, high = fixed, fixed * 2
    while detectable(high) > effect:
        low, high = high, high * 2
    for _ in range(60):
        mid = math.sqrt(low * high)
        if detectable(mid) > effect:
            low = mid
        else:
            high = mid
    return high


def plan_sample_size(
    *,
    kind: PlannedKind,
    baseline: float,
    mde: float,
    mde_kind: MarginKind = "relative",
    variance: float | None = None,
    weights: Sequence[float] = (0.5, 0.5),
    alpha: float = 0.05,
    power: float = 0.8,
    method: Method = "fixed",
    sequential_tuning: float | None = None,
    daily_units: float | None = None,
) -> SamplePlan:
    """Plan an experiment: units per variant and days for a minimum detectable effect.

    Args:
        kind: ``binary`` (variance from the baseline rate) or ``continuous``/``ratio``
            (give the per-unit ``variance``; for ratios the delta-method variance
            ``RatioSummary.estimate().variance``).
        baseline: the control's current value (a rate for binary metrics).
        mde: smallest effect worth detecting.
        mde_kind: ``relative`` (0.05 = 5 % of the baseline) or ``absolute`` (metric units).
        variance: per-unit variance of the metric (continuous and ratio metrics).
        weights: traffic weights, control first; every other variant is compared with it.
        alpha: two-sided significance level.
        power: probability of detecting an effect of the planned size.
        method: ``fixed`` or ``sequential``.
        sequential_tuning: the confidence sequence's tuning (units), if already chosen.
        daily_units: units entering the experiment per day, to turn units into days.

    Raises:
        ConfigError: any input out of range, naming it.
    """
    check_alpha(alpha)
    check_weights(weights)
    if len(weights) < 2 or weights[0] <= 0 or min(weights[1:]) <= 0:
        raise ConfigError(
            f"plan needs a control and at least one treatment with positive weights, got {weights}"
        )
    if not 0 < power < 1:
        raise ConfigError(f"power must be between 0 and 1 (e.g. 0.8), got {power!r}")
    if not (math.isfinite(mde) and mde > 0):
        raise ConfigError(f"mde must be a positive number, got {mde!r}")
    if not math.isfinite(baseline):
        raise ConfigError(f"baseline must be a finite number, got {baseline!r}")
    effect = mde * abs(baseline) if mde_kind == "relative" else mde
    if effect <= 0:
        raise ConfigError("a relative mde needs a non-zero baseline; give an absolute mde instead")
    if kind == "binary":
        if not 0 < baseline < 1:
            raise ConfigError(f"a binary baseline is a rate between 0 and 1, got {baseline!r}")
        shifted = [p for p in (baseline - effect, baseline + effect) if 0 < p < 1]
        if not shifted:
            raise ConfigError(f"an effect of {effect:g} on a rate of {baseline:g} leaves 0..1")
        var_a = baseline * (1 - baseline)
        var_b = max(p * (1 - p) for p in shifted)
    else:
        if variance is None or not (math.isfinite(variance) and variance > 0):
            raise ConfigError(
                f"a {kind} metric needs its per-unit variance (> 0) to plan, got {variance!r}"
            )
        var_a = var_b = variance
    if daily_units is not None and not (math.isfinite(daily_units) and daily_units > 0):
        raise ConfigError(f"daily_units must be positive, got {daily_units!r}")

    comparison_alpha = alpha / (len(weights) - 1)
    total = max(
        required_units(
            var_a / weights[0] + var_b / weight,
            effect,
            alpha=comparison_alpha,
            power=power,
            method=method,
            tuning=sequential_tuning,
            pair_share=weights[0] + weight,
        )
        for weight in weights[1:]
    )
    per_variant = tuple(math.ceil(total * weight) for weight in weights)
    units = sum(per_variant)
    days = math.ceil(units / daily_units) if daily_units is not None else None
    return SamplePlan(per_variant, units, days, effect, comparison_alpha, power, method)


@dataclass(frozen=True, slots=True)
class PlanContext:
    """What planning needs beyond the pair: units with data (all variants), the pair's share."""

    units: int
    pair_share: float


def planned_units(
    metric: MetricSpec,
    *,
    settings: AnalysisSettings,
    plan: PlanContext | None,
    se: float | None,
    relative_se: float | None,
    control_value: float,
    interval_alpha: float,
) -> int | None:
    """Units (all variants) at which a comparison reaches the planned power.

    For the metric's mde (two-sided at the comparison's alpha), or for a guardrail to
    show non-inferiority at its margin when there is no true difference (one-sided).
    The per-unit variance comes from the current standard error: ``c = se^2 * units``.
    """
    if plan is None or plan.units == 0:
        return None
    if metric.role == "guardrail":
        assert metric.margin is not None
        relative = metric.margin_kind == "relative"
        effect, alpha, two_sided = metric.margin, settings.alpha, False
    elif metric.mde is not None:
        relative = False
        effect = metric.mde * abs(control_value) if metric.mde_kind == "relative" else metric.mde
        alpha, two_sided = interval_alpha, True
    else:
        return None
    chosen = relative_se if relative else se
    if chosen is None or not math.isfinite(chosen) or chosen <= 0 or effect <= 0:
        return None
    units = required_units(
        chosen * chosen * plan.units,
        effect,
        alpha=alpha,
        power=settings.power,
        two_sided=two_sided,
        method=settings.method,
        tuning=settings.sequential_tuning,
        pair_share=plan.pair_share,
    )
    return math.ceil(units) if math.isfinite(units) else None

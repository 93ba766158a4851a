"""Planning: the planned sample size delivers the planned power, by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower

from tuneloop.errors import ConfigError
from tuneloop.stats import always_valid_p_value, plan_sample_size
from tuneloop.stats.frequentist import difference
from tuneloop.stats.summaries import proportion_moments

SIMULATIONS = 4_000
BASELINE = 0.20
LIFT = 0.03  # three percentage points


def _detections(n: int, *, looks: int = 1, sequential: bool = False, tuning: float = 1.0) -> float:
    """Share of simulated experiments (true 3-point lift) that find a significant increase."""
    rng = np.random.default_rng(99)
    sizes = np.diff(np.linspace(0, n, looks + 1).round().astype(int))
    counts = np.cumsum(np.broadcast_to(sizes, (SIMULATIONS, looks)), axis=1)
    k_a = np.cumsum(rng.binomial(sizes, BASELINE, size=(SIMULATIONS, looks)), axis=1)
    k_b = np.cumsum(rng.binomial(sizes, BASELINE + LIFT, size=(SIMULATIONS, looks)), axis=1)
    mean_a, var_a = proportion_moments(counts, k_a)
    mean_b, var_b = proportion_moments(counts, k_b)
    inference = difference(mean_a, var_a, counts, mean_b, var_b, counts, welch=False)
    if sequential:
        p = always_valid_p_value(
            inference.estimate, inference.se, 2 * counts, alpha=0.05, tuning=tuning
        )
    else:
        p = inference.p_value()
    found = ((p < 0.05) & (inference.estimate > 0)).any(axis=1)
    return float(np.mean(found))


def test_fixed_horizon_plan_detects_a_three_point_lift_at_the_planned_power() -> None:
    plan = plan_sample_size(kind="binary", baseline=BASELINE, mde=LIFT, mde_kind="absolute")
    n = plan.units_per_variant[0]
    error = math.sqrt(0.8 * 0.2 / SIMULATIONS)
    assert _detections(n) == pytest.approx(0.8, abs=3 * error)
    # Half the sample is clearly underpowered: the plan is not just "big enough".
    assert _detections(n // 2) < 0.8 - 10 * error


def test_sequential_plan_detects_at_the_planned_power_and_peeking_only_helps() -> None:
    plan = plan_sample_size(
        kind="binary", baseline=BASELINE, mde=LIFT, mde_kind="absolute", method="sequential"
    )
    fixed = plan_sample_size(kind="binary", baseline=BASELINE, mde=LIFT, mde_kind="absolute")
    n = plan.units_per_variant[0]
    tuning = 2 * fixed.units_per_variant[0]  # the plan's default tuning
    error = math.sqrt(0.8 * 0.2 / SIMULATIONS)
    assert n > fixed.units_per_variant[0]
    assert _detections(n, sequential=True, tuning=tuning) == pytest.approx(0.8, abs=3 * error)
    assert _detections(n, looks=10, sequential=True, tuning=tuning) >= 0.8 - 3 * error


def test_continuous_plan_matches_statsmodels() -> None:
    sd, effect = 12.0, 1.5
    plan = plan_sample_size(
        kind="continuous", baseline=100.0, mde=effect, mde_kind="absolute", variance=sd**2
    )
    expected = NormalIndPower().solve_power(effect_size=effect / sd, alpha=0.05, power=0.8)
    assert plan.units_per_variant == (math.ceil(expected), math.ceil(expected))


def test_uneven_split_several_variants_and_days() -> None:
    common = {"kind": "continuous", "baseline": 5.0, "mde": 0.01, "variance": 4.0}
    even = plan_sample_size(**common, daily_units=2_000)  # type: ignore[arg-type]
    three = plan_sample_size(**common, weights=(0.5, 0.25, 0.25), daily_units=2_000)  # type: ignore[arg-type]
    assert three.alpha_per_comparison == pytest.approx(0.025)
    # Per comparison c = var/0.5 + var/0.25 instead of var/0.5 + var/0.5, at alpha 0.025.
    ratio = 1.5 * ((norm.ppf(1 - 0.0125) + norm.ppf(0.8)) / (norm.ppf(0.975) + norm.ppf(0.8))) ** 2
    assert three.total_units == pytest.approx(even.total_units * ratio, abs=4)
    assert three.days == math.ceil(three.total_units / 2_000)
    assert even.days == math.ceil(even.total_units / 2_000)
    assert three.units_per_variant[0] == pytest.approx(2 * three.units_per_variant[1], abs=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "binary", "baseline": 1.5, "mde": 0.1}, "rate between 0 and 1"),
        ({"kind": "continuous", "baseline": 3.0, "mde": 0.1}, "per-unit variance"),
        ({"kind": "binary", "baseline": 0.2, "mde": 0.1, "weights": (0.6, 0.6)}, "sum to 1"),
        ({"kind": "binary", "baseline": 0.2, "mde": -0.1}, "mde must be a positive"),
        ({"kind": "binary", "baseline": 0.2, "mde": 0.1, "power": 1.2}, "power must be"),
        ({"kind": "binary", "baseline": 0.2, "mde": 0.1, "alpha": 0.7}, "alpha must be"),
        ({"kind": "binary", "baseline": 0.2, "mde": 0.1, "weights": (1.0,)}, "at least one"),
    ],
)
def test_bad_plans_are_refused_with_the_reason(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        plan_sample_size(**kwargs)

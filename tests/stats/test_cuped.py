"""CUPED: same answer as a Welch test on adjusted per-unit values, with less variance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

from tuneloop.errors import InvalidInputError
from tuneloop.stats import AdjustedSummary, MeanSummary, MetricSpec, compare, cuped

METRIC = MetricSpec("tokens", "continuous", direction="decrease")


def _units(rng: np.random.Generator, n: int, effect: float, rho: float) -> tuple[np.ndarray, ...]:
    before = rng.normal(100, 20, n)
    noise = rng.normal(0, 20, n)
    after = 100 + effect + rho * (before - 100) + math.sqrt(1 - rho**2) * noise
    return after, before


def test_matches_welch_on_per_unit_adjusted_values() -> None:
    rng = np.random.default_rng(12)
    y_a, x_a = _units(rng, 800, 0.0, 0.7)
    y_b, x_b = _units(rng, 1_100, 3.0, 0.7)
    a, b = AdjustedSummary.from_values(y_a, x_a), AdjustedSummary.from_values(y_b, x_b)
    result = compare(METRIC, a, b)
    # Pooled within-variant slope, then y - theta (x - mean of all x).
    theta = (
        np.sum((x_a - x_a.mean()) * (y_a - y_a.mean()))
        + np.sum((x_b - x_b.mean()) * (y_b - y_b.mean()))
    ) / (np.sum((x_a - x_a.mean()) ** 2) + np.sum((x_b - x_b.mean()) ** 2))
    x_all = np.concatenate([x_a, x_b]).mean()
    adj_a, adj_b = y_a - theta * (x_a - x_all), y_b - theta * (x_b - x_all)
    _, p_value, _ = ttest_ind(adj_b, adj_a, usevar="unequal")
    low, high = CompareMeans(DescrStatsW(adj_b), DescrStatsW(adj_a)).tconfint_diff(usevar="unequal")
    assert cuped([a, b]).theta == pytest.approx(theta, rel=1e-9)
    assert result.absolute.estimate == pytest.approx(adj_b.mean() - adj_a.mean(), rel=1e-9)
    assert result.p_value == pytest.approx(p_value, abs=1e-6)
    assert result.absolute.lower == pytest.approx(low, abs=1e-6)
    assert result.absolute.upper == pytest.approx(high, abs=1e-6)


def test_variance_reduction_is_the_squared_correlation() -> None:
    rng = np.random.default_rng(13)
    y_a, x_a = _units(rng, 50_000, 0.0, 0.6)
    y_b, x_b = _units(rng, 50_000, 0.0, 0.6)
    a, b = AdjustedSummary.from_values(y_a, x_a), AdjustedSummary.from_values(y_b, x_b)
    reduction = cuped([a, b]).variance_reduction
    assert reduction == pytest.approx(0.36, abs=0.01)
    with_cuped = compare(METRIC, a, b)
    without = compare(METRIC, MeanSummary.from_values(y_a), MeanSummary.from_values(y_b))
    width = (with_cuped.absolute.upper or 0) - (with_cuped.absolute.lower or 0)
    plain = (without.absolute.upper or 0) - (without.absolute.lower or 0)
    assert width / plain == pytest.approx(math.sqrt(1 - 0.36), abs=0.01)


def test_a_a_false_positive_rate_stays_at_alpha_and_estimates_are_unbiased() -> None:
    rng = np.random.default_rng(14)
    experiments = 1_000
    positives, estimates = 0, []
    for _ in range(experiments):
        a = AdjustedSummary.from_values(*_units(rng, 300, 0.0, 0.8))
        b = AdjustedSummary.from_values(*_units(rng, 300, 2.0, 0.8))
        result = compare(METRIC, a, b)
        positives += (result.absolute.lower or 0) > 2.0 or (result.absolute.upper or 0) < 2.0
        estimates.append(result.absolute.estimate)
    error = 3 * math.sqrt(0.05 * 0.95 / experiments)
    assert positives / experiments == pytest.approx(0.05, abs=error)
    # Residual sd is 20 sqrt(1 - 0.8^2) = 12 per unit: se of the mean of estimates ~0.03.
    assert float(np.mean(estimates)) == pytest.approx(2.0, abs=0.1)


def test_a_covariate_without_variance_leaves_the_metric_unadjusted() -> None:
    rng = np.random.default_rng(15)
    y_a, y_b = rng.normal(10, 2, 200), rng.normal(10, 2, 200)
    zeros = np.zeros(200)
    adjusted = compare(
        METRIC, AdjustedSummary.from_values(y_a, zeros), AdjustedSummary.from_values(y_b, zeros)
    )
    plain = compare(METRIC, MeanSummary.from_values(y_a), MeanSummary.from_values(y_b))
    assert adjusted.p_value == pytest.approx(plain.p_value, rel=1e-12)


def test_cuped_in_one_variant_only_is_refused() -> None:
    rng = np.random.default_rng(16)
    y, x = _units(rng, 100, 0.0, 0.5)
    with pytest.raises(InvalidInputError, match="AdjustedSummary of one in every variant"):
        compare(METRIC, AdjustedSummary.from_values(y, x), MeanSummary.from_values(y))

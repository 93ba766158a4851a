"""Hard-limit bounds against statsmodels, and the quantile bound's coverage by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from tuneloop.rollouts.limits import confident_bound
from tuneloop.stats import MeanSummary, QuantileSummary, RatioSummary


@pytest.mark.parametrize(("errors", "runs"), [(0, 5), (1, 1), (6, 10), (30, 400), (399, 400)])
def test_rate_bounds_are_exact_clopper_pearson(errors: int, runs: int) -> None:
    summary = RatioSummary.from_values(
        np.array([1.0] * errors + [0.0] * (runs - errors)), np.ones(runs)
    )
    low, high = proportion_confint(errors, runs, alpha=0.02, method="beta")
    assert confident_bound("error_rate", summary, confidence=0.99, lower=True) == pytest.approx(low)
    assert confident_bound("task_success_rate", summary, confidence=0.99, lower=False) == (
        pytest.approx(high)
    )


def test_mean_bounds_use_the_delta_method() -> None:
    rng = np.random.default_rng(3)
    cost, runs = rng.gamma(2.0, 0.02, 500), rng.integers(1, 4, 500).astype(float)
    summary = RatioSummary.from_values(cost * runs, runs)
    estimate = summary.estimate()
    half = 2.3263478740 * np.sqrt(estimate.variance / estimate.n)
    bound = confident_bound("cost_per_run", summary, confidence=0.99, lower=True)
    assert bound == pytest.approx(estimate.mean - half)
    assert (
        confident_bound("cost_per_run", MeanSummary(3, 1.0, 1.0), confidence=0.99, lower=True)
        is None
    )


def test_the_p95_lower_bound_covers_the_true_p95() -> None:
    """Lognormal latencies: the 99 % lower bound is below the true p95 in >= 98 % of samples."""
    rng = np.random.default_rng(5)
    true_p95 = float(np.exp(np.log(800) + 0.5 * 1.6448536269514722))
    below = 0
    for _ in range(1000):
        values = rng.lognormal(np.log(800), 0.5, size=60)
        bound = confident_bound(
            "latency_p95_ms", QuantileSummary.from_values(values), confidence=0.99, lower=True
        )
        assert bound is not None
        below += bound <= true_p95
    assert below >= 980
    few = QuantileSummary.from_values([30_000.0])  # one run cannot bound a p95 at 99 %
    assert confident_bound("latency_p95_ms", few, confidence=0.99, lower=True) is None
    slow = QuantileSummary.from_values([30_000.0] * 3)  # 2 of 3 at 30 s: p95 >= 30 s
    assert confident_bound("latency_p95_ms", slow, confidence=0.99, lower=True) == 30_000.0

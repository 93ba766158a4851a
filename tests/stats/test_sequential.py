"""Sequential testing: looking at any time keeps the false-positive rate at alpha."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuneloop.stats import (
    AnalysisSettings,
    MetricSpec,
    ProportionSummary,
    always_valid_p_value,
    compare,
    width_multiplier,
)
from tuneloop.stats.frequentist import difference
from tuneloop.stats.summaries import proportion_moments

ALPHA = 0.05
EXPERIMENTS = 2_000
LOOKS = 20
UNITS_PER_LOOK = 250  # per variant
RATE = 0.2
TUNING = 2 * LOOKS * UNITS_PER_LOOK


def _mc_error(rate: float, trials: int) -> float:
    return math.sqrt(rate * (1 - rate) / trials)


def _cumulative_arms(rng: np.random.Generator, rate_b: float) -> tuple[np.ndarray, ...]:
    """Units and successes after each look, per experiment: shape (EXPERIMENTS, LOOKS)."""
    n = np.cumsum(np.full((EXPERIMENTS, LOOKS), UNITS_PER_LOOK), axis=1)
    k_a = np.cumsum(rng.binomial(UNITS_PER_LOOK, RATE, size=(EXPERIMENTS, LOOKS)), axis=1)
    k_b = np.cumsum(rng.binomial(UNITS_PER_LOOK, rate_b, size=(EXPERIMENTS, LOOKS)), axis=1)
    return n, k_a, k_b


def _p_values(n: np.ndarray, k_a: np.ndarray, k_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-horizon and always-valid p-values at every look, with the engine's kernels."""
    mean_a, var_a = proportion_moments(n, k_a)
    mean_b, var_b = proportion_moments(n, k_b)
    inference = difference(mean_a, var_a, n, mean_b, var_b, n, welch=False)
    fixed = inference.p_value()
    valid = always_valid_p_value(
        inference.estimate, inference.se, 2 * n, alpha=ALPHA, tuning=TUNING
    )
    return fixed, valid


def test_a_a_peeking_stays_at_alpha_sequentially_but_not_with_fixed_horizon_tests() -> None:
    rng = np.random.default_rng(20240601)
    fixed, valid = _p_values(*_cumulative_arms(rng, RATE))
    naive_rate = float(np.mean((fixed < ALPHA).any(axis=1)))
    sequential_rate = float(np.mean((valid < ALPHA).any(axis=1)))
    error = _mc_error(ALPHA, EXPERIMENTS)
    # Stopping at the first fixed-horizon p < 0.05 out of 20 looks: several times alpha.
    assert naive_rate > ALPHA + 5 * error, naive_rate
    # The always-valid p-value, looked at 20 times, stays at or below alpha.
    assert sequential_rate <= ALPHA + 2 * error, sequential_rate
    # ...and each single look is a valid, if conservative, test.
    assert float(np.mean(fixed[:, -1] < ALPHA)) == pytest.approx(ALPHA, abs=3 * error)


def test_sequential_test_still_finds_a_real_effect_early() -> None:
    rng = np.random.default_rng(7)
    _, valid = _p_values(*_cumulative_arms(rng, RATE + 0.05))
    found = (valid < ALPHA).any(axis=1)
    first = np.argmax(valid < ALPHA, axis=1)[found]
    assert float(np.mean(found)) > 0.99
    # Half the experiments could stop before the 8th of 20 looks: stopping early is the point.
    assert float(np.median(first)) < 8


def test_confidence_sequence_excludes_zero_exactly_when_p_is_below_alpha() -> None:
    rng = np.random.default_rng(3)
    estimate = rng.normal(0, 0.02, 10_000)
    se = rng.uniform(0.003, 0.02, 10_000)
    n = rng.integers(100, 100_000, 10_000)
    half = width_multiplier(n, ALPHA, TUNING) * se
    p = always_valid_p_value(estimate, se, n, alpha=ALPHA, tuning=TUNING)
    np.testing.assert_array_equal(np.abs(estimate) > half, p < ALPHA)


def test_sequence_is_wider_than_the_fixed_interval_and_tuned_for_the_tuning_point() -> None:
    n = np.array([100, 1_000, TUNING, 100_000, 10_000_000])
    assert (width_multiplier(n, ALPHA, TUNING) > 1.96).all()
    # At n = TUNING units, no other tuning gives a narrower sequence (within the grid step).
    tunings = np.geomspace(TUNING / 100, TUNING * 100, 401)
    widths = width_multiplier(TUNING, ALPHA, tunings)
    assert tunings[np.argmin(widths)] == pytest.approx(TUNING, rel=0.05)
    assert float(width_multiplier(TUNING, ALPHA, TUNING)) == pytest.approx(3.03, abs=0.01)


def test_compare_uses_the_same_kernel_and_decides_on_it_when_sequential() -> None:
    metric = MetricSpec("task_success", "binary")
    control, treatment = ProportionSummary(3000, 600), ProportionSummary(3000, 675)
    settings = AnalysisSettings(method="sequential", sequential_tuning=TUNING)
    result = compare(metric, control, treatment, settings=settings)
    mean_a, var_a = proportion_moments(3000, 600)
    mean_b, var_b = proportion_moments(3000, 675)
    inference = difference(mean_a, var_a, 3000, mean_b, var_b, 3000, welch=False)
    expected = always_valid_p_value(
        inference.estimate, inference.se, 6000, alpha=ALPHA, tuning=TUNING
    )
    assert result.always_valid_p_value == pytest.approx(float(expected), rel=1e-12)
    # Fixed-horizon p is small, yet not enough evidence for a test you may peek at.
    assert result.p_value is not None and result.p_value < ALPHA
    assert result.always_valid_p_value is not None and result.always_valid_p_value > ALPHA
    assert result.significant is False
    half = float(width_multiplier(6000, ALPHA, TUNING) * inference.se)
    assert result.sequential_absolute.lower == pytest.approx(0.025 - half)
    assert result.sequential_absolute.upper == pytest.approx(0.025 + half)

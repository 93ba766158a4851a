"""Delta-method intervals: ratio metrics and relative lift cover at their nominal level."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuneloop.stats import MetricSpec, RatioSummary, compare
from tuneloop.stats.frequentist import difference, relative_difference
from tuneloop.stats.summaries import ratio_moments

EXPERIMENTS = 2_000
USERS = 400  # per variant
ERROR = 3 * math.sqrt(0.95 * 0.05 / EXPERIMENTS)


def _users(rng: np.random.Generator, error_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Tool calls and tool errors per user: heavy users, and users who hit errors more."""
    calls = rng.poisson(rng.gamma(2.0, 3.0, size=(EXPERIMENTS, USERS))) + 1
    rates = rng.beta(0.5, 0.5 * (1 - error_rate) / error_rate, size=(EXPERIMENTS, USERS))
    return rng.binomial(calls, rates).astype(float), calls.astype(float)


def _moments(errors: np.ndarray, calls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ratio_moments(
        USERS,
        errors.sum(axis=1),
        (errors * errors).sum(axis=1),
        calls.sum(axis=1),
        (calls * calls).sum(axis=1),
        (errors * calls).sum(axis=1),
    )


def test_ratio_metric_interval_covers_the_true_difference() -> None:
    rng = np.random.default_rng(2024)
    mean_a, var_a = _moments(*_users(rng, 0.05))
    mean_b, var_b = _moments(*_users(rng, 0.06))
    low, high = difference(mean_a, var_a, USERS, mean_b, var_b, USERS, welch=False).interval(0.05)
    # The ratio of expectations E[errors] / E[calls] equals E[rate] = the Beta mean.
    coverage = float(np.mean((low <= 0.01) & (high >= 0.01)))
    assert coverage == pytest.approx(0.95, abs=ERROR)


def test_treating_tool_calls_as_independent_under_covers() -> None:
    # The reason for the delta method: per-call binomial variance ignores that a user's
    # calls share that user's error rate, so its intervals are too narrow.
    rng = np.random.default_rng(2024)
    errors_a, calls_a = _users(rng, 0.05)
    errors_b, calls_b = _users(rng, 0.06)
    p_a = errors_a.sum(axis=1) / calls_a.sum(axis=1)
    p_b = errors_b.sum(axis=1) / calls_b.sum(axis=1)
    se = np.sqrt(p_a * (1 - p_a) / calls_a.sum(axis=1) + p_b * (1 - p_b) / calls_b.sum(axis=1))
    covered = np.abs(p_b - p_a - 0.01) <= 1.959964 * se
    assert float(np.mean(covered)) < 0.95 - 2 * ERROR


def test_relative_lift_interval_covers_the_true_relative_lift() -> None:
    rng = np.random.default_rng(77)
    mean_a, var_a = _moments(*_users(rng, 0.05))
    mean_b, var_b = _moments(*_users(rng, 0.06))
    low, high = relative_difference(
        mean_a, var_a, USERS, mean_b, var_b, USERS, welch=False
    ).interval(0.05)
    coverage = float(np.mean((low <= 0.2) & (high >= 0.2)))
    assert coverage == pytest.approx(0.95, abs=ERROR)


def test_ratio_variance_equals_the_variance_of_the_linearized_per_unit_values() -> None:
    rng = np.random.default_rng(8)
    errors, calls = (array[0] for array in _users(rng, 0.05))
    summary = RatioSummary.from_values(errors, calls)
    estimate = summary.estimate()
    ratio = errors.sum() / calls.sum()
    linearized = (errors - ratio * calls) / calls.mean()
    assert estimate.mean == pytest.approx(ratio, rel=1e-12)
    assert estimate.variance == pytest.approx(np.var(linearized, ddof=1), rel=1e-9)


def test_compare_reports_both_lifts_for_a_ratio_metric() -> None:
    rng = np.random.default_rng(9)
    errors, calls = _users(rng, 0.05)
    control = RatioSummary.from_values(errors[0], calls[0])
    treatment = RatioSummary.from_values(errors[1] * 2, calls[1])
    metric = MetricSpec("tool_error_rate", "ratio", direction="decrease")
    result = compare(metric, control, treatment)
    a, b = control.estimate().mean, treatment.estimate().mean
    assert result.absolute.estimate == pytest.approx(b - a)
    assert result.relative.estimate == pytest.approx(b / a - 1)
    assert result.significant and result.effect == "worse"
    assert result.relative.lower is not None and result.relative.lower > 0

"""Quantile bootstrap: exactly the resampling bootstrap's distribution, seeded, and it covers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuneloop.stats import (
    AnalysisSettings,
    MetricSpec,
    QuantileSummary,
    compare,
    compare_quantiles,
)
from tuneloop.stats.bootstrap import quantile_draws


def test_order_statistic_draws_match_resampling_and_sorting() -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(1, 15, size=37).astype(float)  # ties on purpose
    summary = QuantileSummary.from_values(data)
    draws = 40_000
    q = 0.9
    _, ours = quantile_draws(summary, q, draws=draws, rng=np.random.default_rng(2))
    resampled = np.sort(rng.choice(data, size=(draws, data.size), replace=True), axis=1)
    naive = resampled[:, math.floor(q * (data.size - 1))]
    for value in np.unique(data):
        p_ours, p_naive = np.mean(ours == value), np.mean(naive == value)
        error = math.sqrt(max(p_naive, 1e-4) * (1 - p_naive) / draws)
        assert p_ours == pytest.approx(p_naive, abs=5 * error + 1e-4), value


def test_point_estimate_uses_the_lower_rank_convention() -> None:
    summary = QuantileSummary.from_values(np.arange(1.0, 101.0))
    assert summary.quantile(0.95) == 95.0  # rank floor(0.95 * 99) = 94, 0-based
    assert summary.quantile(0.5) == 50.0
    assert QuantileSummary.from_counts({10.0: 3, 20.0: 2}).quantile(0.9) == 20.0  # rank 3 of 5


def test_interval_on_a_difference_of_p95s_covers_the_true_difference() -> None:
    rng = np.random.default_rng(3)
    experiments, n, q = 300, 1_500, 0.95
    # Log-normal latencies; the treatment is 10 % slower, so its p95 is 10 % higher.
    true_a = math.exp(6 + 0.5 * 1.6448536269514722)
    covered = 0
    for i in range(experiments):
        a = QuantileSummary.from_values(rng.lognormal(6, 0.5, n).round())
        b = QuantileSummary.from_values((rng.lognormal(6, 0.5, n) * 1.1).round())
        low, high = compare_quantiles(a, b, q, draws=2_000, seed=i).interval(0.1) or (0, 0)
        covered += low <= 0.1 * true_a <= high
    error = 3 * math.sqrt(0.9 * 0.1 / experiments)
    assert covered / experiments == pytest.approx(0.9, abs=error)


def test_same_seed_same_result_other_seed_other_draws() -> None:
    rng = np.random.default_rng(4)
    a = QuantileSummary.from_values(rng.lognormal(6, 0.5, 500))
    b = QuantileSummary.from_values(rng.lognormal(6.1, 0.5, 500))
    first = compare_quantiles(a, b, 0.95, seed=[1, 2])
    again = compare_quantiles(a, b, 0.95, seed=[1, 2])
    other = compare_quantiles(a, b, 0.95, seed=[1, 3])
    np.testing.assert_array_equal(first.differences, again.differences)
    assert not np.array_equal(first.differences, other.differences)
    metric = MetricSpec("latency_p95", "quantile", quantile=0.95, direction="decrease")
    settings = AnalysisSettings(seed=5)
    assert compare(metric, a, b, settings=settings) == compare(metric, a, b, settings=settings)


def test_quantile_metric_with_a_relative_guardrail() -> None:
    rng = np.random.default_rng(6)
    control = QuantileSummary.from_values(rng.lognormal(6, 0.5, 20_000))
    slower = QuantileSummary.from_values(rng.lognormal(6, 0.5, 20_000) * 1.25)
    same = QuantileSummary.from_values(rng.lognormal(6, 0.5, 20_000))
    metric = MetricSpec(
        "latency_p95",
        "quantile",
        quantile=0.95,
        role="guardrail",
        direction="decrease",
        margin=0.10,
        margin_kind="relative",
    )
    breached = compare(metric, control, slower).guardrail
    fine = compare(metric, control, same).guardrail
    assert breached is not None and breached.verdict == "breached"
    assert breached.worse_by == pytest.approx(0.25, abs=0.05)
    assert fine is not None and fine.verdict == "non_inferior"
    assert fine.upper_bound is not None and fine.upper_bound < 0.10


def test_identical_constant_values_are_not_enough_data() -> None:
    same = QuantileSummary.from_counts({100.0: 50})
    metric = MetricSpec("latency_p95", "quantile", quantile=0.95)
    result = compare(metric, same, same)
    assert result.status == "not_enough_data"
    assert result.reason is not None and "zero variance" in result.reason
    assert result.to_dict()["p_value"] is None

"""The experiment analysis end to end: results, edge cases, recommendations, bad input."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.stats import (
    AnalysisSettings,
    MeanSummary,
    MetricSpec,
    ProportionSummary,
    QuantileSummary,
    RatioSummary,
    Summary,
    Variant,
    analyze,
    check_guardrail,
    plan_sample_size,
)

SUCCESS = MetricSpec("task_success", "binary", role="primary", mde=0.05)
ERRORS = MetricSpec("error_rate", "binary", role="guardrail", direction="decrease", margin=0.01)
COST = MetricSpec("cost_usd", "continuous", direction="decrease")


def _json(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = result.to_dict()
    json.dumps(data, allow_nan=False)  # raises on NaN or inf anywhere
    return data


def _variants(*arms: dict[str, Summary], units: list[int] | None = None) -> list[Variant]:
    names = ["control", "treatment", "treatment-2", "treatment-3"]
    weight = 1 / len(arms)
    counts = units or [next(iter(arm.values())).n for arm in arms]  # type: ignore[union-attr]
    return [Variant(names[i], weight, counts[i], arm) for i, arm in enumerate(arms)]


def _binary(n: int, rate: float, errors: float = 0.05) -> dict[str, Summary]:
    return {
        "task_success": ProportionSummary(n, round(n * rate)),
        "error_rate": ProportionSummary(n, round(n * errors)),
    }


def test_a_clear_winner_with_healthy_guardrails_ships() -> None:
    result = analyze(_variants(_binary(20_000, 0.20), _binary(20_000, 0.23)), [SUCCESS, ERRORS])
    comparison = result.metric("task_success").comparisons[0]
    assert comparison.significant and comparison.effect == "better"
    assert comparison.relative.estimate == pytest.approx(0.15)
    assert comparison.absolute.estimate == pytest.approx(0.03)
    guardrail = result.metric("error_rate").comparisons[0].guardrail
    assert guardrail is not None and guardrail.verdict == "non_inferior"
    assert result.recommendation.action == "ship"
    assert result.recommendation.variant == "treatment"
    assert result.trustworthy
    data = _json(result)
    assert data["recommendation"]["action"] == "ship"
    assert data["metrics"][0]["values"][1] == {
        "variant": "treatment",
        "units": 20_000,
        "value": 0.23,
    }


def test_a_breached_guardrail_stops_and_names_the_metric() -> None:
    control = _binary(20_000, 0.20, errors=0.05)
    treatment = _binary(20_000, 0.23, errors=0.08)  # 3 points worse, margin is 1
    result = analyze(_variants(control, treatment), [SUCCESS, ERRORS])
    guardrail = result.metric("error_rate").comparisons[0].guardrail
    assert guardrail is not None and guardrail.verdict == "breached"
    assert guardrail.worse_by == pytest.approx(0.03)
    assert guardrail.lower_bound is not None and guardrail.lower_bound > 0.01
    assert result.recommendation.action == "stop"
    assert "guardrail error_rate breached in treatment" in result.recommendation.message


def test_sample_ratio_mismatch_marks_results_untrustworthy() -> None:
    arms = (_binary(10_400, 0.20), _binary(9_600, 0.23))
    result = analyze(_variants(*arms), [SUCCESS, ERRORS])
    assert result.srm.flagged and not result.trustworthy
    assert result.recommendation.action == "investigate"
    assert "sample ratio mismatch" in result.recommendation.message
    assert _json(result)["trustworthy"] is False


def test_underpowered_experiment_keeps_running_for_the_planned_units() -> None:
    result = analyze(_variants(_binary(1_000, 0.200), _binary(1_000, 0.205)), [SUCCESS])
    comparison = result.metric("task_success").comparisons[0]
    assert not comparison.significant
    # 5 % of a 20 % rate is one point: ~25,000 units per variant at 80 % power, which is
    # what planning from scratch says too (it assumes the treatment's variance at +1 point).
    plan = plan_sample_size(kind="binary", baseline=0.2, mde=0.05)
    assert comparison.planned_units is not None
    assert comparison.planned_units == pytest.approx(plan.total_units, rel=0.01)
    assert result.recommendation.action == "keep_running"
    assert result.recommendation.more_units == comparison.planned_units - 2_000
    assert f"{result.recommendation.more_units:,} more units" in result.recommendation.message


def test_no_effect_at_the_planned_size_stops() -> None:
    result = analyze(_variants(_binary(60_000, 0.2), _binary(60_000, 0.2)), [SUCCESS])
    assert result.recommendation.action == "stop"
    assert "no significant effect" in result.recommendation.message


def test_a_worse_primary_metric_stops() -> None:
    result = analyze(_variants(_binary(20_000, 0.23), _binary(20_000, 0.20)), [SUCCESS])
    assert result.metric("task_success").comparisons[0].effect == "worse"
    assert result.recommendation.action == "stop"
    assert "worse in every variant" in result.recommendation.message


def test_zero_units_in_a_variant_is_not_enough_data_never_nan() -> None:
    empty = {
        "task_success": ProportionSummary(0, 0),
        "cost_usd": MeanSummary(0, 0.0, 0.0),
        "error_rate": ProportionSummary(0, 0),
    }
    control = {**_binary(500, 0.2), "cost_usd": MeanSummary.from_values(np.arange(500.0))}
    result = analyze(_variants(control, empty, units=[500, 0]), [SUCCESS, COST, ERRORS])
    for metric in result.metrics:
        comparison = metric.comparisons[0]
        assert comparison.status == "not_enough_data"
        assert comparison.reason == "no units in variant 'treatment'"
        assert comparison.p_value is None and comparison.absolute.estimate is None
        assert metric.values[1].value is None
    guardrail = result.metric("error_rate").comparisons[0].guardrail
    assert guardrail is not None and guardrail.status == "not_enough_data"
    assert result.recommendation.action == "investigate"  # 500/0 is also a ratio mismatch
    data = _json(result)
    assert data["metrics"][1]["comparisons"][0]["relative"] == {
        "estimate": None,
        "lower": None,
        "upper": None,
    }


def test_zero_variance_and_a_zero_control_are_explicit() -> None:
    flat = {"task_success": ProportionSummary(1_000, 0)}
    result = analyze(_variants(flat, flat), [SUCCESS])
    comparison = result.metric("task_success").comparisons[0]
    assert comparison.status == "not_enough_data"
    assert "zero variance" in (comparison.reason or "")
    assert result.recommendation.action == "keep_running"
    # A control at 0 with a treatment above it: absolute lift is defined, relative is not.
    lifted = (
        analyze(_variants(flat, {"task_success": ProportionSummary(1_000, 30)}), [SUCCESS])
        .metric("task_success")
        .comparisons[0]
    )
    assert lifted.status == "ok" and lifted.absolute.estimate == pytest.approx(0.03)
    assert lifted.relative.estimate is None
    json.dumps(lifted.to_dict(), allow_nan=False)


def test_a_b_n_corrects_for_comparisons_and_says_how() -> None:
    arms = [_binary(5_000, rate) for rate in (0.20, 0.215, 0.22, 0.205)]
    for method in ("holm", "bonferroni"):
        result = analyze(_variants(*arms), [SUCCESS], AnalysisSettings(correction=method))  # type: ignore[arg-type]
        metric = result.metric("task_success")
        raw = [c.p_value for c in metric.comparisons]
        _, expected, _, _ = multipletests(raw, method=method)
        assert [c.adjusted_p_value for c in metric.comparisons] == pytest.approx(list(expected))
        assert metric.correction == method
        assert metric.interval_level == pytest.approx(1 - 0.05 / 3)
        for comparison, adjusted in zip(metric.comparisons, expected, strict=True):
            assert comparison.significant == (adjusted < 0.05)
        assert _json(result)["metrics"][0]["correction"] == method


def test_sequential_method_decides_on_always_valid_p_values() -> None:
    arms = (_binary(4_000, 0.20), _binary(4_000, 0.222))
    fixed = analyze(_variants(*arms), [SUCCESS]).metric("task_success").comparisons[0]
    sequential = (
        analyze(_variants(*arms), [SUCCESS], AnalysisSettings(method="sequential"))
        .metric("task_success")
        .comparisons[0]
    )
    assert fixed.p_value is not None and fixed.p_value < 0.05 and fixed.significant
    assert sequential.always_valid_p_value is not None
    assert sequential.always_valid_p_value > 0.05 and not sequential.significant
    lower = sequential.sequential_absolute.lower
    assert lower is not None and lower < 0 < (fixed.absolute.lower or 0)


def test_all_metric_kinds_in_one_analysis_are_json_safe() -> None:
    rng = np.random.default_rng(21)
    arms = []
    for shift in (1.0, 1.1):
        calls = rng.poisson(3, 2_000)
        arms.append(
            {
                **_binary(2_000, 0.2),
                "cost_usd": MeanSummary.from_values(rng.gamma(2, 0.01 * shift, 2_000)),
                "tool_errors": RatioSummary.from_values(rng.binomial(calls, 0.05), calls),
                "latency_p95": QuantileSummary.from_values(rng.lognormal(6, 0.5, 6_000) * shift),
            }
        )
    metrics = [
        SUCCESS,
        ERRORS,
        COST,
        MetricSpec("tool_errors", "ratio", direction="decrease"),
        MetricSpec(
            "latency_p95",
            "quantile",
            quantile=0.95,
            role="guardrail",
            direction="decrease",
            margin=0.2,
            margin_kind="relative",
        ),
    ]
    data = _json(analyze(_variants(*arms), metrics, AnalysisSettings(method="sequential")))
    tests = {m["name"]: m["test"] for m in data["metrics"]}
    assert tests == {
        "task_success": "two-proportion z-test (unpooled)",
        "error_rate": "two-proportion z-test (unpooled)",
        "cost_usd": "Welch t-test",
        "tool_errors": "delta-method z-test",
        "latency_p95": "bootstrap of the quantile difference",
    }
    latency = data["metrics"][4]["comparisons"][0]
    assert latency["relative"]["estimate"] == pytest.approx(0.1, abs=0.05)
    assert latency["guardrail"]["verdict"] in ("non_inferior", "inconclusive")


def test_rollout_guard_check_is_sequential_and_typed() -> None:
    stable, candidate = ProportionSummary(50_000, 2_500), ProportionSummary(2_500, 200)
    settings = AnalysisSettings(method="sequential", sequential_tuning=10_000)
    verdict = check_guardrail(ERRORS, stable, candidate, settings=settings)
    assert verdict.method == "sequential"
    assert verdict.variant == "candidate" and verdict.worse_by == pytest.approx(0.03)
    assert verdict.verdict == "breached"
    ok = check_guardrail(ERRORS, stable, ProportionSummary(20_000, 980), settings=settings)
    assert ok.verdict == "non_inferior" and ok.p_value is not None and ok.p_value < 0.05
    with pytest.raises(ConfigError, match="not a guardrail"):
        check_guardrail(SUCCESS, stable, candidate)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: analyze(_variants(_binary(10, 0.2)), [SUCCESS]), ConfigError, "at least one"),
        (
            lambda: analyze(
                [Variant("a", 0.5, 10, _binary(10, 0.2)), Variant("b", 0.6, 10, _binary(10, 0.2))],
                [SUCCESS],
            ),
            ConfigError,
            "sum to 1",
        ),
        (
            lambda: analyze(_variants(_binary(10, 0.2), _binary(10, 0.2)), [SUCCESS, SUCCESS]),
            ConfigError,
            "unique",
        ),
        (
            lambda: analyze(_variants(_binary(10, 0.2), _binary(10, 0.2)), [ERRORS]),
            ConfigError,
            "exactly one metric",
        ),
        (
            lambda: analyze(_variants(_binary(10, 0.2), _binary(10, 0.2)), [SUCCESS, COST]),
            InvalidInputError,
            "no summary for metric",
        ),
        (
            lambda: analyze(
                _variants(
                    {"task_success": MeanSummary(10, 1.0, 1.0)},
                    {"task_success": MeanSummary(10, 1.0, 1.0)},
                ),
                [SUCCESS],
            ),
            InvalidInputError,
            "must give a ProportionSummary",
        ),
        (lambda: Variant("a", 0.5, -3), InvalidInputError, "non-negative integer"),
        (lambda: MetricSpec("e", "binary", role="guardrail"), ConfigError, "needs a non-negative"),
        (lambda: MetricSpec("e", "binary", margin=0.1), ConfigError, "guardrails only"),
        (lambda: MetricSpec("p", "quantile"), ConfigError, "needs quantile"),
        (lambda: MetricSpec("p", "mean"), ConfigError, "kind must be one of"),  # type: ignore[arg-type]
        (lambda: AnalysisSettings(alpha=0.7), ConfigError, "alpha must be"),
        (lambda: AnalysisSettings(method="bayes"), ConfigError, "method must be"),  # type: ignore[arg-type]
        (lambda: AnalysisSettings(sequential_tuning=0), ConfigError, "sequential_tuning"),
    ],
)
def test_bad_input_names_the_problem(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()

"""Results from per-unit tables: values, lifts, recommendations, time series (pure)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest

from tuneloop.experiments import (
    ExperimentDefinition,
    ExperimentRecord,
    UnitTable,
    experiment_results,
    look_times,
)
from tuneloop.experiments.metrics import UNIT_COLUMNS
from tuneloop.experiments.units import HOUR_MS, LatencyCounts
from tuneloop.stats import MetricSpec, RatioSummary, Variant, analyze

T0 = 1_767_225_600_000
DAY = 24 * HOUR_MS
V1, V2 = "a" * 64, "b" * 64


def definition(**overrides: Any) -> ExperimentDefinition:
    body: dict[str, Any] = {
        "key": "exp-1",
        "agent": "support",
        "unit_type": "user",
        "salt": "exp-1",
        "variants": [
            {"name": "control", "weight": 0.5, "version": V1, "label": "1.0.0"},
            {"name": "treatment", "weight": 0.5, "version": V2, "label": "1.1.0"},
        ],
        "primary_metric": "task_success",
        "guardrails": [{"metric": "error_rate", "margin": 0.02}],
        "metrics": ["latency_mean", "runs_per_unit"],
        "method": "sequential",
    }
    body.update(overrides)
    return ExperimentDefinition.model_validate(body)


def record(stopped_ms: int | None = T0 + 7 * DAY, **overrides: Any) -> ExperimentRecord:
    return ExperimentRecord(
        definition(**overrides),
        "stopped" if stopped_ms else "running",
        created_ms=T0 - 1,
        created_by="k",
        started_ms=T0,
        stopped_ms=stopped_ms,
    )


def table(
    units: tuple[int, int],
    success: tuple[float, float],
    error: tuple[float, float] = (0.05, 0.05),
    seed: int = 1,
) -> UnitTable:
    """Users with 1-4 runs each, first exposed over a week."""
    rng = np.random.default_rng(seed)
    group = np.repeat([0, 1], units)
    size = int(group.size)
    runs = rng.integers(1, 5, size).astype(float)
    columns = {name: np.zeros(size) for name in UNIT_COLUMNS}
    columns["runs"] = runs
    columns["timed_runs"] = runs
    columns["successes"] = rng.binomial(runs.astype(int), np.take(success, group)).astype(float)
    columns["errors"] = rng.binomial(runs.astype(int), np.take(error, group)).astype(float)
    columns["duration_ms"] = runs * rng.gamma(4.0, 50.0, size)
    first = T0 + rng.integers(0, 7 * DAY, size)
    return UnitTable(
        ("control", "treatment"),
        group,
        tuple(f"u{i}" for i in range(size)),
        first.astype(np.int64),
        columns,
    )


def metric(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [m for m in doc["metrics"] if m["name"] == name]
    return found


def test_results_match_an_independent_analysis_of_the_same_units() -> None:
    units = table((3000, 3000), (0.60, 0.66))
    doc = experiment_results(record(), units, now_ms=T0 + 8 * DAY)
    json.dumps(doc, allow_nan=False)
    assert doc["status"] == "ok" and doc["units"] == {"control": 3000, "treatment": 3000}
    success = metric(doc, "task_success")
    for i, value in enumerate(success["values"]):
        mask = units.group == i
        expected = units.columns["successes"][mask].sum() / units.columns["runs"][mask].sum()
        assert value["value"] == pytest.approx(expected)
    by_hand = analyze(
        [
            Variant(
                name,
                0.5,
                3000,
                {
                    "task_success": RatioSummary.from_values(
                        units.columns["successes"][units.group == i],
                        units.columns["runs"][units.group == i],
                    )
                },
            )
            for i, name in enumerate(("control", "treatment"))
        ],
        [MetricSpec("task_success", "ratio", role="primary")],
    )
    (mine,), (theirs,) = success["comparisons"], by_hand.metrics[0].comparisons
    assert mine["p_value"] == pytest.approx(theirs.p_value, rel=1e-9)
    assert mine["absolute"]["lower"] == pytest.approx(theirs.absolute.lower, rel=1e-9)
    assert mine["effect"] == "better" and mine["significant"] is True
    assert metric(doc, "error_rate")["comparisons"][0]["guardrail"]["verdict"] == "non_inferior"
    assert doc["recommendation"]["action"] == "ship"
    assert doc["recommendation"]["variant"] == "treatment"
    assert doc["srm"]["flagged"] is False and doc["trustworthy"] is True


def test_the_time_series_grows_by_first_exposure_and_ends_at_the_full_analysis() -> None:
    units = table((500, 500), (0.6, 0.7), seed=3)
    doc = experiment_results(record(), units, now_ms=T0 + 8 * DAY)
    series = doc["timeseries"]
    assert (series["metric"], series["interval"]) == ("task_success", "day")
    looks = series["looks"]
    assert [look["at_ms"] for look in looks] == [T0 + k * DAY for k in range(1, 8)]
    for look in looks:
        exposed = units.first_ms < look["at_ms"]
        assert look["units"] == [int((exposed & (units.group == g)).sum()) for g in (0, 1)]
    final = metric(doc, "task_success")
    assert looks[-1]["values"] == [v["value"] for v in final["values"]]
    last = looks[-1]["comparisons"][0]
    assert last["always_valid_p_value"] == pytest.approx(
        final["comparisons"][0]["always_valid_p_value"]
    )
    widths = [
        c["sequential_absolute"]["upper"] - c["sequential_absolute"]["lower"]
        for c in (look["comparisons"][0] for look in looks)
    ]
    assert widths[-1] < widths[0]
    hourly = experiment_results(
        record(stopped_ms=T0 + 5 * HOUR_MS + 7), units, now_ms=T0 + DAY, interval="hour"
    )
    assert [look["at_ms"] for look in hourly["timeseries"]["looks"]] == [
        T0 + k * HOUR_MS for k in range(1, 6)
    ] + [T0 + 5 * HOUR_MS + 7]


def test_a_variant_without_units_is_not_enough_data_never_nan() -> None:
    units = table((300, 0), (0.6, 0.6))
    doc = experiment_results(record(), units, now_ms=T0 + 8 * DAY)
    text = json.dumps(doc, allow_nan=False)
    assert "NaN" not in text and "Infinity" not in text
    assert doc["status"] == "not_enough_data"
    assert doc["message"] == "not enough data: no units in variant 'treatment'"
    success = metric(doc, "task_success")
    assert success["status"] == "not_enough_data"
    assert success["values"][1] == {"variant": "treatment", "units": 0, "value": None}
    assert success["comparisons"][0]["p_value"] is None
    assert doc["recommendation"]["action"] in ("keep_running", "investigate")
    nothing = experiment_results(record(), table((0, 0), (0.5, 0.5)), now_ms=T0 + 8 * DAY)
    json.dumps(nothing, allow_nan=False)
    assert nothing["status"] == "not_enough_data" and nothing["total_units"] == 0
    assert nothing["recommendation"]["message"].startswith("keep running: not enough data")


def test_a_fixed_horizon_is_not_called_before_its_planned_sample() -> None:
    units = table((800, 800), (0.60, 0.70))
    early = experiment_results(
        record(method="fixed", planned_units=10_000), units, now_ms=T0 + 8 * DAY
    )
    assert early["engine_recommendation"]["action"] == "ship"
    held = early["recommendation"]
    assert (held["action"], held["more_units"]) == ("keep_running", 10_000 - 1_600)
    assert held["message"].startswith("keep running: 8,400 more units to the planned sample")
    reached = experiment_results(
        record(method="fixed", planned_units=1_600), units, now_ms=T0 + 8 * DAY
    )
    assert reached["recommendation"]["action"] == "ship"
    flat = experiment_results(
        record(method="fixed", planned_units=1_000),
        table((800, 800), (0.6, 0.6), seed=5),
        now_ms=T0 + 8 * DAY,
    )
    assert flat["recommendation"]["action"] == "stop"
    assert (
        "no significant effect on task_success at the planned sample"
        in (flat["recommendation"]["message"])
    )


def test_a_breached_guardrail_stops_at_once() -> None:
    units = table((2000, 2000), (0.6, 0.62), error=(0.02, 0.10))
    doc = experiment_results(
        record(method="fixed", planned_units=100_000), units, now_ms=T0 + 8 * DAY
    )
    assert doc["recommendation"]["action"] == "stop"
    assert doc["recommendation"]["message"].startswith("stop: guardrail error_rate breached in")


def test_look_times_are_boundaries_then_the_end_and_stay_few() -> None:
    assert look_times(T0 + 5, T0 + 5, "day") == [T0 + 5]
    assert look_times(T0 + 5, T0 + 2 * DAY, "day") == [T0 + DAY, T0 + 2 * DAY]
    many = look_times(T0, T0 + 365 * DAY, "hour")
    assert len(many) <= 240 and many[-1] == T0 + 365 * DAY
    assert all(b > a for a, b in itertools.pairwise(many))


def test_a_quantile_primary_is_bootstrapped_and_its_series_follows_run_hours() -> None:
    rng = np.random.default_rng(2)
    units = table((400, 400), (0.6, 0.6))
    hours = np.arange(0, 7 * 24, dtype=np.int64) * HOUR_MS + T0
    rows = [
        (g, int(h), int(bucket), int(rng.integers(1, 4)))
        for g in (0, 1)
        for h in hours[::12]
        for bucket in rng.integers(560 if g == 0 else 540, 600 if g == 0 else 580, 3)
    ]
    latency = LatencyCounts(*(np.array(col, dtype=np.int64) for col in zip(*rows, strict=True)))
    units = UnitTable(
        units.groups, units.group, units.units, units.first_ms, units.columns, latency=latency
    )
    doc = experiment_results(
        record(primary_metric="latency_p95", guardrails=[], metrics=[]),
        units,
        now_ms=T0 + 8 * DAY,
    )
    json.dumps(doc, allow_nan=False)
    p95 = metric(doc, "latency_p95")
    assert p95["test"] == "bootstrap of the quantile difference"
    control, treatment = (v["value"] for v in p95["values"])
    assert treatment < control
    assert p95["comparisons"][0]["effect"] == "better"
    assert all(look["values"][0] is not None for look in doc["timeseries"]["looks"])
    first, last = doc["timeseries"]["looks"][0], doc["timeseries"]["looks"][-1]
    assert last["values"] == [control, treatment]
    assert first["comparisons"][0]["absolute"]["estimate"] is not None

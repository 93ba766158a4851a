"""An experiment's results: the analysis of its units, a recommendation and a time series.

`experiment_results` takes the stored experiment and its `UnitTable` and returns the
JSON document ``GET /api/v1/experiments/{id}/results`` serves: per metric and variant
the units, value, lifts with intervals, p-values (fixed-horizon and always-valid),
significance and guardrail verdicts; the SRM verdict; the recommendation; and the
primary metric's estimate at every hourly or daily look since the start.

A fixed-horizon experiment with a planned sample (``planned_units``, or the size its
``mde`` needs) is not called before it gets there: its p-values are valid once, at the
planned size, so an early "ship" becomes "keep running" (a breached guardrail or a
sample ratio mismatch still stops it at once). Sequential experiments decide any time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from tuneloop.experiments.definition import ExperimentDefinition
from tuneloop.experiments.lifecycle import ExperimentRecord
from tuneloop.experiments.metrics import metric_def
from tuneloop.experiments.units import HOUR_MS, UnitTable, cumulative_summaries, summaries
from tuneloop.stats import (
    AnalysisSettings,
    ExperimentResult,
    MetricSpec,
    Recommendation,
    Variant,
    analyze,
)

LookInterval = Literal["hour", "day"]
STEP_MS: dict[LookInterval, int] = {"hour": HOUR_MS, "day": 24 * HOUR_MS}
MAX_LOOKS = 240
# The series is a picture for the dashboard; fewer bootstrap draws per look suffice.
SERIES_BOOTSTRAP_DRAWS = 2_000


def look_times(
    since_ms: int, until_ms: int, interval: LookInterval, *, max_looks: int = MAX_LOOKS
) -> list[int]:
    """Look times: every UTC hour or day boundary after ``since_ms``, then ``until_ms``.

    With more boundaries than ``max_looks``, every k-th is kept so the series stays short.
    """
    step = STEP_MS[interval]
    first = (since_ms // step + 1) * step
    count = max(0, (until_ms - first + step - 1) // step)
    stride = max(1, math.ceil(count / max(max_looks - 1, 1)))
    times = [first + i * step for i in range(0, count, stride)]
    return [t for t in times if t < until_ms] + [until_ms]


def _planned(result: ExperimentResult, definition: ExperimentDefinition) -> int | None:
    if definition.planned_units is not None:
        return definition.planned_units
    primary = result.metric(definition.primary_metric)
    planned = [c.planned_units for c in primary.comparisons if c.planned_units is not None]
    return max(planned) if planned else None


def recommend_for(
    result: ExperimentResult, definition: ExperimentDefinition, units: int
) -> Recommendation:
    """The engine's recommendation, held back until the planned sample for fixed horizons."""
    found = result.recommendation
    planned = _planned(result, definition)
    if definition.method != "fixed" or planned is None or found.action in ("stop", "investigate"):
        return found
    more = planned - units
    if found.action == "ship" and more > 0:
        return Recommendation(
            "keep_running",
            f"keep running: {more:,} more units to the planned sample of {planned:,}; a "
            f"fixed-horizon test is read once, at that size (so far: {found.message}). "
            "Use method 'sequential' to be allowed to decide early",
            variant=found.variant,
            more_units=more,
        )
    if found.action == "keep_running" and found.variant is None:
        if more > 0:
            return Recommendation(
                "keep_running",
                f"keep running: {more:,} more units for the planned sample of {planned:,}",
                more_units=more,
            )
        return Recommendation(
            "stop",
            f"stop: no significant effect on {definition.primary_metric} at the planned sample "
            f"({planned:,} units); keep {definition.control.name}",
        )
    return found


def _analysis(
    definition: ExperimentDefinition, table: UnitTable
) -> tuple[ExperimentResult, list[MetricSpec], AnalysisSettings]:
    specs = definition.metric_specs()
    settings = definition.settings()
    per_metric = {spec.name: summaries(table, metric_def(spec.name)) for spec in specs}
    counts = table.counts()
    variants = [
        Variant(v.name, v.weight, counts[i], {name: found[i] for name, found in per_metric.items()})
        for i, v in enumerate(definition.variants)
    ]
    return analyze(variants, specs, settings), specs, settings


def _series(
    definition: ExperimentDefinition,
    table: UnitTable,
    spec: MetricSpec,
    settings: AnalysisSettings,
    times: Sequence[int],
) -> list[dict[str, Any]]:
    looks = cumulative_summaries(table, metric_def(spec.name), times)
    quick = replace(settings, bootstrap_draws=min(settings.bootstrap_draws, SERIES_BOOTSTRAP_DRAWS))
    out = []
    for look in looks:
        variants = [
            Variant(v.name, v.weight, look.units[i], {spec.name: look.summaries[i]})
            for i, v in enumerate(definition.variants)
        ]
        metric = analyze(variants, [spec], quick).metrics[0]
        out.append(
            {
                "at_ms": look.at_ms,
                "units": list(look.units),
                "values": [value.value for value in metric.values],
                "comparisons": [
                    {
                        key: value
                        for key, value in comparison.to_dict().items()
                        if key
                        not in (
                            "guardrail",
                            "planned_units",
                            "adjusted_p_value",
                            "adjusted_always_valid_p_value",
                            "reason",
                        )
                    }
                    for comparison in metric.comparisons
                ],
            }
        )
    return out


def experiment_results(
    record: ExperimentRecord,
    table: UnitTable,
    *,
    now_ms: int,
    interval: LookInterval = "day",
) -> dict[str, Any]:
    """The results document of a started experiment (JSON-safe: no NaN, no infinity).

    Args:
        record: the stored experiment (not a draft).
        table: its units in its window, grouped by variant in the definition's order.
        now_ms: the current time (the window's end while it runs).
        interval: ``hour`` or ``day`` between two looks of the time series.
    """
    definition = record.definition
    window = record.window(now_ms)
    assert window is not None, "a draft has no results"
    result, specs, settings = _analysis(definition, table)
    counts = table.counts()
    units = sum(counts)
    recommendation = recommend_for(result, definition, units)
    primary = result.metric(definition.primary_metric)
    empty = [name for name, n in zip(table.groups, counts, strict=True) if n < 2]
    status = "ok" if primary.status == "ok" and not empty else "not_enough_data"
    message = None
    if status != "ok":
        reason = next((c.reason for c in primary.comparisons if c.reason), None)
        message = "not enough data: " + (
            reason or f"variant(s) {empty} have fewer than 2 units with runs in the window"
        )
    body = result.to_dict()
    times = look_times(window[0], window[1], interval)
    return {
        "experiment": record.to_data(),
        "status": status,
        "message": message,
        "window": {"since_ms": window[0], "until_ms": window[1]},
        "units": dict(zip(table.groups, counts, strict=True)),
        "total_units": units,
        "planned_units": _planned(result, definition),
        "excluded_units": table.excluded_units,
        "runs_without_unit": table.runs_without_unit,
        **body,
        "recommendation": recommendation.to_dict(),
        "engine_recommendation": body["recommendation"],
        "timeseries": {
            "metric": definition.primary_metric,
            "interval": interval,
            "looks": _series(definition, table, specs[0], settings, times),
        },
    }

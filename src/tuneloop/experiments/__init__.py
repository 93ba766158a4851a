"""A/B experiments: definitions, lifecycle, metrics over per-unit sums, results.

The modules here are pure (pydantic, numpy and the statistics engine); the service that
ties them to the store is `tuneloop.experiments.service`, imported by the server and
the CLI only. See the README's "A/B experiments" section.
"""

from tuneloop.experiments.definition import (
    ExperimentDefinition,
    ExperimentIn,
    GuardrailIn,
    VariantDef,
    VariantIn,
    build_definition,
)
from tuneloop.experiments.lifecycle import (
    Decision,
    ExperimentEvent,
    ExperimentRecord,
    Status,
    next_status,
)
from tuneloop.experiments.metrics import CATALOG, MetricDef, known_metrics, metric_def
from tuneloop.experiments.results import experiment_results, look_times, recommend_for
from tuneloop.experiments.units import LatencyCounts, UnitTable, cumulative_summaries, summaries

__all__ = [
    "CATALOG",
    "Decision",
    "ExperimentDefinition",
    "ExperimentEvent",
    "ExperimentIn",
    "ExperimentRecord",
    "GuardrailIn",
    "LatencyCounts",
    "MetricDef",
    "Status",
    "UnitTable",
    "VariantDef",
    "VariantIn",
    "build_definition",
    "cumulative_summaries",
    "experiment_results",
    "known_metrics",
    "look_times",
    "metric_def",
    "next_status",
    "recommend_for",
    "summaries",
]

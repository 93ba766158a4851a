"""The metrics an experiment can be judged on, each defined over per-unit sums.

Units (users or sessions) are what is randomized, so every metric is computed from one
row of sums per unit (`UnitTable`): a rate over runs such as task success is a *ratio*
metric, successes over runs summed per unit, tested with the delta method, because the
runs of one user are not independent. When every unit has a single run, it is the
plain proportion. ``runs_per_unit`` and ``cost_per_unit`` are per-unit means (Welch);
latency percentiles are *quantile* metrics over the variant's runs (bootstrap).

Feedback is named after the score: ``feedback:thumbs`` is the mean of the ``thumbs``
feedback values attached to the variant's runs (a ratio: value sum over feedback count).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tuneloop.errors import ConfigError
from tuneloop.stats import Direction, MetricKind

# Per-unit sums read from run facts (store/experiment_reads.py).
UnitColumn = Literal[
    "runs",
    "successes",
    "errors",
    "escalations",
    "timed_runs",
    "duration_ms",
    "cost_usd",
    "tokens",
    "tool_calls",
    "tool_errors",
]
UNIT_COLUMNS: tuple[UnitColumn, ...] = (
    "runs",
    "successes",
    "errors",
    "escalations",
    "timed_runs",
    "duration_ms",
    "cost_usd",
    "tokens",
    "tool_calls",
    "tool_errors",
)
FEEDBACK_PREFIX = "feedback:"
_FEEDBACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def feedback_columns(name: str) -> tuple[str, str]:
    """The per-unit columns (value sum, count) of the feedback score ``name``."""
    return f"{FEEDBACK_PREFIX}{name}:sum", f"{FEEDBACK_PREFIX}{name}:count"


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One metric: how it is computed from per-unit sums and which way is better.

    Attributes:
        name: the name experiments use.
        kind: ``ratio`` (numerator over denominator, both summed per unit),
            ``continuous`` (the numerator per unit) or ``quantile`` (of run latency).
        direction: ``increase`` or ``decrease`` is an improvement.
        description: one line for listings.
        numerator: the per-unit column summed on top (ratio, continuous).
        denominator: the per-unit column summed below (ratio).
        quantile: which latency quantile (quantile metrics).
        feedback: the feedback score's name (feedback metrics).
    """

    name: str
    kind: MetricKind
    direction: Direction
    description: str
    numerator: str | None = None
    denominator: str | None = None
    quantile: float | None = None
    feedback: str | None = None


_CATALOG: tuple[MetricDef, ...] = (
    MetricDef(
        "task_success",
        "ratio",
        "increase",
        "share of runs with outcome success",
        "successes",
        "runs",
    ),
    MetricDef("error_rate", "ratio", "decrease", "share of runs that errored", "errors", "runs"),
    MetricDef(
        "escalation_rate",
        "ratio",
        "decrease",
        "share of runs escalated to a human",
        "escalations",
        "runs",
    ),
    MetricDef(
        "latency_mean", "ratio", "decrease", "mean run latency (ms)", "duration_ms", "timed_runs"
    ),
    MetricDef("cost_per_run", "ratio", "decrease", "mean cost of a run (USD)", "cost_usd", "runs"),
    MetricDef(
        "tokens", "ratio", "decrease", "mean tokens (input + output) per run", "tokens", "runs"
    ),
    MetricDef(
        "tool_error_rate",
        "ratio",
        "decrease",
        "share of tool calls that failed",
        "tool_errors",
        "tool_calls",
    ),
    MetricDef("runs_per_unit", "continuous", "increase", "runs per unit (engagement)", "runs"),
    MetricDef("cost_per_unit", "continuous", "decrease", "total cost per unit (USD)", "cost_usd"),
    MetricDef("latency_p50", "quantile", "decrease", "median run latency (ms)", quantile=0.5),
    MetricDef(
        "latency_p90", "quantile", "decrease", "90th percentile run latency (ms)", quantile=0.9
    ),
    MetricDef(
        "latency_p95", "quantile", "decrease", "95th percentile run latency (ms)", quantile=0.95
    ),
    MetricDef(
        "latency_p99", "quantile", "decrease", "99th percentile run latency (ms)", quantile=0.99
    ),
)
CATALOG: dict[str, MetricDef] = {metric.name: metric for metric in _CATALOG}


def known_metrics() -> list[str]:
    """Every metric name, with the feedback pattern last."""
    return [*CATALOG, f"{FEEDBACK_PREFIX}<name>"]


def metric_def(name: str) -> MetricDef:
    """The definition of the metric ``name``.

    Raises:
        ConfigError: no such metric; the message lists the known ones.
    """
    found = CATALOG.get(name)
    if found is not None:
        return found
    if name.startswith(FEEDBACK_PREFIX):
        score = name.removeprefix(FEEDBACK_PREFIX)
        if not _FEEDBACK_NAME.match(score):
            raise ConfigError(
                f"invalid feedback metric {name[:80]!r}: use feedback:<name>, the name of a "
                "feedback score (letters, digits, '_', '.', ':' or '-'), e.g. feedback:thumbs"
            )
        total, count = feedback_columns(score)
        return MetricDef(
            name,
            "ratio",
            "increase",
            f"mean {score!r} feedback value",
            total,
            count,
            feedback=score,
        )
    raise ConfigError(f"unknown metric {name[:80]!r}; known metrics: {', '.join(known_metrics())}")

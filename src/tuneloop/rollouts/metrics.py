"""The metrics a rollout guards, and one version's figures over a time window.

Every metric but p95 latency is a ratio of per-unit sums (errors / runs, cost / runs,
tool errors / tool calls, ...), analysed with the delta method so a user with many runs
counts as one unit; p95 latency is a quantile over runs, analysed by bootstrap. The
store reads a `VersionFigures` per version and window; the policy reads values and
summaries from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from tuneloop.stats import Direction, MetricKind, QuantileSummary, RatioSummary, Summary

GuardMetric = Literal[
    "error_rate",
    "task_success_rate",
    "escalation_rate",
    "latency_mean_ms",
    "latency_p95_ms",
    "cost_per_run",
    "tool_error_rate",
]
GUARD_METRICS: tuple[GuardMetric, ...] = get_args(GuardMetric)
Unit = Literal["rate", "ms", "usd"]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """How a guard metric is measured and which way is worse."""

    kind: MetricKind
    direction: Direction
    unit: Unit
    label: str
    quantile: float | None = None


METRICS: Mapping[GuardMetric, MetricInfo] = {
    "error_rate": MetricInfo("ratio", "decrease", "rate", "error rate"),
    "task_success_rate": MetricInfo("ratio", "increase", "rate", "task success rate"),
    "escalation_rate": MetricInfo("ratio", "decrease", "rate", "escalation rate"),
    "latency_mean_ms": MetricInfo("ratio", "decrease", "ms", "mean latency"),
    "latency_p95_ms": MetricInfo("quantile", "decrease", "ms", "p95 latency", quantile=0.95),
    "cost_per_run": MetricInfo("ratio", "decrease", "usd", "cost per run"),
    "tool_error_rate": MetricInfo("ratio", "decrease", "rate", "tool error rate"),
}


def format_value(metric: GuardMetric, value: float | None) -> str:
    """A metric's value as people read it: 4.2 %, 1.35 s, $0.0123."""
    if value is None:
        return "n/a"
    unit = METRICS[metric].unit
    if unit == "rate":
        return f"{value * 100:.2f} %"
    if unit == "ms":
        return f"{value / 1000:.2f} s" if abs(value) >= 1000 else f"{value:.0f} ms"
    return f"${value:.4f}"


def format_difference(metric: GuardMetric, value: float, *, relative: bool) -> str:
    """A difference in the metric's units (percentage points for rates) or in percent."""
    if relative:
        return f"{value * 100:+.1f} %"
    if METRICS[metric].unit == "rate":
        return f"{value * 100:+.2f} pp"
    if METRICS[metric].unit == "ms":
        return f"{value:+.0f} ms"
    return f"{value:+.4f} $"


@dataclass(frozen=True, slots=True)
class VersionFigures:
    """One version's runs in a time window, summarised per guard metric.

    Attributes:
        version: the version's hash.
        since_ms: start of the window (inclusive).
        until_ms: end of the window (exclusive).
        units: distinct units (users or sessions; a run without one counts alone).
        runs: runs in the window.
        summaries: per metric, the sufficient statistics the stats engine compares.
    """

    version: str
    since_ms: int
    until_ms: int
    units: int = 0
    runs: int = 0
    summaries: Mapping[GuardMetric, Summary] = field(default_factory=dict)

    def value(self, metric: GuardMetric) -> float | None:
        """The metric's point value over the window; None without data."""
        summary = self.summaries.get(metric)
        if summary is None:
            return None
        if isinstance(summary, QuantileSummary):
            quantile = METRICS[metric].quantile
            return summary.quantile(quantile) if quantile is not None else None
        if isinstance(summary, RatioSummary):
            if summary.denominator_sum <= 0:
                return None
            return summary.numerator_sum / summary.denominator_sum
        return None

    def to_data(self) -> dict[str, object]:
        """JSON-ready figures: the window, counts and each metric's value."""
        return {
            "version": self.version,
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
            "units": self.units,
            "runs": self.runs,
            "values": {metric: self.value(metric) for metric in GUARD_METRICS},
        }

"""Run metrics: additive aggregates and the figures a team reads from them.

Aggregates are sums and latency-bucket counts, so partial results from any number of
rows, queries or shards merge with ``+``; rates and quantiles are computed last.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from tuneloop.analysis.quantiles import quantiles
from tuneloop.errors import InvalidInputError

GroupBy = Literal["agent", "version", "variant", "experiment", "tool", "time"]
GROUP_BY_FIELDS: tuple[GroupBy, ...] = get_args(GroupBy)
PERCENTILES = (0.5, 0.9, 0.95, 0.99)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(slots=True)
class RunAggregate:
    """Sums over runs; merges by addition."""

    runs: int = 0
    successes: int = 0
    failures: int = 0
    escalations: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0
    tool_errors: int = 0
    tool_errors_retryable: int = 0
    latency: Counter[int] = field(default_factory=Counter)

    def __add__(self, other: RunAggregate) -> RunAggregate:
        """Merge two aggregates."""
        return RunAggregate(
            runs=self.runs + other.runs,
            successes=self.successes + other.successes,
            failures=self.failures + other.failures,
            escalations=self.escalations + other.escalations,
            errors=self.errors + other.errors,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            tool_calls=self.tool_calls + other.tool_calls,
            tool_errors=self.tool_errors + other.tool_errors,
            tool_errors_retryable=self.tool_errors_retryable + other.tool_errors_retryable,
            latency=self.latency + other.latency,
        )

    def summary(self) -> dict[str, Any]:
        """The metrics table row: counts, rates, latency percentiles, tokens, cost, tools."""
        p50, p90, p95, p99 = quantiles(self.latency, PERCENTILES)
        return {
            "runs": self.runs,
            "task_success_rate": _ratio(self.successes, self.runs),
            "failure_rate": _ratio(self.failures, self.runs),
            "error_rate": _ratio(self.errors, self.runs),
            "escalation_rate": _ratio(self.escalations, self.runs),
            "latency_ms": {"p50": p50, "p90": p90, "p95": p95, "p99": p99},
            "mean_input_tokens": _ratio(self.input_tokens, self.runs),
            "mean_output_tokens": _ratio(self.output_tokens, self.runs),
            "mean_tokens": _ratio(self.input_tokens + self.output_tokens, self.runs),
            "mean_cost_usd": _ratio(self.cost_usd, self.runs),
            "total_cost_usd": self.cost_usd,
            "tool_calls": self.tool_calls,
            "tool_error_rate": _ratio(self.tool_errors, self.tool_calls),
            "tool_errors_retryable": self.tool_errors_retryable,
            "tool_errors_non_retryable": self.tool_errors - self.tool_errors_retryable,
        }


@dataclass(slots=True)
class ToolAggregate:
    """Sums over tool calls; merges by addition."""

    calls: int = 0
    errors: int = 0
    errors_retryable: int = 0
    retries: int = 0
    latency: Counter[int] = field(default_factory=Counter)

    def __add__(self, other: ToolAggregate) -> ToolAggregate:
        """Merge two aggregates."""
        return ToolAggregate(
            calls=self.calls + other.calls,
            errors=self.errors + other.errors,
            errors_retryable=self.errors_retryable + other.errors_retryable,
            retries=self.retries + other.retries,
            latency=self.latency + other.latency,
        )

    def summary(self) -> dict[str, Any]:
        """The metrics row of a tool."""
        p50, p90, p95, p99 = quantiles(self.latency, PERCENTILES)
        return {
            "tool_calls": self.calls,
            "tool_error_rate": _ratio(self.errors, self.calls),
            "tool_errors_retryable": self.errors_retryable,
            "tool_errors_non_retryable": self.errors - self.errors_retryable,
            "mean_retries": _ratio(self.retries, self.calls),
            "latency_ms": {"p50": p50, "p90": p90, "p95": p95, "p99": p99},
        }


def parse_duration_ms(text: str) -> int:
    """Parse ``30s``, ``5m``, ``1h``, ``7d`` (or plain milliseconds) into milliseconds."""
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    cleaned = text.strip().lower()
    for suffix in ("ms", "s", "m", "h", "d", "w"):
        if cleaned.endswith(suffix):
            number = cleaned[: -len(suffix)]
            if number.isdigit() and int(number) > 0:
                return int(number) * units[suffix]
            break
    if cleaned.isdigit() and int(cleaned) > 0:
        return int(cleaned)
    raise InvalidInputError(
        f"invalid duration {text[:40]!r}: use a positive number with ms, s, m, h, d or w"
    )

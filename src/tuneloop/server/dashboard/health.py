"""Agent health over a time window: headline figures, time series and a status.

Everything here is read from the hourly rollups (``Queries.run_aggregates`` grouped by
time in whole-hour buckets, with a window that starts on a bucket boundary), so a card
costs a few hundred rollup rows whatever the traffic. Aggregates add up, so the
window's totals are the sum of its buckets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from tuneloop.analysis.metrics import RunAggregate, ToolAggregate
from tuneloop.errors import InvalidInputError
from tuneloop.store.filters import RunFilter
from tuneloop.store.queries import Queries

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WindowName = Literal["24h", "7d", "30d"]
WINDOW_NAMES: tuple[WindowName, ...] = get_args(WindowName)
Status = Literal["good", "warn", "bad", "idle"]
METRICS = ("runs", "success", "p95", "cost", "escalation", "errors")


@dataclass(frozen=True, slots=True)
class Window:
    """The last ``buckets`` buckets of ``bucket_ms``, the current (partial) one included.

    Buckets are whole UTC hours or days, so a window starts on a boundary of the rollup
    tier that answers it and no fact rows are read.
    """

    name: WindowName
    label: str
    bucket_ms: int
    buckets: int

    @property
    def bucket_name(self) -> str:
        """``hour`` or ``day``."""
        return "hour" if self.bucket_ms == HOUR_MS else "day"

    def since_ms(self, now_ms: int) -> int:
        """The start of the first bucket: a bucket boundary, so only rollups are read."""
        return (now_ms // self.bucket_ms - (self.buckets - 1)) * self.bucket_ms

    def starts(self, now_ms: int) -> list[int]:
        """The start of each bucket, oldest first."""
        first = self.since_ms(now_ms)
        return [first + i * self.bucket_ms for i in range(self.buckets)]


# Whole-hour buckets read the hourly rollups, whole-day buckets the daily ones.
WINDOWS: dict[WindowName, Window] = {
    "24h": Window("24h", "last 24 hours", HOUR_MS, 24),
    "7d": Window("7d", "last 7 days", DAY_MS, 7),
    "30d": Window("30d", "last 30 days", DAY_MS, 30),
}


def window_named(name: str | None) -> Window:
    """The window called ``name`` (default: 24h)."""
    if not name:
        return WINDOWS["24h"]
    if name not in WINDOWS:
        raise InvalidInputError(
            f"unknown time window {name[:20]!r}; choose one of {', '.join(WINDOW_NAMES)}"
        )
    return WINDOWS[name]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a figure turns a card amber (``warn``) or red (``bad``)."""

    success_warn: float = 0.90
    success_bad: float = 0.80
    error_warn: float = 0.02
    error_bad: float = 0.05
    escalation_warn: float = 0.10
    escalation_bad: float = 0.20

    def levels(self, summary: Mapping[str, Any]) -> dict[str, Status]:
        """The status each rate calls for: ``success``, ``errors`` and ``escalation``."""
        if not summary.get("runs"):
            return {"success": "idle", "errors": "idle", "escalation": "idle"}
        success = summary["task_success_rate"] or 0.0
        errors = summary["error_rate"] or 0.0
        escalations = summary["escalation_rate"] or 0.0

        def level(bad: bool, warn: bool) -> Status:
            return "bad" if bad else "warn" if warn else "good"

        return {
            "success": level(success < self.success_bad, success < self.success_warn),
            "errors": level(errors > self.error_bad, errors > self.error_warn),
            "escalation": level(
                escalations > self.escalation_bad, escalations > self.escalation_warn
            ),
        }

    def status(self, summary: Mapping[str, Any]) -> Status:
        """The worst status any of the rates calls for (``idle`` without runs)."""
        found = set(self.levels(summary).values())
        return next(s for s in ("idle", "bad", "warn", "good") if s in found)


@dataclass(frozen=True, slots=True)
class Health:
    """One agent over one window: totals, a series per metric, a status."""

    agent: str
    summary: dict[str, Any]
    series: dict[str, list[float | None]]
    status: Status
    bucket_starts: list[int] = field(default_factory=list)
    levels: dict[str, Status] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        """Runs in the window."""
        runs: int = self.summary["runs"]
        return runs


def _point(metric: str, summary: Mapping[str, Any]) -> float | None:
    match metric:
        case "runs":
            return float(summary["runs"])
        case "success":
            value: float | None = summary["task_success_rate"]
        case "p95":
            value = summary["latency_ms"]["p95"]
        case "cost":
            value = summary["mean_cost_usd"]
        case "escalation":
            value = summary["escalation_rate"]
        case "errors":
            value = summary["error_rate"]
        case _:
            raise InvalidInputError(f"unknown health metric {metric!r}; use one of {METRICS}")
    return value


def health_of(
    agent: str,
    buckets: Mapping[int, RunAggregate],
    starts: list[int],
    *,
    thresholds: Thresholds,
) -> Health:
    """An agent's health from its aggregate per bucket start."""
    total = RunAggregate()
    for aggregate in buckets.values():
        total = total + aggregate
    summary = total.summary()
    summaries = {start: buckets[start].summary() for start in starts if start in buckets}
    series: dict[str, list[float | None]] = {
        metric: [
            _point(metric, summaries[start])
            if start in summaries
            else (0.0 if metric == "runs" else None)
            for start in starts
        ]
        for metric in METRICS
    }
    return Health(
        agent, summary, series, thresholds.status(summary), starts, thresholds.levels(summary)
    )


def _by_bucket(
    rows: Iterable[tuple[tuple[Any, ...], RunAggregate]],
) -> dict[str, dict[int, RunAggregate]]:
    found: dict[str, dict[int, RunAggregate]] = {}
    for (agent, start), aggregate in rows:
        found.setdefault(agent, {})[int(start)] = aggregate
    return found


def agents_health(
    queries: Queries,
    project_id: str,
    window: Window,
    *,
    now_ms: int,
    thresholds: Thresholds | None = None,
) -> dict[str, Health]:
    """Every agent with runs in the window, by name: one rollup query for all of them."""
    where = RunFilter(since_ms=window.since_ms(now_ms))
    rows = queries.run_aggregates(project_id, where, ("agent", "time"), bucket_ms=window.bucket_ms)
    starts = window.starts(now_ms)
    limits = thresholds or Thresholds()
    return {
        agent: health_of(agent, buckets, starts, thresholds=limits)
        for agent, buckets in sorted(_by_bucket(rows.items()).items())
    }


def agent_health(
    queries: Queries,
    project_id: str,
    agent: str,
    window: Window,
    *,
    now_ms: int,
    thresholds: Thresholds | None = None,
) -> tuple[Health, list[tuple[str | None, dict[str, Any]]]]:
    """One agent's health, and its figures per config version, busiest first.

    One rollup query grouped by version and time serves both: summed over versions it
    is the time series, summed over time the per-version table.
    """
    where = RunFilter(agent=agent, since_ms=window.since_ms(now_ms))
    rows = queries.run_aggregates(
        project_id, where, ("version", "time"), bucket_ms=window.bucket_ms
    )
    by_time: dict[int, RunAggregate] = {}
    by_version: dict[str | None, RunAggregate] = {}
    for (version, start), aggregate in rows.items():
        by_time[int(start)] = by_time[int(start)] + aggregate if start in by_time else aggregate
        by_version[version] = (
            by_version[version] + aggregate if version in by_version else aggregate
        )
    health = health_of(agent, by_time, window.starts(now_ms), thresholds=thresholds or Thresholds())
    versions = sorted(by_version.items(), key=lambda item: (-item[1].runs, str(item[0])))
    return health, [(version, aggregate.summary()) for version, aggregate in versions]


def tools_of(
    queries: Queries, project_id: str, agent: str, window: Window, *, now_ms: int
) -> list[tuple[str, dict[str, Any]]]:
    """The window's figures per tool, busiest first."""
    where = RunFilter(agent=agent, since_ms=window.since_ms(now_ms))
    per_tool: dict[tuple[Any, ...], ToolAggregate] = queries.tool_aggregates(
        project_id, where, ("tool",), bucket_ms=HOUR_MS
    )
    tools = sorted(per_tool.items(), key=lambda item: (-item[1].calls, str(item[0][0])))
    return [(str(key[0]), aggregate.summary()) for key, aggregate in tools]

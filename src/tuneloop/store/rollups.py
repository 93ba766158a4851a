"""Metric rollups in two tiers, hourly and daily: maintained by ingest, read by metrics.

A run contributes to the ``run_rollups`` row of its identity (agent, version,
experiment, variant), the hour it started and its latency bucket, once its root span
has arrived. Spans that arrive later change its counters, so ingest adds the difference
between what the run contributes after the request and what it contributed before.
Tool calls contribute to ``tool_rollups`` once their run's identity is known; a call
stamped with a new identity moves its contribution.

The daily tier (``run_rollups_daily``, ``tool_rollups_daily``) holds the same sums per
UTC day: each hourly change is also added to its day's row, in the same transaction, so
a day's row always equals the sum of its hours' rows. Metrics read whole days from the
daily tier, whole hours of partial days from the hourly one (``TIERS``).

Identity columns the run does not have are stored as ``''``: key columns cannot be
NULL, and ingest never stores an empty identity string (normalization drops them).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tuneloop.store.schema import run_rollups, run_rollups_daily, tool_rollups, tool_rollups_daily
from tuneloop.telemetry.model import STATUS_CODES

HOUR_MS = 3_600_000
DAY_MS = 86_400_000

RUN_SUMS = (
    "runs", "successes", "failures", "escalations", "errors", "input_tokens",
    "output_tokens", "cost_usd", "tool_calls", "tool_errors", "tool_errors_retryable",
)  # fmt: skip
TOOL_SUMS = ("calls", "errors", "errors_retryable", "retries")

# What a run's contribution is computed from: its identity and its counters.
RUN_STATE_COLUMNS = (
    "has_root", "agent", "config_version", "experiment", "variant", "started_ms",
    "latency_bucket", "outcome", "status", "error_type", "llm_calls", "input_tokens",
    "output_tokens", "cost_usd", "root_input_tokens", "root_output_tokens", "root_cost_usd",
    "tool_calls", "tool_errors", "tool_errors_retryable",
)  # fmt: skip
RUN_COUNTERS = (
    "llm_calls", "input_tokens", "output_tokens", "cost_usd", "tool_calls", "tool_errors",
    "tool_errors_retryable",
)  # fmt: skip

_ERROR = STATUS_CODES["error"]
RunKey = tuple[str, str, str, str, int, int]
ToolKey = tuple[str, str, str, str, str, int, int]


@dataclass(frozen=True, slots=True)
class Tier:
    """One rollup granularity: rows per ``period_ms`` (epoch-aligned), started at ``time``."""

    period_ms: int
    runs: sa.Table
    tools: sa.Table
    time: str  # the column holding the period's start, in epoch milliseconds


HOURLY = Tier(HOUR_MS, run_rollups, tool_rollups, "hour_ms")
DAILY = Tier(DAY_MS, run_rollups_daily, tool_rollups_daily, "day_ms")
# Coarsest first: a read takes what it can from each tier in turn.
TIERS = (DAILY, HOURLY)


def stored_value(value: str | None) -> str:
    """An identity value as a rollup key column holds it."""
    return "" if value is None else value


def read_value(value: str) -> str | None:
    """A rollup key column's value as the facts hold it."""
    return None if value == "" else value


def run_contribution(state: Mapping[str, Any]) -> tuple[RunKey, list[Any]] | None:
    """The rollup row key and sums one run adds, or None before its root has arrived."""
    if not state["has_root"] or state["started_ms"] is None or state["latency_bucket"] is None:
        return None
    outcome = state["outcome"]
    llm = state["llm_calls"] > 0
    key: RunKey = (
        state["agent"] or "",
        stored_value(state["config_version"]),
        stored_value(state["experiment"]),
        stored_value(state["variant"]),
        state["started_ms"] // HOUR_MS * HOUR_MS,
        state["latency_bucket"],
    )
    return key, [
        1,
        1 if outcome == "success" else 0,
        1 if outcome == "failure" else 0,
        1 if outcome == "escalated" else 0,
        1 if state["status"] == _ERROR or state["error_type"] is not None else 0,
        state["input_tokens"] if llm else state["root_input_tokens"],
        state["output_tokens"] if llm else state["root_output_tokens"],
        state["cost_usd"] if llm else state["root_cost_usd"],
        state["tool_calls"],
        state["tool_errors"],
        state["tool_errors_retryable"],
    ]


class RollupDelta:
    """Changes to the rollup rows accumulated over one transaction."""

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id
        self.runs: dict[RunKey, list[Any]] = {}
        self.tools: dict[ToolKey, list[int]] = {}

    def add_run(self, state: Mapping[str, Any] | None, sign: int = 1) -> None:
        """Add (``sign`` 1) or take away (-1) what a run in ``state`` contributes."""
        if state is None:
            return
        found = run_contribution(state)
        if found is None:
            return
        key, values = found
        total = self.runs.get(key)
        if total is None:
            self.runs[key] = values if sign == 1 else [-value for value in values]
        else:
            self.runs[key] = list(map(operator.add if sign == 1 else operator.sub, total, values))

    def add_tool(
        self,
        identity: tuple[Any, ...],
        tool: str,
        started_ms: int,
        latency_bucket: int,
        facts: tuple[bool, bool, int],
        sign: int = 1,
    ) -> None:
        """Add or take away one tool call: ``facts`` = (error, retryable, retries)."""
        agent, version, experiment, variant = identity
        if agent is None:
            return
        key: ToolKey = (
            agent,
            stored_value(version),
            stored_value(experiment),
            stored_value(variant),
            tool,
            started_ms // HOUR_MS * HOUR_MS,
            latency_bucket,
        )
        total = self.tools.get(key)
        if total is None:
            total = self.tools[key] = [0, 0, 0, 0]
        error, retryable, retries = facts
        total[0] += sign
        total[1] += sign if error else 0
        total[2] += sign if error and retryable else 0
        total[3] += sign * retries

    def write(self, conn: sa.Connection) -> None:
        """Apply the accumulated changes to every tier (rows whose sums are all zero are skipped).

        The daily changes are the hourly ones summed per day: a request's runs nearly all
        start in the current hour, so each tier gets about as many rows as the hourly one.
        """
        for tier in TIERS:
            for table, sums, changes in (
                (tier.runs, RUN_SUMS, self.runs),
                (tier.tools, TOOL_SUMS, self.tools),
            ):
                if tier.period_ms != HOUR_MS:
                    changes = coarsen(changes, tier.period_ms)
                _upsert(conn, table, sums, self.project_id, changes)


def coarsen(
    changes: Mapping[tuple[Any, ...], list[Any]], period_ms: int
) -> dict[tuple[Any, ...], list[Any]]:
    """Hourly changes summed per ``period_ms``: keys end in (hour start, latency bucket)."""
    out: dict[tuple[Any, ...], list[Any]] = {}
    for key, values in changes.items():
        *identity, hour_ms, bucket = key
        coarse = (*identity, hour_ms // period_ms * period_ms, bucket)
        total = out.get(coarse)
        out[coarse] = values if total is None else list(map(operator.add, total, values))
    return out


def _upsert(
    conn: sa.Connection,
    table: sa.Table,
    sums: Iterable[str],
    project_id: str,
    changes: Mapping[tuple[Any, ...], list[Any]],
) -> None:
    """Add ``changes`` to ``table``'s rows: one executemany straight to the driver."""
    # Every rollup table's columns are (project, identity…, period start, bucket, sums…).
    rows = [(project_id, *key, *values) for key, values in changes.items() if any(values)]
    if not rows:
        return
    # In column order, which is (nearly) key order: neighbouring rows share B-tree pages.
    rows.sort()
    statement, order = _upsert_sql(conn, table, sums)
    if order is None:
        names = [column.name for column in table.columns]
        conn.exec_driver_sql(statement, [dict(zip(names, row, strict=True)) for row in rows])
    elif order == tuple(range(len(table.columns))):
        conn.exec_driver_sql(statement, rows)
    else:
        conn.exec_driver_sql(statement, [tuple(row[i] for i in order) for row in rows])


_UPSERTS: dict[tuple[str, str], tuple[str, tuple[int, ...] | None]] = {}


def _upsert_sql(
    conn: sa.Connection, table: sa.Table, sums: Iterable[str]
) -> tuple[str, tuple[int, ...] | None]:
    """The rollup upsert (adding the sums) in the driver's SQL, and its parameter order.

    The order lists column positions; None means parameters by name. Compiled once per
    dialect and table (a cache, not state: the same inputs always compile the same).
    """
    cache_key = (conn.dialect.name, table.name)
    cached = _UPSERTS.get(cache_key)
    if cached is not None:
        return cached
    insert = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    statement = insert.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={name: table.c[name] + insert.excluded[name] for name in sums},
    )
    compiled = statement.compile(dialect=conn.dialect)
    columns = [column.name for column in table.columns]
    order = (
        None
        if compiled.positiontup is None
        else tuple(columns.index(name) for name in compiled.positiontup)
    )
    _UPSERTS[cache_key] = (compiled.string, order)
    return compiled.string, order

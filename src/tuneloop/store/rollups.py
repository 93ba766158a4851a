"""Hourly metric rollups: maintained by ingest, read by metrics.

A run contributes to the ``run_rollups`` row of its identity (agent, version,
experiment, variant), the hour it started and its latency bucket, once its root span
has arrived. Spans that arrive later change its counters, so ingest adds the difference
between what the run contributes after the request and what it contributed before.
Tool calls contribute to ``tool_rollups`` once their run's identity is known; a call
stamped with a new identity moves its contribution.

Identity columns the run does not have are stored as ``''``: key columns cannot be
NULL, and ingest never stores an empty identity string (normalization drops them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tuneloop.store.schema import run_rollups, tool_rollups
from tuneloop.telemetry.model import STATUS_CODES

HOUR_MS = 3_600_000

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
            total = self.runs[key] = [0] * len(RUN_SUMS)
        for i, value in enumerate(values):
            total[i] += sign * value

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
        """Apply the accumulated changes (rows whose sums are all zero are skipped)."""
        for table, sums, changes in (
            (run_rollups, RUN_SUMS, self.runs),
            (tool_rollups, TOOL_SUMS, self.tools),
        ):
            columns = [column.name for column in table.columns]
            rows = [
                dict(zip(columns, (self.project_id, *key, *values), strict=True))
                for key, values in changes.items()
                if any(values)
            ]
            if rows:
                statement, names = _upsert_sql(conn, table, sums)
                if names is None:
                    conn.exec_driver_sql(statement, rows)
                else:
                    conn.exec_driver_sql(statement, [tuple(r[n] for n in names) for r in rows])


_UPSERTS: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {}


def _upsert_sql(
    conn: sa.Connection, table: sa.Table, sums: Iterable[str]
) -> tuple[str, tuple[str, ...] | None]:
    """The rollup upsert (adding the sums) in the driver's SQL, and its parameter order.

    Parameter order None means by name. Straight to the driver, as ingest's other writes.
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
    names = None if compiled.positiontup is None else tuple(compiled.positiontup)
    _UPSERTS[cache_key] = (compiled.string, names)
    return compiled.string, names

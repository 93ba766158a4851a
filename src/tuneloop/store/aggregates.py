"""Metrics aggregates: whole hours from the rollups, the rest from the fact rows.

A window's whole hours are read from ``run_rollups`` / ``tool_rollups`` (a few rows per
agent, version and hour, whatever the traffic); the partial hours at its edges, and
reads the rollups cannot answer (filters on outcome, unit, session or attributes, time
buckets shorter than an hour), scan the fact rows through their time indexes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from tuneloop.analysis.metrics import GroupBy, RunAggregate, ToolAggregate
from tuneloop.errors import InvalidInputError
from tuneloop.store.filters import RunFilter, run_conditions
from tuneloop.store.rollups import HOUR_MS, read_value
from tuneloop.store.schema import run_rollups, runs, tool_calls, tool_rollups
from tuneloop.telemetry.model import STATUS_CODES

__all__ = ["run_aggregates", "tool_aggregates"]

_IDENTITY: dict[GroupBy, str] = {
    "agent": "agent",
    "version": "config_version",
    "variant": "variant",
    "experiment": "experiment",
    "tool": "tool",
}
# Identity columns a rollup stores as '' when the run has none.
_NULLABLE = {"config_version", "experiment", "variant"}


@dataclass(frozen=True, slots=True)
class _Window:
    """A time window split into whole hours and the partial hours around them."""

    hours: tuple[int | None, int | None] | None
    edges: tuple[tuple[int | None, int | None], ...]


def _split(since_ms: int | None, until_ms: int | None) -> _Window:
    first = None if since_ms is None else -(-since_ms // HOUR_MS) * HOUR_MS
    end = None if until_ms is None else until_ms // HOUR_MS * HOUR_MS
    if first is not None and end is not None and first >= end:
        return _Window(None, ((since_ms, until_ms),))
    edges = []
    if since_ms is not None and first is not None and since_ms < first:
        edges.append((since_ms, first))
    if until_ms is not None and end is not None and end < until_ms:
        edges.append((end, until_ms))
    return _Window((first, end), tuple(edges))


def _rollups_answer(where: RunFilter, group_by: tuple[GroupBy, ...], bucket_ms: int) -> bool:
    run_only = (where.outcome, where.unit_id, where.session_id)
    if where.attributes or any(value is not None for value in run_only):
        return False
    return "time" not in group_by or bucket_ms % HOUR_MS == 0


def _merge(into: dict[tuple[Any, ...], Any], parts: dict[tuple[Any, ...], Any]) -> None:
    for key, value in parts.items():
        into[key] = into[key] + value if key in into else value


def run_aggregates(
    engine: sa.Engine,
    project_id: str,
    where: RunFilter,
    group_by: tuple[GroupBy, ...],
    *,
    bucket_ms: int,
) -> dict[tuple[Any, ...], RunAggregate]:
    """Run aggregates per group, each with its latency histogram."""
    if "tool" in group_by:
        raise InvalidInputError("cannot group runs by 'tool' without tool calls")
    dialect = engine.dialect.name
    result: dict[tuple[Any, ...], RunAggregate] = {}
    with engine.connect() as conn:
        if not _rollups_answer(where, group_by, bucket_ms):
            return _sum_runs(
                conn.execute(_run_facts_query(project_id, where, group_by, bucket_ms, dialect))
            )
        window = _split(where.since_ms, where.until_ms)
        if window.hours is not None:
            query = _run_rollups_query(project_id, where, group_by, bucket_ms, window.hours)
            _merge(result, _sum_runs(conn.execute(query), nullable=_nullable(group_by)))
        for since_ms, until_ms in window.edges:
            edge = replace(where, since_ms=since_ms, until_ms=until_ms)
            query = _run_facts_query(project_id, edge, group_by, bucket_ms, dialect)
            _merge(result, _sum_runs(conn.execute(query)))
    return result


def tool_aggregates(
    engine: sa.Engine,
    project_id: str,
    where: RunFilter,
    group_by: tuple[GroupBy, ...],
    *,
    bucket_ms: int,
) -> dict[tuple[Any, ...], ToolAggregate]:
    """Tool-call aggregates per group, each with its latency histogram.

    Time (the ``since`` / ``until`` window and time buckets) is the tool call's own
    start. Tool calls of runs without a root yet are left out, as those runs are.
    """
    dialect = engine.dialect.name
    result: dict[tuple[Any, ...], ToolAggregate] = {}
    with engine.connect() as conn:
        if not _rollups_answer(where, group_by, bucket_ms):
            query = _tool_facts_query(project_id, where, group_by, bucket_ms, dialect)
            return _sum_tools(conn.execute(query))
        window = _split(where.since_ms, where.until_ms)
        if window.hours is not None:
            query = _tool_rollups_query(project_id, where, group_by, bucket_ms, window.hours)
            _merge(result, _sum_tools(conn.execute(query), nullable=_nullable(group_by)))
        for since_ms, until_ms in window.edges:
            edge = replace(where, since_ms=since_ms, until_ms=until_ms)
            query = _tool_facts_query(project_id, edge, group_by, bucket_ms, dialect)
            _merge(result, _sum_tools(conn.execute(query)))
    return result


def _nullable(group_by: tuple[GroupBy, ...]) -> list[int]:
    """Places of the group values a rollup stores as '' for None."""
    return [i for i, name in enumerate(group_by) if _IDENTITY.get(name) in _NULLABLE]


def _sum_runs(
    rows: Iterable[Any], nullable: list[int] | None = None
) -> dict[tuple[Any, ...], RunAggregate]:
    """Rows of (group…, latency bucket, 11 sums) into one aggregate per group."""
    found: dict[tuple[Any, ...], RunAggregate] = {}
    for row in rows:
        *group, bucket, runs_in_row = row[:-10]
        count = int(runs_in_row)  # PostgreSQL sums integers as NUMERIC
        sums = row[-10:]
        key = _key(group, nullable)
        aggregate = found.get(key)
        if aggregate is None:
            aggregate = found[key] = RunAggregate(latency=Counter())
        aggregate.runs += count
        aggregate.successes += int(sums[0] or 0)
        aggregate.failures += int(sums[1] or 0)
        aggregate.escalations += int(sums[2] or 0)
        aggregate.errors += int(sums[3] or 0)
        aggregate.input_tokens += int(sums[4] or 0)
        aggregate.output_tokens += int(sums[5] or 0)
        aggregate.cost_usd += float(sums[6] or 0.0)
        aggregate.tool_calls += int(sums[7] or 0)
        aggregate.tool_errors += int(sums[8] or 0)
        aggregate.tool_errors_retryable += int(sums[9] or 0)
        aggregate.latency[bucket] += count
    return {key: value for key, value in found.items() if value.runs > 0}


def _sum_tools(
    rows: Iterable[Any], nullable: list[int] | None = None
) -> dict[tuple[Any, ...], ToolAggregate]:
    """Rows of (group…, latency bucket, calls, errors, retryable errors, retries)."""
    found: dict[tuple[Any, ...], ToolAggregate] = {}
    for row in rows:
        *group, bucket, calls_in_row, errors, retryable, retries = row
        count = int(calls_in_row)  # PostgreSQL sums integers as NUMERIC
        key = _key(group, nullable)
        aggregate = found.get(key)
        if aggregate is None:
            aggregate = found[key] = ToolAggregate(latency=Counter())
        aggregate.calls += count
        aggregate.errors += int(errors or 0)
        aggregate.errors_retryable += int(retryable or 0)
        aggregate.retries += int(retries or 0)
        aggregate.latency[bucket] += count
    return {key: value for key, value in found.items() if value.calls > 0}


def _key(group: list[Any], nullable: list[int] | None) -> tuple[Any, ...]:
    if nullable:
        for i in nullable:
            group[i] = read_value(group[i])
    return tuple(group)


def _rollup_conditions(
    table: sa.Table, project_id: str, where: RunFilter, hours: tuple[int | None, int | None]
) -> list[Any]:
    conds: list[Any] = [table.c.project_id == project_id]
    for column, value in (
        ("agent", where.agent),
        ("config_version", where.version),
        ("variant", where.variant),
        ("experiment", where.experiment),
    ):
        if value is not None:
            conds.append(table.c[column] == value)
    first, end = hours
    if first is not None:
        conds.append(table.c.hour_ms >= first)
    if end is not None:
        conds.append(table.c.hour_ms < end)
    return conds


def _rollup_group(table: sa.Table, name: GroupBy, bucket_ms: int) -> Any:
    if name == "time":
        return (table.c.hour_ms // bucket_ms) * bucket_ms
    return table.c[_IDENTITY[name]]


def _run_rollups_query(
    project_id: str,
    where: RunFilter,
    group_by: tuple[GroupBy, ...],
    bucket_ms: int,
    hours: tuple[int | None, int | None],
) -> sa.Select[Any]:
    t = run_rollups
    grouping = [_rollup_group(t, name, bucket_ms) for name in group_by]
    sums = [
        sa.func.sum(t.c[name])
        for name in (
            "runs", "successes", "failures", "escalations", "errors", "input_tokens",
            "output_tokens", "cost_usd", "tool_calls", "tool_errors", "tool_errors_retryable",
        )
    ]  # fmt: skip
    return (
        sa.select(*grouping, t.c.latency_bucket, *sums)
        .where(*_rollup_conditions(t, project_id, where, hours))
        .group_by(*grouping, t.c.latency_bucket)
    )


def _tool_rollups_query(
    project_id: str,
    where: RunFilter,
    group_by: tuple[GroupBy, ...],
    bucket_ms: int,
    hours: tuple[int | None, int | None],
) -> sa.Select[Any]:
    t = tool_rollups
    grouping = [_rollup_group(t, name, bucket_ms) for name in group_by]
    sums = [sa.func.sum(t.c[name]) for name in ("calls", "errors", "errors_retryable", "retries")]
    return (
        sa.select(*grouping, t.c.latency_bucket, *sums)
        .where(*_rollup_conditions(t, project_id, where, hours))
        .group_by(*grouping, t.c.latency_bucket)
    )


def _run_facts_query(
    project_id: str, where: RunFilter, group_by: tuple[GroupBy, ...], bucket_ms: int, dialect: str
) -> sa.Select[Any]:
    """The same sums as the rollups hold, from the run rows."""
    grouping = [_run_group(name, bucket_ms) for name in group_by]
    has_llm = runs.c.llm_calls > 0

    def count_of(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    return (
        sa.select(
            *grouping,
            runs.c.latency_bucket,
            sa.func.count(),
            count_of(runs.c.outcome == "success"),
            count_of(runs.c.outcome == "failure"),
            count_of(runs.c.outcome == "escalated"),
            count_of(
                sa.or_(runs.c.status == STATUS_CODES["error"], runs.c.error_type.is_not(None))
            ),
            sa.func.sum(sa.case((has_llm, runs.c.input_tokens), else_=runs.c.root_input_tokens)),
            sa.func.sum(sa.case((has_llm, runs.c.output_tokens), else_=runs.c.root_output_tokens)),
            sa.func.sum(sa.case((has_llm, runs.c.cost_usd), else_=runs.c.root_cost_usd)),
            sa.func.sum(runs.c.tool_calls),
            sa.func.sum(runs.c.tool_errors),
            sa.func.sum(runs.c.tool_errors_retryable),
        )
        .where(*run_conditions(project_id, where, dialect=dialect))
        .group_by(*grouping, runs.c.latency_bucket)
    )


def _tool_facts_query(
    project_id: str, where: RunFilter, group_by: tuple[GroupBy, ...], bucket_ms: int, dialect: str
) -> sa.Select[Any]:
    """Tool sums from the tool-call rows; joined with runs only for run-only filters."""
    run_only = (where.outcome, where.unit_id, where.session_id)
    if where.attributes or any(value is not None for value in run_only):
        # These filters need the run row; the identity columns then come from it too.
        grouping = [
            _tool_group(name, bucket_ms)
            if name in ("tool", "time")
            else _run_group(name, bucket_ms)
            for name in group_by
        ]
        conds = run_conditions(
            project_id, replace(where, since_ms=None, until_ms=None), dialect=dialect
        )
        source: Any = tool_calls.join(
            runs,
            sa.and_(
                runs.c.project_id == tool_calls.c.project_id,
                runs.c.trace_id == tool_calls.c.trace_id,
            ),
        )
    else:
        # Each tool call carries its run's identity (NULL until the root arrives).
        grouping = [_tool_group(name, bucket_ms) for name in group_by]
        conds = [
            tool_calls.c.project_id == project_id,
            tool_calls.c.agent.is_not(None)
            if where.agent is None
            else tool_calls.c.agent == where.agent,
        ]
        for column, value in (
            ("config_version", where.version),
            ("variant", where.variant),
            ("experiment", where.experiment),
        ):
            if value is not None:
                conds.append(tool_calls.c[column] == value)
        source = tool_calls
    if where.since_ms is not None:
        conds.append(tool_calls.c.started_ms >= where.since_ms)
    if where.until_ms is not None:
        conds.append(tool_calls.c.started_ms < where.until_ms)
    is_error = tool_calls.c.status == "error"
    return (
        sa.select(
            *grouping,
            tool_calls.c.latency_bucket,
            sa.func.count(),
            sa.func.sum(sa.case((is_error, 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(is_error, tool_calls.c.retryable), 1), else_=0)),
            sa.func.sum(tool_calls.c.retries),
        )
        .select_from(source)
        .where(*conds)
        .group_by(*grouping, tool_calls.c.latency_bucket)
    )


def _tool_group(name: GroupBy, bucket_ms: int) -> Any:
    if name == "time":
        return (tool_calls.c.started_ms // bucket_ms) * bucket_ms
    return tool_calls.c[_IDENTITY[name]]


def _run_group(name: GroupBy, bucket_ms: int) -> Any:
    if name == "time":
        return (runs.c.started_ms // bucket_ms) * bucket_ms
    if name == "tool":
        raise InvalidInputError("cannot group runs by 'tool' without tool calls")
    return runs.c[_IDENTITY[name]]

"""Metrics aggregates: whole days and hours from the rollup tiers, the rest from facts.

A window is read from the coarsest tier that covers whole periods of it: whole days
from the daily rollups, the whole hours of its partial first and last days from the
hourly rollups, and its partial hours at the edges from the fact rows (``plan_window``).
A rollup tier holds a few rows per agent, version, day or hour and latency bucket,
whatever the traffic. Reads the rollups cannot answer (filters on outcome, unit,
session or attributes; time buckets that are not whole periods of a tier) scan the
fact rows through their time indexes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from tuneloop.analysis.metrics import GroupBy, RunAggregate, ToolAggregate
from tuneloop.errors import InvalidInputError
from tuneloop.store.filters import RunFilter, run_conditions
from tuneloop.store.rollups import RUN_SUMS, TIERS, TOOL_SUMS, Tier, read_value
from tuneloop.store.schema import runs, tool_calls
from tuneloop.telemetry.model import STATUS_CODES

__all__ = ["WindowPart", "plan_window", "run_aggregates", "tool_aggregates", "usable_tiers"]

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
class WindowPart:
    """``[since_ms, until_ms)`` of a window (None: unbounded), read from ``tier``.

    ``tier`` None means the fact rows.
    """

    tier: Tier | None
    since_ms: int | None
    until_ms: int | None


def plan_window(
    since_ms: int | None, until_ms: int | None, tiers: Sequence[Tier]
) -> tuple[WindowPart, ...]:
    """Split a window into whole periods of each tier (coarsest first) and facts for the rest.

    The first tier takes the whole periods inside the window; the pieces before and
    after them go to the next tier, and what no tier covers to the facts. An open end
    stays open: the current, unfinished day or hour is in the rollups already.
    """
    if not tiers:
        return (WindowPart(None, since_ms, until_ms),)
    tier, finer = tiers[0], tiers[1:]
    period = tier.period_ms
    first = None if since_ms is None else -(-since_ms // period) * period
    end = None if until_ms is None else until_ms // period * period
    if first is not None and end is not None and first >= end:
        return plan_window(since_ms, until_ms, finer)
    parts: list[WindowPart] = []
    if since_ms is not None and first is not None and since_ms < first:
        parts += plan_window(since_ms, first, finer)
    parts.append(WindowPart(tier, first, end))
    if until_ms is not None and end is not None and end < until_ms:
        parts += plan_window(end, until_ms, finer)
    return tuple(parts)


def usable_tiers(
    where: RunFilter, group_by: tuple[GroupBy, ...], bucket_ms: int
) -> tuple[Tier, ...]:
    """The rollup tiers that can answer this read (none: only the facts can)."""
    run_only = (where.outcome, where.unit_id, where.session_id)
    if where.attributes or any(value is not None for value in run_only):
        return ()
    if "time" not in group_by:
        return TIERS
    return tuple(tier for tier in TIERS if bucket_ms % tier.period_ms == 0)


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
    tiers = usable_tiers(where, group_by, bucket_ms)
    with engine.connect() as conn:
        for part in plan_window(where.since_ms, where.until_ms, tiers):
            part_where = replace(where, since_ms=part.since_ms, until_ms=part.until_ms)
            if part.tier is None:
                query = _run_facts_query(project_id, part_where, group_by, bucket_ms, dialect)
                _merge(result, _sum_runs(conn.execute(query)))
            else:
                table = part.tier.runs
                query = _rollups_query(
                    table, RUN_SUMS, part.tier.time, project_id, part_where, group_by, bucket_ms
                )
                _merge(result, _sum_runs(conn.execute(query), nullable=_nullable(group_by)))
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
    tiers = usable_tiers(where, group_by, bucket_ms)
    with engine.connect() as conn:
        for part in plan_window(where.since_ms, where.until_ms, tiers):
            part_where = replace(where, since_ms=part.since_ms, until_ms=part.until_ms)
            if part.tier is None:
                query = _tool_facts_query(project_id, part_where, group_by, bucket_ms, dialect)
                _merge(result, _sum_tools(conn.execute(query)))
            else:
                table = part.tier.tools
                query = _rollups_query(
                    table, TOOL_SUMS, part.tier.time, project_id, part_where, group_by, bucket_ms
                )
                _merge(result, _sum_tools(conn.execute(query), nullable=_nullable(group_by)))
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


def _rollups_query(
    table: sa.Table,
    sums: Iterable[str],
    time: str,
    project_id: str,
    where: RunFilter,
    group_by: tuple[GroupBy, ...],
    bucket_ms: int,
) -> sa.Select[Any]:
    """Sums per group and latency bucket from one rollup table, over whole periods."""
    grouping = [
        (table.c[time] // bucket_ms) * bucket_ms if name == "time" else table.c[_IDENTITY[name]]
        for name in group_by
    ]
    conds: list[Any] = [table.c.project_id == project_id]
    for column, value in (
        ("agent", where.agent),
        ("config_version", where.version),
        ("variant", where.variant),
        ("experiment", where.experiment),
    ):
        if value is not None:
            conds.append(table.c[column] == value)
    if where.since_ms is not None:
        conds.append(table.c[time] >= where.since_ms)
    if where.until_ms is not None:
        conds.append(table.c[time] < where.until_ms)
    return (
        sa.select(*grouping, table.c.latency_bucket, *(sa.func.sum(table.c[n]) for n in sums))
        .where(*conds)
        .group_by(*grouping, table.c.latency_bucket)
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

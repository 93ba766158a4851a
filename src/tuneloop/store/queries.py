"""Read side: run search, trace trees, metrics aggregates and usage counts."""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

from tuneloop.analysis.metrics import GroupBy, RunAggregate, ToolAggregate
from tuneloop.errors import InvalidInputError, NotFoundError
from tuneloop.store.ingest import decode_payload
from tuneloop.store.schema import (
    METRICS_INDEX_COLUMNS,
    TOOL_METRICS_INDEX_COLUMNS,
    feedback,
    runs,
    spans,
    tool_calls,
)
from tuneloop.telemetry.model import STATUS_CODES, STATUS_NAMES

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs to read; every field narrows the selection."""

    agent: str | None = None
    version: str | None = None
    variant: str | None = None
    experiment: str | None = None
    outcome: str | None = None
    unit_id: str | None = None
    session_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    attributes: tuple[tuple[str, str], ...] = ()


def _conditions(
    project_id: str, where: RunFilter, table: sa.Table = runs, *, dialect: str
) -> list[Any]:
    conds: list[Any] = [table.c.project_id == project_id, table.c.has_root.is_(True)]
    for column, value in (
        ("agent", where.agent),
        ("config_version", where.version),
        ("variant", where.variant),
        ("experiment", where.experiment),
        ("outcome", where.outcome),
        ("unit_id", where.unit_id),
        ("session_id", where.session_id),
    ):
        if value is not None:
            conds.append(table.c[column] == value)
    if where.since_ms is not None:
        conds.append(table.c.started_ms >= where.since_ms)
    if where.until_ms is not None:
        conds.append(table.c.started_ms < where.until_ms)
    for key, value in where.attributes:
        conds.append(_attribute_equals(table, key, value, dialect))
    return conds


def _attribute_equals(table: sa.Table, key: str, value: str, dialect: str) -> Any:
    if dialect != "sqlite":
        return table.c.attributes[key].as_string() == value
    # A SQLite JSON path cannot spell every key (one holding '"'), and json_extract reads
    # true as 1: match decoded keys instead, with booleans spelled as PostgreSQL's ->> does.
    each = sa.func.json_each(table.c.attributes).table_valued("key", "value", "type")
    text = sa.case(
        (each.c.type == "true", "true"),
        (each.c.type == "false", "false"),
        else_=sa.cast(each.c.value, sa.String),
    )
    return sa.exists().where(each.c.key == key, text == value)


def _run_dict(row: Any) -> dict[str, Any]:
    input_tokens = row.input_tokens if row.llm_calls else row.root_input_tokens
    output_tokens = row.output_tokens if row.llm_calls else row.root_output_tokens
    return {
        "trace_id": row.trace_id,
        "root_span_id": row.root_span_id,
        "agent": row.agent,
        "version": row.config_version,
        "experiment": row.experiment,
        "variant": row.variant,
        "unit_id": row.unit_id,
        "session_id": row.session_id,
        "outcome": row.outcome,
        "status": STATUS_NAMES.get(row.status or 0, "unset"),
        "error_type": row.error_type,
        "started_ms": row.started_ms,
        "duration_ms": row.duration_ms,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": row.cost_usd if row.llm_calls else row.root_cost_usd,
        "llm_calls": row.llm_calls,
        "tool_calls": row.tool_calls,
        "tool_errors": row.tool_errors,
        "span_count": row.span_count,
    }


def _encode_cursor(started_ms: int, trace_id: str) -> str:
    return base64.urlsafe_b64encode(f"{started_ms}:{trace_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        started, trace_id = raw.split(":", 1)
        if len(trace_id) != 32:
            raise ValueError(trace_id)
        int(trace_id, 16)
        return int(started), trace_id
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidInputError(
            f"invalid cursor {cursor[:60]!r}: pass back 'next_cursor' unchanged"
        ) from exc


def tree_order(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans depth-first in start order, each with its ``depth`` and ``child_count``.

    A flat list rather than nested children: a waterfall draws it directly and a
    thousand-level chain serializes like any other trace. Spans whose parent is
    missing start a subtree at depth 0; spans caught in a parent cycle are listed too.
    """
    ids = {node["span_id"] for node in nodes}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for node in nodes:
        parent = node["parent_span_id"]
        children.setdefault(parent if parent in ids else None, []).append(node)
    ordered: list[dict[str, Any]] = []
    seen: set[str] = set()

    def walk(start: dict[str, Any]) -> None:
        stack = [(start, 0)]
        while stack:
            node, depth = stack.pop()
            if node["span_id"] in seen:
                continue
            seen.add(node["span_id"])
            kids = children.get(node["span_id"], [])
            ordered.append({**node, "depth": depth, "child_count": len(kids)})
            stack.extend((kid, depth + 1) for kid in reversed(kids))

    for root in children.get(None, []):
        walk(root)
    for node in nodes:
        if node["span_id"] not in seen:
            walk(node)
    return ordered


class Queries:
    """Read-only queries for one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def list_runs(
        self, project_id: str, where: RunFilter, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Runs newest first, and the cursor of the next page (None at the end)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        conds = _conditions(project_id, where, dialect=self._engine.dialect.name)
        if cursor:
            started, trace_id = _decode_cursor(cursor)
            conds.append(
                sa.or_(
                    runs.c.started_ms < started,
                    sa.and_(runs.c.started_ms == started, runs.c.trace_id < trace_id),
                )
            )
        query = (
            sa.select(runs)
            .where(*conds)
            .order_by(runs.c.started_ms.desc(), runs.c.trace_id.desc())
            .limit(limit + 1)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        page = [_run_dict(row) for row in rows[:limit]]
        next_cursor = (
            _encode_cursor(rows[limit - 1].started_ms, rows[limit - 1].trace_id)
            if len(rows) > limit
            else None
        )
        return page, next_cursor

    def get_trace(self, project_id: str, trace_id: str) -> dict[str, Any]:
        """A trace: its run facts, span tree and feedback."""
        trace_id = trace_id.lower()
        with self._engine.connect() as conn:
            span_rows = conn.execute(
                sa.select(spans)
                .where(spans.c.project_id == project_id, spans.c.trace_id == trace_id)
                .order_by(spans.c.start_ns, spans.c.span_id)
            ).all()
            if not span_rows:
                raise NotFoundError(f"no trace {trace_id!r} in this project")
            run_row = conn.execute(
                sa.select(runs).where(runs.c.project_id == project_id, runs.c.trace_id == trace_id)
            ).first()
            feedback_rows = conn.execute(
                sa.select(feedback)
                .where(feedback.c.project_id == project_id, feedback.c.trace_id == trace_id)
                .order_by(feedback.c.created_ms, feedback.c.feedback_id)
            ).all()
        nodes = [
            {
                "span_id": row.span_id,
                "parent_span_id": row.parent_span_id,
                "name": row.name,
                "kind": row.kind,
                "start_ns": row.start_ns,
                "end_ns": row.end_ns,
                "duration_ms": (row.end_ns - row.start_ns) / 1e6,
                "status": STATUS_NAMES.get(row.status, "unset"),
                **decode_payload(row.payload),
            }
            for row in span_rows
        ]
        return {
            "trace_id": trace_id,
            "run": _run_dict(run_row) if run_row is not None and run_row.has_root else None,
            "span_count": len(nodes),
            "spans": tree_order(nodes),
            "feedback": [
                {"name": f.name, "value": f.value, "comment": f.comment, "created_ms": f.created_ms}
                for f in feedback_rows
            ],
        }

    def run_aggregates(
        self, project_id: str, where: RunFilter, group_by: tuple[GroupBy, ...], *, bucket_ms: int
    ) -> dict[tuple[Any, ...], RunAggregate]:
        """Run aggregates per group, from one scan grouped by group and latency bucket."""
        keys = [_group_column(name, bucket_ms) for name in group_by]
        # Grouped by every leading column of ix_runs_metrics, in its order, SQLite
        # aggregates while it scans that covering index instead of sorting every run; the
        # requested groups are summed from those finer ones below. Time buckets and
        # attribute filters (which need the table row) cannot use it: they group as asked.
        fine = "time" not in group_by and not where.attributes
        grouping = [runs.c[name] for name in _METRICS_GROUPING] if fine else keys
        picks = [_METRICS_GROUPING.index(key.name) for key in keys] if fine else [*range(len(keys))]
        success = sa.func.sum(sa.case((runs.c.outcome == "success", 1), else_=0))
        failure = sa.func.sum(sa.case((runs.c.outcome == "failure", 1), else_=0))
        escalated = sa.func.sum(sa.case((runs.c.outcome == "escalated", 1), else_=0))
        errored = sa.func.sum(
            sa.case(
                (runs.c.status == STATUS_CODES["error"], 1),
                (runs.c.error_type.is_not(None), 1),
                else_=0,
            )
        )
        has_llm = runs.c.llm_calls > 0
        input_tokens = sa.func.sum(
            sa.case((has_llm, runs.c.input_tokens), else_=runs.c.root_input_tokens)
        )
        output_tokens = sa.func.sum(
            sa.case((has_llm, runs.c.output_tokens), else_=runs.c.root_output_tokens)
        )
        cost = sa.func.sum(sa.case((has_llm, runs.c.cost_usd), else_=runs.c.root_cost_usd))
        query = (
            sa.select(
                *grouping,
                runs.c.latency_bucket,
                sa.func.count(),
                success,
                failure,
                escalated,
                errored,
                input_tokens,
                output_tokens,
                cost,
                sa.func.sum(runs.c.tool_calls),
                sa.func.sum(runs.c.tool_errors),
                sa.func.sum(runs.c.tool_errors_retryable),
            )
            .where(*_conditions(project_id, where, dialect=self._engine.dialect.name))
            .group_by(*grouping, runs.c.latency_bucket)
        )
        sums: dict[tuple[Any, ...], list[Any]] = {}
        latency: dict[tuple[Any, ...], Counter[int]] = {}
        width = len(grouping)
        with self._engine.connect() as conn:
            for row in conn.execute(query):
                key = tuple(row[i] for i in picks)
                bucket, count, *values = row[width:]
                total = sums.get(key)
                if total is None:
                    total = sums[key] = [0] * (len(values) + 1)
                    latency[key] = Counter()
                total[0] += count
                for i, value in enumerate(values, 1):
                    total[i] += value or 0
                latency[key][bucket] += count
        return {
            key: RunAggregate(
                runs=total[0],
                successes=int(total[1]),
                failures=int(total[2]),
                escalations=int(total[3]),
                errors=int(total[4]),
                input_tokens=int(total[5]),
                output_tokens=int(total[6]),
                cost_usd=float(total[7]),
                tool_calls=int(total[8]),
                tool_errors=int(total[9]),
                tool_errors_retryable=int(total[10]),
                latency=latency[key],
            )
            for key, total in sums.items()
        }

    def tool_aggregates(
        self, project_id: str, where: RunFilter, group_by: tuple[GroupBy, ...], *, bucket_ms: int
    ) -> dict[tuple[Any, ...], ToolAggregate]:
        """Tool-call aggregates per group, from one scan grouped by group and latency bucket.

        Time (the ``since`` / ``until`` window and time buckets) is the tool call's own
        start. Tool calls of runs without a root yet are left out, as those runs are.
        """
        dialect = self._engine.dialect.name
        run_only = (where.outcome, where.unit_id, where.session_id)
        if where.attributes or any(value is not None for value in run_only):
            # These filters need the run row; the identity columns then come from it too.
            grouping = [
                _tool_group_column(name, bucket_ms)
                if name in ("tool", "time")
                else _group_column(name, bucket_ms)
                for name in group_by
            ]
            picks, bucket_at = [*range(len(grouping))], len(grouping)
            grouping.append(tool_calls.c.latency_bucket)
            conds = _conditions(
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
            # Each tool call carries its run's identity: no join. Grouped by the leading
            # columns of ix_tool_calls_metrics, in its order, SQLite aggregates while it
            # scans that covering index; the requested groups are summed from those below.
            grouping, picks, bucket_at = _tool_index_grouping(group_by, bucket_ms)
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
                    conds.append(_plain_filter(tool_calls.c[column], dialect) == value)
            source = tool_calls
        if where.since_ms is not None:
            conds.append(tool_calls.c.started_ms >= where.since_ms)
        if where.until_ms is not None:
            conds.append(tool_calls.c.started_ms < where.until_ms)
        errors = sa.func.sum(sa.case((tool_calls.c.status == "error", 1), else_=0))
        retryable = sa.func.sum(
            sa.case((sa.and_(tool_calls.c.status == "error", tool_calls.c.retryable), 1), else_=0)
        )
        query = (
            sa.select(
                *grouping, sa.func.count(), errors, retryable, sa.func.sum(tool_calls.c.retries)
            )
            .select_from(source)
            .where(*conds)
            .group_by(*grouping)
        )
        sums: dict[tuple[Any, ...], list[int]] = {}
        latency: dict[tuple[Any, ...], Counter[int]] = {}
        width = len(grouping)
        with self._engine.connect() as conn:
            for row in conn.execute(query):
                key = tuple(row[i] for i in picks)
                count, *values = row[width:]
                total = sums.get(key)
                if total is None:
                    total = sums[key] = [0] * (len(values) + 1)
                    latency[key] = Counter()
                total[0] += count
                for i, value in enumerate(values, 1):
                    total[i] += int(value or 0)
                latency[key][row[bucket_at]] += count
        return {
            key: ToolAggregate(
                calls=total[0],
                errors=total[1],
                errors_retryable=total[2],
                retries=total[3],
                latency=latency[key],
            )
            for key, total in sums.items()
        }

    def usage(self, project_id: str) -> dict[str, int]:
        """How much a project stores: spans, runs (with a root) and tool calls."""
        with self._engine.connect() as conn:
            return {
                "spans": conn.execute(
                    sa.select(sa.func.count())
                    .select_from(spans)
                    .where(spans.c.project_id == project_id)
                ).scalar_one(),
                "runs": conn.execute(
                    sa.select(sa.func.count())
                    .select_from(runs)
                    .where(runs.c.project_id == project_id, runs.c.has_root.is_(True))
                ).scalar_one(),
                "tool_calls": conn.execute(
                    sa.select(sa.func.count())
                    .select_from(tool_calls)
                    .where(tool_calls.c.project_id == project_id)
                ).scalar_one(),
            }

    def agents(self, project_id: str) -> list[str]:
        """Agents that have runs in a project."""
        with self._engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(runs.c.agent)
                    .where(runs.c.project_id == project_id, runs.c.has_root.is_(True))
                    .group_by(runs.c.agent)
                    .order_by(runs.c.agent)
                ).scalars()
            )


# The columns of ix_runs_metrics between project_id and latency_bucket, in index order.
_METRICS_GROUPING = METRICS_INDEX_COLUMNS[1 : METRICS_INDEX_COLUMNS.index("latency_bucket")]


# The columns of ix_tool_calls_metrics tool metrics group by, in index order.
_TOOL_METRICS_GROUPING = TOOL_METRICS_INDEX_COLUMNS[1 : TOOL_METRICS_INDEX_COLUMNS.index("status")]
_TOOL_GROUP_COLUMNS: dict[GroupBy, str] = {
    "agent": "agent",
    "version": "config_version",
    "variant": "variant",
    "experiment": "experiment",
    "tool": "tool",
}


def _tool_index_grouping(
    group_by: tuple[GroupBy, ...], bucket_ms: int
) -> tuple[list[Any], list[int], int]:
    """GROUP BY columns on tool_calls alone, the requested groups' places, the bucket's.

    The leading columns of ix_tool_calls_metrics down to the last one requested (at
    least down to the latency bucket), then the time bucket if requested.
    """
    wanted = [_TOOL_GROUP_COLUMNS[name] for name in group_by if name != "time"]
    last = max(_TOOL_METRICS_GROUPING.index(name) for name in [*wanted, "latency_bucket"])
    names = list(_TOOL_METRICS_GROUPING[: last + 1])
    grouping = [tool_calls.c[name] for name in names]
    if "time" in group_by:
        names.append("time")
        grouping.append(_tool_group_column("time", bucket_ms))
    picks = [
        names.index("time" if name == "time" else _TOOL_GROUP_COLUMNS[name]) for name in group_by
    ]
    return grouping, picks, names.index("latency_bucket")


def _plain_filter(column: sa.Column[Any], dialect: str) -> Any:
    """``column`` for an equality that SQLite must not treat as fixing the column's value.

    SQLite then drops the column from the GROUP BY order it checks the index against,
    finds the index's next columns out of order and sorts every row; ``+column`` (a
    no-op) keeps the term a plain filter and the scan in index order.
    """
    if dialect != "sqlite":
        return column
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


def _tool_group_column(name: GroupBy, bucket_ms: int) -> Any:
    if name == "time":
        return (tool_calls.c.started_ms // bucket_ms) * bucket_ms
    return tool_calls.c[_TOOL_GROUP_COLUMNS[name]]


def _group_column(name: GroupBy, bucket_ms: int) -> Any:
    if name == "agent":
        return runs.c.agent
    if name == "version":
        return runs.c.config_version
    if name == "variant":
        return runs.c.variant
    if name == "experiment":
        return runs.c.experiment
    if name == "time":
        return (runs.c.started_ms // bucket_ms) * bucket_ms
    raise InvalidInputError(f"cannot group runs by {name!r} without tool calls")

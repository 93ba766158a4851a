"""Read side: run search, trace trees, metrics aggregates and usage counts."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import sqlalchemy as sa

from tuneloop.analysis.metrics import GroupBy, RunAggregate, ToolAggregate
from tuneloop.errors import InvalidInputError, NotFoundError
from tuneloop.store.aggregates import run_aggregates, tool_aggregates
from tuneloop.store.filters import RunFilter, run_conditions
from tuneloop.store.ingest import decode_payload
from tuneloop.store.schema import feedback, runs, spans, tool_calls
from tuneloop.telemetry.model import STATUS_NAMES

__all__ = ["MAX_PAGE", "Queries", "RunFilter", "tree_order"]

MAX_PAGE = 500


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
        conds = run_conditions(project_id, where, dialect=self._engine.dialect.name)
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
        """Run aggregates per group (see store/aggregates.py)."""
        return run_aggregates(self._engine, project_id, where, group_by, bucket_ms=bucket_ms)

    def tool_aggregates(
        self, project_id: str, where: RunFilter, group_by: tuple[GroupBy, ...], *, bucket_ms: int
    ) -> dict[tuple[Any, ...], ToolAggregate]:
        """Tool-call aggregates per group (see store/aggregates.py)."""
        return tool_aggregates(self._engine, project_id, where, group_by, bucket_ms=bucket_ms)

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

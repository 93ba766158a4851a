"""Span ingest: spans and run / tool-call facts written in one transaction.

Writes go through one writer thread that commits every request queued behind the
current transaction together (group commit), so a commit's fsync is shared by many
requests, and a request is acknowledged only after the commit that holds it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tuneloop.errors import StoreBusyError, StoreError
from tuneloop.store.schema import runs, spans, tool_calls
from tuneloop.telemetry.model import NormalizedSpan
from tuneloop.telemetry.rows import PreparedSpans, decode_payload, encode_payload, prepare

__all__ = [
    "IngestWriter",
    "PreparedSpans",
    "WriteResult",
    "decode_payload",
    "encode_payload",
    "prepare",
    "write_prepared",
    "write_spans",
]

log = logging.getLogger("tuneloop.store")

_TRACE_CHUNK = 500


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one request added: duplicates (already stored) are skipped, not counted."""

    spans_written: int
    duplicates: int


_NO_ROOT: dict[str, Any] = {
    "root_span_id": None, "agent": None, "config_version": None, "experiment": None,
    "variant": None, "unit_id": None, "session_id": None, "outcome": None, "status": None,
    "error_type": None, "started_ms": None, "duration_ms": None, "latency_bucket": None,
    "root_input_tokens": 0, "root_output_tokens": 0, "root_cost_usd": 0.0, "attributes": None,
}  # fmt: skip


def write_spans(
    conn: sa.Connection, project_id: str, batch: Sequence[NormalizedSpan]
) -> WriteResult:
    """Write normalized spans and their facts on ``conn`` (the caller owns the transaction)."""
    return write_prepared(conn, prepare(project_id, batch))


def write_prepared(conn: sa.Connection, batch: PreparedSpans) -> WriteResult:
    """Write prepared spans and their facts on ``conn`` (the caller owns the transaction).

    Spans already stored (an exporter retrying after a lost response) are skipped, so
    facts are never counted twice.
    """
    fresh = _fresh_indices(conn, batch)
    if not fresh:
        return WriteResult(0, len(batch))
    conn.exec_driver_sql(_bulk_insert(conn, spans), [batch.span_rows[i] for i in fresh])
    tool_rows = [tool for i in fresh if (tool := batch.tool_rows[i]) is not None]
    if tool_rows:
        conn.exec_driver_sql(_bulk_insert(conn, tool_calls), tool_rows)
    runs_by_trace: dict[str, dict[str, Any]] = {}
    for i in fresh:
        trace_id = batch.keys[i][0]
        row = runs_by_trace.get(trace_id)
        if row is None:
            row = runs_by_trace[trace_id] = {
                "project_id": batch.project_id,
                "trace_id": trace_id,
                "has_root": False,
                **_NO_ROOT,
                "llm_calls": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cost_usd": 0.0,
                "tool_calls": 0,
                "tool_errors": 0,
                "tool_errors_retryable": 0,
                "span_count": 0,
            }
        llm_calls, input_tokens, output_tokens, cost, tools, errors, retryable = batch.counters[i]
        row["llm_calls"] += llm_calls
        row["input_tokens"] += input_tokens
        row["output_tokens"] += output_tokens
        row["cost_usd"] += cost
        row["tool_calls"] += tools
        row["tool_errors"] += errors
        row["tool_errors_retryable"] += retryable
        row["span_count"] += 1
        root = batch.roots[i]
        if root is not None:
            row.update(root)
            row["has_root"] = True
    conn.execute(_runs_upsert(conn.dialect.name), list(runs_by_trace.values()))
    return WriteResult(len(fresh), len(batch) - len(fresh))


_INSERTS: dict[tuple[str, str], str] = {}


def _bulk_insert(conn: sa.Connection, table: sa.Table) -> str:
    """A plain INSERT of every column, in column order, in the driver's parameter style.

    Bulk rows go straight to the driver's executemany: SQLAlchemy's per-row parameter
    processing costs more than the insert itself at ingest rates. Every column value
    is already a driver-native type (str, int, float, bool, bytes).
    """
    key = (conn.dialect.name, table.name)
    statement = _INSERTS.get(key)
    if statement is None:
        marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        columns = ", ".join(column.name for column in table.columns)
        markers = ", ".join(marker for _ in table.columns)
        statement = _INSERTS[key] = f"INSERT INTO {table.name} ({columns}) VALUES ({markers})"
    return statement


def _fresh_indices(conn: sa.Connection, batch: PreparedSpans) -> list[int]:
    trace_ids = sorted({trace_id for trace_id, _ in batch.keys})
    stored: set[tuple[str, str]] = set()
    for start in range(0, len(trace_ids), _TRACE_CHUNK):
        chunk = trace_ids[start : start + _TRACE_CHUNK]
        rows = conn.execute(
            sa.select(spans.c.trace_id, spans.c.span_id).where(
                spans.c.project_id == batch.project_id, spans.c.trace_id.in_(chunk)
            )
        )
        stored.update((row.trace_id, row.span_id) for row in rows)
    fresh: list[int] = []
    for i, key in enumerate(batch.keys):
        if key not in stored:
            stored.add(key)
            fresh.append(i)
    return fresh


_IDENTITY = (
    "root_span_id", "agent", "config_version", "experiment", "variant", "unit_id",
    "session_id", "outcome", "status", "error_type", "started_ms", "duration_ms",
    "latency_bucket", "root_input_tokens", "root_output_tokens", "root_cost_usd", "attributes",
)  # fmt: skip
_COUNTERS = (
    "llm_calls", "input_tokens", "output_tokens", "cost_usd", "tool_calls", "tool_errors",
    "tool_errors_retryable", "span_count",
)  # fmt: skip
_UPSERTS: dict[str, Any] = {}


def _runs_upsert(dialect: str) -> Any:
    """INSERT … ON CONFLICT that adds counters and takes identity from the root span."""
    cached = _UPSERTS.get(dialect)
    if cached is not None:
        return cached
    insert = postgresql.insert(runs) if dialect == "postgresql" else sqlite.insert(runs)
    new = insert.excluded
    updates: dict[str, Any] = {name: runs.c[name] + new[name] for name in _COUNTERS}
    for name in _IDENTITY:
        updates[name] = sa.case((new.has_root, new[name]), else_=runs.c[name])
    updates["has_root"] = sa.or_(runs.c.has_root, new.has_root)
    statement = insert.on_conflict_do_update(
        index_elements=[runs.c.project_id, runs.c.trace_id], set_=updates
    )
    _UPSERTS[dialect] = statement
    return statement


@dataclass(slots=True)
class _Job:
    batch: PreparedSpans
    future: Future[WriteResult]


class IngestWriter:
    """The single writer: queues requests and commits them in groups.

    ``submit`` returns a future that completes after the commit holding the request;
    a full queue raises StoreBusyError so the server can answer 503 with Retry-After.
    """

    def __init__(self, engine: sa.Engine, *, max_pending: int = 256, max_group: int = 64) -> None:
        self._engine = engine
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_pending)
        self._max_group = max_group
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Requests waiting for the writer."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="tuneloop-writer", daemon=True
                )
                self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish queued work and stop the writer thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout_s)

    def submit(self, batch: PreparedSpans) -> Future[WriteResult]:
        """Queue a request's prepared spans; the future resolves once they are committed."""
        future: Future[WriteResult] = Future()
        if self._thread is None:
            raise StoreError("the ingest writer is not running")
        try:
            self._queue.put_nowait(_Job(batch, future))
        except queue.Full:
            raise StoreBusyError(
                f"ingest queue is full ({self._queue.maxsize} requests waiting); retry shortly"
            ) from None
        return future

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stopping = False
            while len(group) < self._max_group:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                group.append(job)
            self._commit(group)
            if stopping:
                return

    def _commit(self, group: list[_Job]) -> None:
        try:
            with self._engine.begin() as conn:
                results = [write_prepared(conn, job.batch) for job in group]
        except Exception as exc:
            if len(group) > 1:
                # One bad request must not fail the others: retry each on its own.
                for job in group:
                    self._commit([job])
                return
            # The full error (with SQL) goes to the server log, never to the client.
            log.warning("ingest write failed", exc_info=exc)
            group[0].future.set_exception(
                StoreError(f"could not store spans ({type(exc).__name__}); retry the request")
            )
            return
        for job, result in zip(group, results, strict=True):
            job.future.set_result(result)

"""Span ingest: spans and run / tool-call facts written in one transaction.

Writes go through one writer thread that commits every request queued behind the
current transaction together (group commit), so a commit's fsync is shared by many
requests, and a request is acknowledged only after the commit that holds it.
"""

from __future__ import annotations

import logging
import queue
import threading
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tuneloop.analysis.quantiles import bucket_of
from tuneloop.errors import StoreBusyError, StoreError
from tuneloop.store.schema import runs, spans, tool_calls
from tuneloop.telemetry.model import STATUS_CODES, NormalizedSpan, run_deltas

log = logging.getLogger("tuneloop.store")

_TRACE_CHUNK = 500
_COMPRESS_FROM = 320


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one request added: duplicates (already stored) are skipped, not counted."""

    spans_written: int
    duplicates: int


def encode_payload(span: NormalizedSpan) -> bytes:
    """Compressed JSON of what a span carries beyond its indexed columns."""
    body: dict[str, Any] = {"a": span.attributes}
    if span.events:
        body["e"] = span.events
    if span.status_message:
        body["m"] = span.status_message
    if span.resource:
        body["r"] = span.resource
    if span.dropped_attributes:
        body["d"] = span.dropped_attributes
    raw = orjson.dumps(body)
    # Small payloads (most tool and guardrail spans) gain little from compression.
    if len(raw) < _COMPRESS_FROM:
        return b"j" + raw
    return b"z" + zlib.compress(raw, 1)


def decode_payload(payload: bytes) -> dict[str, Any]:
    """The inverse of encode_payload, with full key names."""
    raw = zlib.decompress(payload[1:]) if payload[:1] == b"z" else payload[1:]
    body = orjson.loads(raw)
    return {
        "attributes": body.get("a", {}),
        "events": body.get("e", []),
        "status_message": body.get("m", ""),
        "resource": body.get("r"),
        "dropped_attributes": body.get("d", 0),
    }


def write_spans(
    conn: sa.Connection, project_id: str, batch: Sequence[NormalizedSpan]
) -> WriteResult:
    """Write spans and their facts on ``conn`` (the caller owns the transaction).

    Spans already stored (an exporter retrying after a lost response) are skipped, so
    facts are never counted twice.
    """
    fresh = _without_stored(conn, project_id, batch)
    if not fresh:
        return WriteResult(0, len(batch))
    span_rows = [
        (
            project_id,
            s.trace_id,
            s.span_id,
            s.parent_span_id,
            s.name,
            s.kind,
            s.start_ns,
            s.end_ns,
            STATUS_CODES[s.status],
            encode_payload(s),
        )
        for s in fresh
    ]
    conn.exec_driver_sql(_bulk_insert(conn, spans), span_rows)
    tool_rows = [
        (
            project_id,
            s.trace_id,
            s.span_id,
            s.tool.tool,
            s.tool.status,
            s.tool.error_type,
            s.tool.retryable,
            s.tool.duration_ms,
            bucket_of(s.tool.duration_ms),
            s.tool.retries,
            s.tool.started_ms,
        )
        for s in fresh
        if s.tool is not None
    ]
    if tool_rows:
        conn.exec_driver_sql(_bulk_insert(conn, tool_calls), tool_rows)
    conn.execute(_runs_upsert(conn.dialect.name), _run_rows(project_id, fresh))
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


def _without_stored(
    conn: sa.Connection, project_id: str, batch: Sequence[NormalizedSpan]
) -> list[NormalizedSpan]:
    trace_ids = sorted({s.trace_id for s in batch})
    stored: set[tuple[str, str]] = set()
    for start in range(0, len(trace_ids), _TRACE_CHUNK):
        chunk = trace_ids[start : start + _TRACE_CHUNK]
        rows = conn.execute(
            sa.select(spans.c.trace_id, spans.c.span_id).where(
                spans.c.project_id == project_id, spans.c.trace_id.in_(chunk)
            )
        )
        stored.update((row.trace_id, row.span_id) for row in rows)
    fresh: list[NormalizedSpan] = []
    for span in batch:
        key = (span.trace_id, span.span_id)
        if key not in stored:
            stored.add(key)
            fresh.append(span)
    return fresh


def _run_rows(project_id: str, fresh: Iterable[NormalizedSpan]) -> list[dict[str, Any]]:
    rows = []
    for delta in run_deltas(list(fresh)).values():
        root = delta.root
        rows.append(
            {
                "project_id": project_id,
                "trace_id": delta.trace_id,
                "has_root": root is not None,
                "root_span_id": delta.root_span_id,
                "agent": root.agent if root else None,
                "config_version": root.config_version if root else None,
                "experiment": root.experiment if root else None,
                "variant": root.variant if root else None,
                "unit_id": root.unit_id if root else None,
                "session_id": root.session_id if root else None,
                "outcome": root.outcome if root else None,
                "status": STATUS_CODES[root.status] if root else None,
                "error_type": root.error_type if root else None,
                "started_ms": root.started_ms if root else None,
                "duration_ms": root.duration_ms if root else None,
                "latency_bucket": bucket_of(root.duration_ms) if root else None,
                "root_input_tokens": root.input_tokens if root else 0,
                "root_output_tokens": root.output_tokens if root else 0,
                "root_cost_usd": root.cost_usd if root else 0.0,
                "llm_calls": delta.llm_calls,
                "input_tokens": delta.input_tokens,
                "output_tokens": delta.output_tokens,
                "cost_usd": delta.cost_usd,
                "tool_calls": delta.tool_calls,
                "tool_errors": delta.tool_errors,
                "tool_errors_retryable": delta.tool_errors_retryable,
                "span_count": delta.spans,
                "attributes": root.attributes if root else None,
            }
        )
    return rows


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
    project_id: str
    spans: Sequence[NormalizedSpan]
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

    def submit(self, project_id: str, batch: Sequence[NormalizedSpan]) -> Future[WriteResult]:
        """Queue a request's spans; the future resolves once they are committed."""
        future: Future[WriteResult] = Future()
        if self._thread is None:
            raise StoreError("the ingest writer is not running")
        try:
            self._queue.put_nowait(_Job(project_id, batch, future))
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
                results = [write_spans(conn, job.project_id, job.spans) for job in group]
        except Exception as exc:
            if len(group) > 1:
                # One bad request must not fail the others: retry each on its own.
                for job in group:
                    self._commit([job])
                return
            log.warning("ingest write failed: %s", exc)
            group[0].future.set_exception(StoreError(f"could not store spans: {exc}"))
            return
        for job, result in zip(group, results, strict=True):
            job.future.set_result(result)

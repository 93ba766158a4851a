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

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tuneloop.errors import StoreBusyError, StoreError
from tuneloop.store.rollups import RUN_COUNTERS, RUN_STATE_COLUMNS, RollupDelta
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


def write_prepared(
    conn: sa.Connection, batch: PreparedSpans, rollups: RollupDelta | None = None
) -> WriteResult:
    """Write prepared spans and their facts on ``conn`` (the caller owns the transaction).

    Spans already stored (an exporter retrying after a lost response) are skipped, so
    facts are never counted twice. The rollup changes go to ``rollups`` when given (the
    caller writes them, once for several requests, before committing), else are
    written here.
    """
    fresh, earlier = _fresh_indices(conn, batch)
    if not fresh:
        return WriteResult(0, len(batch))
    conn.exec_driver_sql(_bulk_insert(conn, spans), [batch.span_rows[i] for i in fresh])
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
    # Only a trace with spans from an earlier request has a stored run.
    stored = _stored_runs(
        conn,
        batch.project_id,
        sorted(trace_id for trace_id in earlier if trace_id in runs_by_trace),
    )
    own = rollups is None
    if rollups is None:
        rollups = RollupDelta(batch.project_id)
    elif rollups.project_id != batch.project_id:
        raise ValueError(
            f"rollups of project {rollups.project_id!r} given for {batch.project_id!r}"
        )
    for trace_id, row in runs_by_trace.items():
        before = stored.get(trace_id)
        rollups.add_run(before, -1)
        rollups.add_run(_after(before, row), +1)
    tool_rows = _tool_rows(conn, batch, fresh, runs_by_trace, stored, rollups)
    if tool_rows:
        conn.exec_driver_sql(_bulk_insert(conn, tool_calls), tool_rows)
    _upsert_runs(conn, list(runs_by_trace.values()))
    if own:
        rollups.write(conn)
    return WriteResult(len(fresh), len(batch) - len(fresh))


def _after(before: dict[str, Any] | None, change: dict[str, Any]) -> dict[str, Any]:
    """A run's state after ``change`` (this request's row for it) is upserted."""
    if before is None:
        return change
    after = dict(before)
    for name in RUN_COUNTERS:
        after[name] += change[name]
    if change["has_root"]:
        for name in RUN_STATE_COLUMNS:
            if name not in RUN_COUNTERS:
                after[name] = change[name]
    return after


# The run identity every tool_calls row carries; its last columns, in this order.
_TOOL_IDENTITY = ("agent", "config_version", "experiment", "variant")
_TOOL_FACTS = len(tool_calls.columns) - len(_TOOL_IDENTITY)
_RESTAMP_TOOLS = (
    sa.update(tool_calls)
    .where(
        tool_calls.c.project_id == sa.bindparam("b_project_id"),
        tool_calls.c.trace_id == sa.bindparam("b_trace_id"),
    )
    .values({name: sa.bindparam(f"b_{name}") for name in _TOOL_IDENTITY})
)


def _tool_rows(
    conn: sa.Connection,
    batch: PreparedSpans,
    fresh: list[int],
    runs_by_trace: dict[str, dict[str, Any]],
    stored: dict[str, dict[str, Any]],
    rollups: RollupDelta,
) -> list[tuple[Any, ...]]:
    """The fresh tool rows, each with its run's identity once a root has been seen.

    The identity comes from a root in this request, else from the stored run. Tool
    calls stored before their root arrives get it now (so do those of a run whose root
    is replaced, as the run row's identity is): every tool row says what its run says.
    Tool calls count in the rollups from the moment they carry an identity.
    """
    known: dict[str, tuple[Any, ...]] = {}
    restamp: dict[str, tuple[Any, ...]] = {}
    for trace_id, before in stored.items():
        run = runs_by_trace[trace_id]
        names = tuple(before[name] for name in _TOOL_IDENTITY)
        if not run["has_root"]:
            if before["has_root"]:
                known[trace_id] = names
            continue
        new = tuple(run[name] for name in _TOOL_IDENTITY)
        if before["tool_calls"] and (not before["has_root"] or names != new):
            restamp[trace_id] = new
    if restamp:
        for stored_call in _stored_tool_calls(conn, batch.project_id, sorted(restamp)):
            trace_id, tool, status, retryable, retries, bucket, started_ms, *old = stored_call
            facts = (status == "error", bool(retryable), retries)
            rollups.add_tool(tuple(old), tool, started_ms, bucket, facts, -1)
            rollups.add_tool(restamp[trace_id], tool, started_ms, bucket, facts)
        conn.execute(
            _RESTAMP_TOOLS,
            [
                {
                    "b_project_id": batch.project_id,
                    "b_trace_id": trace_id,
                    **{f"b_{name}": value for name, value in zip(_TOOL_IDENTITY, new, strict=True)},
                }
                for trace_id, new in restamp.items()
            ],
        )
    rows: list[tuple[Any, ...]] = []
    for i in fresh:
        row = batch.tool_rows[i]
        if row is None:
            continue
        trace_id = batch.keys[i][0]
        run = runs_by_trace[trace_id]
        if run["has_root"]:
            identity: tuple[Any, ...] | None = tuple(run[name] for name in _TOOL_IDENTITY)
        else:
            identity = known.get(trace_id)
        if identity is None:
            rows.append(row)
            continue
        rows.append(row[:_TOOL_FACTS] + identity)
        rollups.add_tool(
            identity,
            row[_TOOL_NAME],
            row[_TOOL_STARTED],
            row[_TOOL_BUCKET],
            (row[_TOOL_STATUS] == "error", bool(row[_TOOL_RETRYABLE]), row[_TOOL_RETRIES]),
        )
    return rows


_TOOL_COLUMNS = [column.name for column in tool_calls.columns]
_TOOL_NAME = _TOOL_COLUMNS.index("tool")
_TOOL_STATUS = _TOOL_COLUMNS.index("status")
_TOOL_RETRYABLE = _TOOL_COLUMNS.index("retryable")
_TOOL_RETRIES = _TOOL_COLUMNS.index("retries")
_TOOL_BUCKET = _TOOL_COLUMNS.index("latency_bucket")
_TOOL_STARTED = _TOOL_COLUMNS.index("started_ms")

_STORED_RUNS = sa.select(runs.c.trace_id, *(runs.c[name] for name in RUN_STATE_COLUMNS)).where(
    runs.c.project_id == sa.bindparam("project_id"),
    runs.c.trace_id.in_(sa.bindparam("trace_ids", expanding=True)),
)
_STORED_TOOL_CALLS = sa.select(
    tool_calls.c.trace_id,
    tool_calls.c.tool,
    tool_calls.c.status,
    tool_calls.c.retryable,
    tool_calls.c.retries,
    tool_calls.c.latency_bucket,
    tool_calls.c.started_ms,
    *(tool_calls.c[name] for name in _TOOL_IDENTITY),
).where(
    tool_calls.c.project_id == sa.bindparam("project_id"),
    tool_calls.c.trace_id.in_(sa.bindparam("trace_ids", expanding=True)),
)


def _stored_runs(
    conn: sa.Connection, project_id: str, trace_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The stored state (identity and counters) of these runs, by trace id."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(trace_ids), _TRACE_CHUNK):
        chunk = trace_ids[start : start + _TRACE_CHUNK]
        for row in conn.execute(_STORED_RUNS, {"project_id": project_id, "trace_ids": chunk}):
            found[row[0]] = dict(zip(RUN_STATE_COLUMNS, row[1:], strict=True))
    return found


def _stored_tool_calls(
    conn: sa.Connection, project_id: str, trace_ids: list[str]
) -> list[tuple[Any, ...]]:
    """(trace id, tool, status, retryable, retries, bucket, start, identity…) of stored calls."""
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(trace_ids), _TRACE_CHUNK):
        chunk = trace_ids[start : start + _TRACE_CHUNK]
        rows = conn.execute(_STORED_TOOL_CALLS, {"project_id": project_id, "trace_ids": chunk})
        found.extend(tuple(row) for row in rows)
    return found


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


_STORED_SPANS = sa.select(spans.c.trace_id, spans.c.span_id).where(
    spans.c.project_id == sa.bindparam("project_id"),
    spans.c.trace_id.in_(sa.bindparam("trace_ids", expanding=True)),
)


def _fresh_indices(conn: sa.Connection, batch: PreparedSpans) -> tuple[list[int], set[str]]:
    """Spans not stored yet, and the traces that already have stored spans."""
    trace_ids = sorted({trace_id for trace_id, _ in batch.keys})
    stored: set[tuple[str, str]] = set()
    for start in range(0, len(trace_ids), _TRACE_CHUNK):
        chunk = trace_ids[start : start + _TRACE_CHUNK]
        rows = conn.execute(_STORED_SPANS, {"project_id": batch.project_id, "trace_ids": chunk})
        stored.update(map(tuple, rows))
    earlier = {trace_id for trace_id, _ in stored}
    fresh: list[int] = []
    for i, key in enumerate(batch.keys):
        if key not in stored:
            stored.add(key)
            fresh.append(i)
    return fresh, earlier


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


_UPSERT_SQL: dict[str, tuple[str, tuple[str, ...] | None]] = {}


def _upsert_runs(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Run the runs upsert on ``rows`` (changed in place), straight through the driver.

    As for the bulk inserts, SQLAlchemy's per-row parameter processing cost about a
    tenth of the writer's time. ``attributes`` gets the JSON text the column type would
    have bound with the Store engine's serializer (orjson; None becomes ``null``).
    """
    statement, names = _UPSERT_SQL.get(conn.dialect.name) or _runs_upsert_sql(conn)
    for row in rows:
        row["attributes"] = orjson.dumps(row["attributes"]).decode()
    if names is None:
        conn.exec_driver_sql(statement, rows)
    else:
        conn.exec_driver_sql(statement, [tuple(row[name] for name in names) for row in rows])


def _runs_upsert_sql(conn: sa.Connection) -> tuple[str, tuple[str, ...] | None]:
    """The runs upsert in the driver's SQL, and its parameter order (None: by name)."""
    compiled = _runs_upsert(conn.dialect.name).compile(dialect=conn.dialect)
    names = None if compiled.positiontup is None else tuple(compiled.positiontup)
    _UPSERT_SQL[conn.dialect.name] = (compiled.string, names)
    return compiled.string, names


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
                # One rollup change set per project for the whole group: requests of the
                # same agents and hours add to the same rows, written once.
                deltas: dict[str, RollupDelta] = {}
                results = []
                for job in group:
                    project = job.batch.project_id
                    delta = deltas.get(project)
                    if delta is None:
                        delta = deltas[project] = RollupDelta(project)
                    results.append(write_prepared(conn, job.batch, delta))
                for delta in deltas.values():
                    delta.write(conn)
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

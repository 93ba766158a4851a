"""The agent runtime's durable state in the tuneloop database (SQLite or PostgreSQL).

`RuntimeStateRepository` is the database `RuntimeStateBackend` of
``tuneloop.runtime.checkpoints``: run checkpoints (compare-and-set on a version
counter), the idempotency ledger and review items (first write wins), the shared cache
(with expiry) and session spend (added up in the checkpoint's transaction, so a step
replayed after a crash is not counted twice). Every call is one short transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tuneloop.errors import ConflictError, NotFoundError, StoreError
from tuneloop.runtime.budget import Spend
from tuneloop.runtime.cache import CacheEntry
from tuneloop.runtime.checkpoints import Checkpoint
from tuneloop.runtime.machine import RunState
from tuneloop.runtime.review import Decision, ReviewItem, ReviewStats, ReviewStatus
from tuneloop.runtime.tools.idempotency import LedgerEntry
from tuneloop.store.engine import create_store_engine, migrate
from tuneloop.store.schema import (
    review_items,
    runtime_cache,
    runtime_checkpoints,
    runtime_ledger,
    session_usage,
)

_CP = runtime_checkpoints.c
_L = runtime_ledger.c
_K = runtime_cache.c
_R = review_items.c
_S = session_usage.c


# Statements built once with bind parameters: building one per call costs several times
# more than executing it, and a checkpoint is saved after every step of every run.
_STEP_COLUMNS = ("agent", "state", "step", "version", "session_id", "data", "updated_ms")


def _update_checkpoint(*columns: str) -> sa.Update:
    return (
        runtime_checkpoints.update()
        .where(
            _CP.project_id == sa.bindparam("w_project"),
            _CP.run_id == sa.bindparam("w_run"),
            _CP.version == sa.bindparam("w_version"),
        )
        .values({column: sa.bindparam(f"v_{column}") for column in columns})
    )


_UPDATE_STEP = _update_checkpoint(*_STEP_COLUMNS)
_UPDATE_STEP_AND_CONFIGS = _update_checkpoint(*_STEP_COLUMNS, "configs")
_INSERT_CHECKPOINT = runtime_checkpoints.insert()
_SELECT_LEDGER = sa.select(runtime_ledger).where(
    _L.project_id == sa.bindparam("w_project"), _L.idem_key == sa.bindparam("w_key")
)
_SELECT_CACHE = sa.select(runtime_cache).where(
    _K.project_id == sa.bindparam("w_project"), _K.cache_key == sa.bindparam("w_key")
)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads_or_none(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(
        run_id=row.run_id,
        agent=row.agent,
        state=row.state,
        step=row.step,
        data=orjson.loads(row.data),
        version=row.version,
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
        session_id=row.session_id,
        configs=orjson.loads(row.configs),
    )


def _review(row: Any) -> ReviewItem:
    return ReviewItem(
        review_id=row.review_id,
        run_id=row.run_id,
        agent=row.agent,
        kind=row.kind,
        reason=row.reason,
        source=row.source,
        created_ms=row.created_ms,
        status=row.status,
        tool=row.tool,
        call_id=row.call_id,
        arguments=_loads_or_none(row.arguments),
        content=_loads_or_none(row.content),
        hop=row.hop,
        trace_id=row.trace_id,
        session_id=row.session_id,
        reviewer=row.reviewer,
        decision_reason=row.decision_reason,
        decided_ms=row.decided_ms,
        metadata=orjson.loads(row.metadata),
    )


class RuntimeStateRepository:
    """Run checkpoints, ledger, cache, review items and session spend, per project."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._dialect: Any = sqlite if engine.dialect.name == "sqlite" else postgresql
        insert = self._dialect.insert(session_usage)
        self._add_session_spend = insert.on_conflict_do_update(
            index_elements=["project_id", "agent", "session_id"],
            set_={
                "input_tokens": _S.input_tokens + insert.excluded.input_tokens,
                "output_tokens": _S.output_tokens + insert.excluded.output_tokens,
                "cost_usd": _S.cost_usd + insert.excluded.cost_usd,
                "updated_ms": insert.excluded.updated_ms,
            },
        )

    def load_checkpoint(self, project_id: str, run_id: str) -> Checkpoint | None:
        """The run's last checkpoint, or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(runtime_checkpoints).where(
                    _CP.project_id == project_id, _CP.run_id == run_id
                )
            ).first()
        return None if row is None else _checkpoint(row)

    def save_checkpoint(
        self,
        project_id: str,
        checkpoint: Checkpoint,
        *,
        expected_version: int,
        session_spend: Spend | None = None,
    ) -> Checkpoint:
        """Save if the stored version is ``expected_version`` (0: insert); add session spend.

        Raises:
            ConflictError: another process saved the run since ``expected_version``.
        """
        version = expected_version + 1
        values: dict[str, Any] = {
            "agent": checkpoint.agent,
            "state": checkpoint.state,
            "step": checkpoint.step,
            "version": version,
            "session_id": checkpoint.session_id,
            "data": _dumps(checkpoint.data),
            "updated_ms": checkpoint.updated_ms,
        }
        if checkpoint.configs is not None or expected_version == 0:
            values["configs"] = _dumps(checkpoint.configs or {})
        conflict = ConflictError(
            f"run {checkpoint.run_id!r} already exists; start a run with a new id, or resume it"
            if expected_version == 0
            else f"run {checkpoint.run_id!r} was saved by someone else since version "
            f"{expected_version}; another process is continuing it"
        )
        try:
            with self.engine.begin() as conn:
                if expected_version == 0:
                    row = {
                        "project_id": project_id,
                        "run_id": checkpoint.run_id,
                        "created_ms": checkpoint.created_ms,
                        **values,
                    }
                    conn.execute(_INSERT_CHECKPOINT, row)
                else:
                    statement = (
                        _UPDATE_STEP if "configs" not in values else _UPDATE_STEP_AND_CONFIGS
                    )
                    params = {f"v_{key}": value for key, value in values.items()}
                    params.update(
                        w_project=project_id, w_run=checkpoint.run_id, w_version=expected_version
                    )
                    if conn.execute(statement, params).rowcount != 1:
                        raise conflict
                if session_spend is not None and checkpoint.session_id is not None:
                    self._add_spend(conn, project_id, checkpoint, session_spend)
        except sa.exc.IntegrityError:
            raise conflict from None
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot save run {checkpoint.run_id!r}: {exc.orig}") from exc
        return dataclasses.replace(checkpoint, version=version)

    def _add_spend(
        self, conn: sa.Connection, project_id: str, checkpoint: Checkpoint, spend: Spend
    ) -> None:
        conn.execute(
            self._add_session_spend,
            {
                "project_id": project_id,
                "agent": checkpoint.agent,
                "session_id": checkpoint.session_id,
                "input_tokens": spend.input_tokens,
                "output_tokens": spend.output_tokens,
                "cost_usd": spend.cost_usd,
                "updated_ms": checkpoint.updated_ms,
            },
        )

    def list_checkpoints(
        self,
        project_id: str,
        *,
        agent: str | None = None,
        states: Sequence[RunState] | None = None,
        limit: int = 100,
    ) -> list[Checkpoint]:
        """Runs, most recently saved first."""
        query = sa.select(runtime_checkpoints).where(_CP.project_id == project_id)
        if agent is not None:
            query = query.where(_CP.agent == agent)
        if states is not None:
            query = query.where(_CP.state.in_(list(states)))
        query = query.order_by(_CP.updated_ms.desc(), _CP.run_id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_checkpoint(row) for row in conn.execute(query)]

    def ledger_get(self, project_id: str, key: str) -> LedgerEntry | None:
        """A recorded side effect, or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(_SELECT_LEDGER, {"w_project": project_id, "w_key": key}).first()
        if row is None:
            return None
        return LedgerEntry(row.idem_key, row.tool, orjson.loads(row.result), row.recorded_ms)

    def ledger_record(self, project_id: str, entry: LedgerEntry) -> LedgerEntry:
        """Record unless the key is taken; return the entry that stands (first wins)."""
        with self.engine.begin() as conn:
            conn.execute(
                self._dialect.insert(runtime_ledger)
                .values(
                    project_id=project_id,
                    idem_key=entry.key,
                    tool=entry.tool,
                    result=_dumps(dict(entry.result)),
                    recorded_ms=entry.recorded_at_ms,
                )
                .on_conflict_do_nothing()
            )
        standing = self.ledger_get(project_id, entry.key)
        assert standing is not None  # just written, and entries are never deleted
        return standing

    def cache_get(self, project_id: str, key: str, *, now_ms: int) -> CacheEntry | None:
        """The live entry, or ``None`` (an expired one is deleted)."""
        with self.engine.connect() as conn:
            row = conn.execute(_SELECT_CACHE, {"w_project": project_id, "w_key": key}).first()
        if row is None:
            return None
        if row.expires_ms is not None and now_ms >= row.expires_ms:
            with self.engine.begin() as conn:
                conn.execute(
                    runtime_cache.delete().where(
                        _K.project_id == project_id, _K.cache_key == key, _K.expires_ms <= now_ms
                    )
                )
            return None
        return CacheEntry(orjson.loads(row.value), row.stored_ms)

    def cache_set(
        self, project_id: str, key: str, value: Any, *, now_ms: int, expires_ms: int | None
    ) -> None:
        """Store an entry, replacing any under the same key."""
        insert = self._dialect.insert(runtime_cache).values(
            project_id=project_id,
            cache_key=key,
            value=_dumps(value),
            stored_ms=now_ms,
            expires_ms=expires_ms,
        )
        with self.engine.begin() as conn:
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["project_id", "cache_key"],
                    set_={
                        "value": insert.excluded.value,
                        "stored_ms": insert.excluded.stored_ms,
                        "expires_ms": insert.excluded.expires_ms,
                    },
                )
            )

    def cache_delete(self, project_id: str, key: str) -> None:
        """Forget an entry."""
        with self.engine.begin() as conn:
            conn.execute(
                runtime_cache.delete().where(_K.project_id == project_id, _K.cache_key == key)
            )

    def purge_cache(self, project_id: str, *, now_ms: int) -> int:
        """Delete the project's expired cache entries; returns how many."""
        with self.engine.begin() as conn:
            result = conn.execute(
                runtime_cache.delete().where(_K.project_id == project_id, _K.expires_ms <= now_ms)
            )
        return int(result.rowcount)

    def add_review(self, project_id: str, item: ReviewItem) -> ReviewItem:
        """Store unless the id exists; return the item that stands (first wins)."""
        with self.engine.begin() as conn:
            conn.execute(
                self._dialect.insert(review_items)
                .values(
                    project_id=project_id,
                    review_id=item.review_id,
                    run_id=item.run_id,
                    agent=item.agent,
                    kind=item.kind,
                    source=item.source,
                    status=item.status,
                    reason=item.reason,
                    tool=item.tool,
                    call_id=item.call_id,
                    hop=item.hop,
                    arguments=None if item.arguments is None else _dumps(dict(item.arguments)),
                    content=None if item.content is None else _dumps(item.content),
                    trace_id=item.trace_id,
                    session_id=item.session_id,
                    reviewer=item.reviewer,
                    decision_reason=item.decision_reason,
                    created_ms=item.created_ms,
                    decided_ms=item.decided_ms,
                    metadata=_dumps(dict(item.metadata)),
                )
                .on_conflict_do_nothing()
            )
        standing = self.get_review(project_id, item.review_id)
        assert standing is not None  # just written, and items are never deleted
        return standing

    def get_review(self, project_id: str, review_id: str) -> ReviewItem | None:
        """One item, or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(review_items).where(
                    _R.project_id == project_id, _R.review_id == review_id
                )
            ).first()
        return None if row is None else _review(row)

    def list_reviews(
        self,
        project_id: str,
        *,
        status: ReviewStatus | None = None,
        agent: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[ReviewItem]:
        """Items, oldest first."""
        query = sa.select(review_items).where(_R.project_id == project_id)
        if status is not None:
            query = query.where(_R.status == status)
        if agent is not None:
            query = query.where(_R.agent == agent)
        if run_id is not None:
            query = query.where(_R.run_id == run_id)
        query = query.order_by(_R.created_ms, _R.review_id).limit(limit)
        with self.engine.connect() as conn:
            return [_review(row) for row in conn.execute(query)]

    def decide_review(
        self,
        project_id: str,
        review_id: str,
        decision: Decision,
        *,
        reviewer: str,
        reason: str,
        now_ms: int,
    ) -> ReviewItem:
        """Record a decision; only a pending item can be decided.

        Raises:
            NotFoundError: no such review in the project.
            ConflictError: it was already decided (by this call's competitor, too).
        """
        item = self.get_review(project_id, review_id)
        if item is None:
            raise NotFoundError(
                f"no review {review_id!r} in project {project_id!r}; list them with "
                "`tuneloop review list`"
            )
        decided = item.decide(decision, reviewer=reviewer, reason=reason, now_ms=now_ms)
        with self.engine.begin() as conn:
            updated = conn.execute(
                review_items.update()
                .where(
                    _R.project_id == project_id,
                    _R.review_id == review_id,
                    _R.status == "pending",
                )
                .values(
                    status=decided.status,
                    reviewer=reviewer,
                    decision_reason=reason,
                    decided_ms=now_ms,
                )
            )
        if updated.rowcount != 1:
            raise ConflictError(f"review {review_id!r} was decided by someone else just now")
        return decided

    def review_stats(self, project_id: str, *, agent: str | None = None) -> ReviewStats:
        """Counts of pending, approved and rejected items."""
        query = sa.select(_R.status, sa.func.count()).where(_R.project_id == project_id)
        if agent is not None:
            query = query.where(_R.agent == agent)
        with self.engine.connect() as conn:
            rows = conn.execute(query.group_by(_R.status)).all()
        counts = {str(status): int(count) for status, count in rows}
        return ReviewStats(
            counts.get("pending", 0), counts.get("approved", 0), counts.get("rejected", 0)
        )

    def session_spend(self, project_id: str, agent: str, session_id: str) -> Spend:
        """A session's spend so far (zero for a new one)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(_S.input_tokens, _S.output_tokens, _S.cost_usd).where(
                    _S.project_id == project_id, _S.agent == agent, _S.session_id == session_id
                )
            ).first()
        if row is None:
            return Spend()
        return Spend(int(row.input_tokens), int(row.output_tokens), float(row.cost_usd))


def open_runtime_state(location: str, *, fsync: bool = False) -> RuntimeStateRepository:
    """A repository on a database URL, or on a SQLite file at a path; migrated to the latest.

    Args:
        location: ``sqlite:///…``, ``postgresql+psycopg://…``, or a file path (SQLite).
        fsync: SQLite only. By default a commit is written to the WAL without waiting
            for the disk (``synchronous=NORMAL``): it survives the process being killed,
            and a power cut can lose the last commits but never corrupt the file. With
            ``fsync=True`` every commit waits for the disk (``synchronous=FULL``, as the
            server's store does) and survives a power cut too, at a cost per step.
    """
    url = location if "://" in location else f"sqlite:///{location}"
    engine = create_store_engine(url, json_serializer=_dumps, json_deserializer=orjson.loads)
    if engine.dialect.name == "sqlite" and not fsync:
        sa.event.listen(engine, "connect", _wal_without_fsync)
    migrate(engine)
    return RuntimeStateRepository(engine)


def _wal_without_fsync(dbapi_connection: Any, _record: Any) -> None:
    # Runs after the store's own pragmas (listeners run in order), overriding FULL.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()

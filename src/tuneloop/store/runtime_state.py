"""The agent runtime's durable state in the tuneloop database (SQLite or PostgreSQL).

`RuntimeStateRepository` is the database `RuntimeStateBackend` of
``tuneloop.runtime.checkpoints``: run checkpoints (compare-and-set on a version
counter), the idempotency ledger and review items (first write wins; the latter in
``runtime_reviews``), the shared cache (with expiry) and session spend (added up in the
checkpoint's transaction, so a step replayed after a crash is not counted twice). Every
call is one short transaction. On a SQLite file without fsync, checkpoint saves can run
on the caller's thread (`RuntimeStateRepository.save_checkpoint_now`).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.dml import UpdateBase

from tuneloop.errors import ConflictError, StoreError
from tuneloop.runtime.budget import Spend
from tuneloop.runtime.cache import CacheEntry
from tuneloop.runtime.checkpoints import Checkpoint
from tuneloop.runtime.machine import RunState
from tuneloop.runtime.tools.idempotency import LedgerEntry
from tuneloop.store.engine import create_store_engine, migrate
from tuneloop.store.runtime_reviews import ReviewRepository
from tuneloop.store.schema import (
    runtime_cache,
    runtime_checkpoints,
    runtime_ledger,
    session_usage,
)
from tuneloop.store.sqlite_inline import InlineWriter, Statement

_CP = runtime_checkpoints.c
_L = runtime_ledger.c
_K = runtime_cache.c
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


@dataclass(frozen=True, slots=True)
class _Save:
    """A checkpoint save: its statements (the checkpoint's row first), in one transaction."""

    statements: tuple[tuple[UpdateBase, dict[str, Any]], ...]
    updates: bool  # the first statement updates the row (it inserts it for a new run)
    conflict: ConflictError
    saved: Checkpoint


class RuntimeStateRepository(ReviewRepository):
    """Run checkpoints, ledger, cache, review items and session spend, per project.

    Args:
        engine: the database.
        inline: saves checkpoints on the calling thread when the write lock is free
            (`save_checkpoint_now`); only for a SQLite file without fsync.
    """

    def __init__(self, engine: sa.Engine, *, inline: InlineWriter | None = None) -> None:
        super().__init__(engine)
        self._inline = inline
        # SQL text of the save statements for the inline writer, by statement: they
        # are module constants or attributes of this repository, so ids stay valid.
        self._compiled: dict[int, tuple[str, tuple[str, ...]]] = {}
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

    def close(self) -> None:
        """Close the inline connection and the engine's pooled ones."""
        if self._inline is not None:
            self._inline.close()
        self.engine.dispose()

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
        save = self._plan_save(project_id, checkpoint, expected_version, session_spend)
        (statement, params), *rest = save.statements
        try:
            with self.engine.begin() as conn:
                changed = conn.execute(statement, params).rowcount
                # An insert's conflict is an IntegrityError (psycopg reports no rowcount).
                if save.updates and changed != 1:
                    raise save.conflict
                for statement, params in rest:
                    conn.execute(statement, params)
        except sa.exc.IntegrityError:
            raise save.conflict from None
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot save run {checkpoint.run_id!r}: {exc.orig}") from exc
        return save.saved

    def save_checkpoint_now(
        self,
        project_id: str,
        checkpoint: Checkpoint,
        *,
        expected_version: int,
        session_spend: Spend | None = None,
    ) -> Checkpoint | None:
        """`save_checkpoint` on the calling thread, or ``None`` if that could wait.

        Only a SQLite file opened without fsync saves inline (see `InlineWriter`); the
        others, and a file whose write lock is taken, answer ``None`` having written
        nothing, and the caller saves with `save_checkpoint` in a worker thread.

        Raises:
            ConflictError: another process saved the run since ``expected_version``.
        """
        inline = self._inline
        if inline is None:
            return None
        save = self._plan_save(project_id, checkpoint, expected_version, session_spend)
        try:
            done = inline.run([self._positional(*step) for step in save.statements])
        except sqlite3.IntegrityError:
            raise save.conflict from None
        except sqlite3.Error as exc:
            raise StoreError(f"cannot save run {checkpoint.run_id!r}: {exc}") from exc
        if done is False:
            raise save.conflict
        return None if done is None else save.saved

    def _plan_save(
        self,
        project_id: str,
        checkpoint: Checkpoint,
        expected_version: int,
        session_spend: Spend | None,
    ) -> _Save:
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
        statements: list[tuple[UpdateBase, dict[str, Any]]] = []
        if expected_version == 0:
            row = {
                "project_id": project_id,
                "run_id": checkpoint.run_id,
                "created_ms": checkpoint.created_ms,
                **values,
            }
            statements.append((_INSERT_CHECKPOINT, row))
        else:
            statement = _UPDATE_STEP if "configs" not in values else _UPDATE_STEP_AND_CONFIGS
            params = {f"v_{key}": value for key, value in values.items()}
            params.update(w_project=project_id, w_run=checkpoint.run_id, w_version=expected_version)
            statements.append((statement, params))
        if session_spend is not None and checkpoint.session_id is not None:
            statements.append(
                (
                    self._add_session_spend,
                    {
                        "project_id": project_id,
                        "agent": checkpoint.agent,
                        "session_id": checkpoint.session_id,
                        "input_tokens": session_spend.input_tokens,
                        "output_tokens": session_spend.output_tokens,
                        "cost_usd": session_spend.cost_usd,
                        "updated_ms": checkpoint.updated_ms,
                    },
                )
            )
        saved = dataclasses.replace(checkpoint, version=version)
        return _Save(tuple(statements), expected_version != 0, conflict, saved)

    def _positional(self, statement: UpdateBase, params: dict[str, Any]) -> Statement:
        """``statement`` as SQLite text with its parameters in order (compiled once)."""
        compiled = self._compiled.get(id(statement))
        if compiled is None:
            done = statement.compile(dialect=self.engine.dialect)
            compiled = self._compiled[id(statement)] = (str(done), tuple(done.positiontup or ()))
        sql, names = compiled
        return sql, [params[name] for name in names]

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
            Without fsync, checkpoint saves are made on the caller's thread whenever
            the file's write lock is free (see `InlineWriter`): the commit is cheaper
            than the hand-off to a worker thread.
    """
    url = location if "://" in location else f"sqlite:///{location}"
    engine = create_store_engine(url, json_serializer=_dumps, json_deserializer=orjson.loads)
    inline = None
    if engine.dialect.name == "sqlite" and not fsync:
        sa.event.listen(engine, "connect", _wal_without_fsync)
    migrate(engine)
    database = engine.url.database or ""
    if engine.dialect.name == "sqlite" and not fsync and _is_file(database):
        inline = InlineWriter(database)
    return RuntimeStateRepository(engine, inline=inline)


def _is_file(database: str) -> bool:
    # An in-memory database is one per connection: the inline writer would see another.
    return database not in ("", ":memory:") and not database.startswith("file:")


def _wal_without_fsync(dbapi_connection: Any, _record: Any) -> None:
    # Runs after the store's own pragmas (listeners run in order), overriding FULL.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()

"""Durable run state: checkpoints, the idempotency ledger, shared caches, reviews, session spend.

The runtime talks to one `CheckpointStore` (async). Two implementations share one
adapter, `BackendStore`, over a synchronous `RuntimeStateBackend`:

- in memory (`MemoryRuntimeState`, the default: one process, nothing survives it);
- in the tuneloop database (`tuneloop.store.runtime_state`, SQLite or PostgreSQL),
  whose blocking calls run in a worker thread, never on the event loop.

`open_checkpoint_store` turns what an `Agent` is given (a path, a database URL, a
tuneloop `Store`, or a store object) into a `CheckpointStore`; the database side is
imported only then, so ``import tuneloop.runtime`` loads no SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from tuneloop.clock import Clock
from tuneloop.runtime.budget import Spend
from tuneloop.runtime.cache import Cache, CacheEntry
from tuneloop.runtime.machine import RunState
from tuneloop.runtime.review import Decision, ReviewItem, ReviewStats, ReviewStatus
from tuneloop.runtime.tools.idempotency import IdempotencyLedger, LedgerEntry

T = TypeVar("T")
DEFAULT_PROJECT = "default"
_MS_PER_S = 1000


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A run as last saved.

    Attributes:
        run_id: the run.
        agent: the agent that started it (the router, for a run with handoffs).
        state: its state machine's state.
        step: model calls made so far.
        data: everything needed to continue: conversation, tool results, spend,
            pending review (JSON data).
        version: bumped by every save; a save names the version it read, so two
            processes cannot both continue one run.
        created_ms: when the run started.
        updated_ms: when it was last saved.
        session_id: the run's session, for session budgets.
        configs: the configs the run is pinned to, by agent (JSON data). A save
            writes them when given (the first save, after a handoff) and keeps the
            stored ones when ``None``; a load always returns them.
    """

    run_id: str
    agent: str
    state: RunState
    step: int
    data: Mapping[str, Any]
    version: int = 0
    created_ms: int = 0
    updated_ms: int = 0
    session_id: str | None = None
    configs: Mapping[str, Any] | None = None


class RuntimeStateBackend(Protocol):
    """Synchronous run-state storage for one database (or memory), every call project-scoped."""

    def load_checkpoint(self, project_id: str, run_id: str) -> Checkpoint | None:
        """The run's last checkpoint, or ``None``."""
        ...

    def save_checkpoint(
        self,
        project_id: str,
        checkpoint: Checkpoint,
        *,
        expected_version: int,
        session_spend: Spend | None = None,
    ) -> Checkpoint:
        """Save if the stored version is ``expected_version`` (0: a new run); bump the version.

        ``session_spend`` is added to the run's session total in the same transaction.

        Raises:
            ConflictError: another process saved the run since ``expected_version``.
        """
        ...

    def list_checkpoints(
        self,
        project_id: str,
        *,
        agent: str | None = None,
        states: Sequence[RunState] | None = None,
        limit: int = 100,
    ) -> list[Checkpoint]:
        """Runs, most recently saved first."""
        ...

    def ledger_get(self, project_id: str, key: str) -> LedgerEntry | None:
        """A recorded side effect, or ``None``."""
        ...

    def ledger_record(self, project_id: str, entry: LedgerEntry) -> LedgerEntry:
        """Record ``entry`` unless its key is taken; return the entry that stands."""
        ...

    def cache_get(self, project_id: str, key: str, *, now_ms: int) -> CacheEntry | None:
        """The live cache entry, or ``None``."""
        ...

    def cache_set(
        self, project_id: str, key: str, value: Any, *, now_ms: int, expires_ms: int | None
    ) -> None:
        """Store a cache entry (``expires_ms`` ``None``: no expiry)."""
        ...

    def cache_delete(self, project_id: str, key: str) -> None:
        """Forget a cache entry."""
        ...

    def add_review(self, project_id: str, item: ReviewItem) -> ReviewItem:
        """Store ``item`` unless its id exists; return the item that stands."""
        ...

    def get_review(self, project_id: str, review_id: str) -> ReviewItem | None:
        """One review item, or ``None``."""
        ...

    def list_reviews(
        self,
        project_id: str,
        *,
        status: ReviewStatus | None = None,
        agent: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[ReviewItem]:
        """Review items, oldest first."""
        ...

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
        """Record a decision.

        Raises:
            NotFoundError: no such review.
            ConflictError: it was already decided.
        """
        ...

    def review_stats(self, project_id: str, *, agent: str | None = None) -> ReviewStats:
        """Counts of pending, approved and rejected items."""
        ...

    def session_spend(self, project_id: str, agent: str, session_id: str) -> Spend:
        """What a session has spent so far (zero for a new one)."""
        ...


@runtime_checkable
class InlineSaves(Protocol):
    """A backend that can save a checkpoint on the calling thread when that cannot wait."""

    def save_checkpoint_now(
        self,
        project_id: str,
        checkpoint: Checkpoint,
        *,
        expected_version: int,
        session_spend: Spend | None = None,
    ) -> Checkpoint | None:
        """`RuntimeStateBackend.save_checkpoint` now, or ``None`` if that would wait.

        ``None`` means nothing was written: the caller saves the usual way.
        """
        ...


@runtime_checkable
class CheckpointStore(Protocol):
    """What the runtime needs of durable state (async; see `BackendStore`)."""

    @property
    def project_id(self) -> str:
        """The project every row belongs to."""
        ...

    async def load(self, run_id: str) -> Checkpoint | None:
        """The run's last checkpoint."""
        ...

    async def save(
        self, checkpoint: Checkpoint, *, expected_version: int, session_spend: Spend | None = None
    ) -> Checkpoint:
        """Compare-and-set save; see `RuntimeStateBackend.save_checkpoint`."""
        ...

    async def runs(
        self, *, agent: str | None = None, states: Sequence[RunState] | None = None
    ) -> list[Checkpoint]:
        """Saved runs, most recent first."""
        ...

    async def add_review(self, item: ReviewItem) -> ReviewItem:
        """Store a review item (first wins)."""
        ...

    async def review(self, review_id: str) -> ReviewItem | None:
        """One review item."""
        ...

    async def reviews(
        self, *, status: ReviewStatus | None = None, run_id: str | None = None
    ) -> list[ReviewItem]:
        """Review items, oldest first."""
        ...

    async def decide(
        self, review_id: str, decision: Decision, *, reviewer: str, reason: str, now_ms: int
    ) -> ReviewItem:
        """Record a reviewer's decision."""
        ...

    async def session_spend(self, agent: str, session_id: str) -> Spend:
        """A session's spend so far."""
        ...

    @property
    def ledger(self) -> IdempotencyLedger:
        """The durable `IdempotencyLedger`."""
        ...

    @property
    def cache(self) -> Cache:
        """The shared `Cache`."""
        ...


class BackendStore:
    """A `CheckpointStore` over a synchronous backend.

    Args:
        backend: where state lives.
        project_id: the project of every row.
        clock: cache expiry and ledger times.
        threaded: run each backend call in a worker thread (a database); ``False``
            calls it directly (memory).
    """

    def __init__(
        self,
        backend: RuntimeStateBackend,
        *,
        project_id: str = DEFAULT_PROJECT,
        clock: Clock,
        threaded: bool,
    ) -> None:
        self.backend = backend
        self._project = project_id
        self._clock = clock
        self._threaded = threaded
        self._save_now = backend.save_checkpoint_now if isinstance(backend, InlineSaves) else None
        self._ledger = BackendLedger(self)
        self._cache = BackendCache(self)

    @property
    def project_id(self) -> str:
        """The project every row belongs to."""
        return self._project

    @property
    def clock(self) -> Clock:
        """The store's clock."""
        return self._clock

    @property
    def ledger(self) -> BackendLedger:
        """The durable `IdempotencyLedger`."""
        return self._ledger

    @property
    def cache(self) -> BackendCache:
        """The shared `Cache`."""
        return self._cache

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a backend method, in a worker thread when the backend blocks."""
        if self._threaded:
            return await asyncio.to_thread(fn, self._project, *args, **kwargs)
        return fn(self._project, *args, **kwargs)

    async def load(self, run_id: str) -> Checkpoint | None:
        """The run's last checkpoint."""
        return await self.call(self.backend.load_checkpoint, run_id)

    async def save(
        self, checkpoint: Checkpoint, *, expected_version: int, session_spend: Spend | None = None
    ) -> Checkpoint:
        """Compare-and-set save: on this thread if the backend can without waiting."""
        if self._threaded and self._save_now is not None:
            saved = self._save_now(
                self._project,
                checkpoint,
                expected_version=expected_version,
                session_spend=session_spend,
            )
            if saved is not None:
                return saved
        return await self.call(
            self.backend.save_checkpoint,
            checkpoint,
            expected_version=expected_version,
            session_spend=session_spend,
        )

    async def runs(
        self, *, agent: str | None = None, states: Sequence[RunState] | None = None
    ) -> list[Checkpoint]:
        """Saved runs, most recent first (up to 1,000)."""
        return await self.call(
            self.backend.list_checkpoints, agent=agent, states=states, limit=1000
        )

    async def add_review(self, item: ReviewItem) -> ReviewItem:
        """Store a review item (first wins)."""
        return await self.call(self.backend.add_review, item)

    async def review(self, review_id: str) -> ReviewItem | None:
        """One review item."""
        return await self.call(self.backend.get_review, review_id)

    async def reviews(
        self, *, status: ReviewStatus | None = None, run_id: str | None = None
    ) -> list[ReviewItem]:
        """Review items, oldest first (up to 1,000)."""
        return await self.call(self.backend.list_reviews, status=status, run_id=run_id, limit=1000)

    async def decide(
        self, review_id: str, decision: Decision, *, reviewer: str, reason: str, now_ms: int
    ) -> ReviewItem:
        """Record a reviewer's decision."""
        return await self.call(
            self.backend.decide_review,
            review_id,
            decision,
            reviewer=reviewer,
            reason=reason,
            now_ms=now_ms,
        )

    async def session_spend(self, agent: str, session_id: str) -> Spend:
        """A session's spend so far."""
        return await self.call(self.backend.session_spend, agent, session_id)


class BackendLedger:
    """The `IdempotencyLedger` of a `BackendStore`: durable when the backend is."""

    def __init__(self, store: BackendStore) -> None:
        self._store = store

    async def get(self, key: str) -> LedgerEntry | None:
        """The recorded entry under ``key``, or ``None``."""
        return await self._store.call(self._store.backend.ledger_get, key)

    async def record(self, entry: LedgerEntry) -> LedgerEntry:
        """Record ``entry`` unless its key is taken; the first entry stands."""
        return await self._store.call(self._store.backend.ledger_record, entry)


class BackendCache:
    """The `Cache` of a `BackendStore`: shared by every process on the same database."""

    def __init__(self, store: BackendStore) -> None:
        self._store = store

    async def get(self, key: str) -> CacheEntry | None:
        """The live entry under ``key``, or ``None``."""
        now = self._store.clock.now_ms()
        return await self._store.call(self._store.backend.cache_get, key, now_ms=now)

    async def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> None:
        """Store ``value`` for ``ttl_s`` seconds (``None``: no expiry; 0: nothing stored)."""
        if ttl_s is not None and ttl_s <= 0:
            return
        now = self._store.clock.now_ms()
        expires = None if ttl_s is None else now + round(ttl_s * _MS_PER_S)
        await self._store.call(
            self._store.backend.cache_set, key, value, now_ms=now, expires_ms=expires
        )

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        await self._store.call(self._store.backend.cache_delete, key)


StoreLike = CheckpointStore | str | os.PathLike[str] | Any


def open_checkpoint_store(
    store: StoreLike | None, *, clock: Clock, project_id: str = DEFAULT_PROJECT
) -> CheckpointStore:
    """The `CheckpointStore` for what an `Agent` was given.

    Args:
        store: ``None`` (in memory), a `CheckpointStore`, a tuneloop ``Store`` (its
            database), a database URL (``sqlite:///…``, ``postgresql+psycopg://…``),
            a path to a SQLite file, or a `RuntimeStateBackend` (``open_runtime_state(
            path, fsync=True)`` for SQLite commits that survive a power cut). A URL or
            path is migrated to the latest schema.
        clock: cache expiry and ledger times.
        project_id: the project rows belong to (review items show up under it).
    """
    from tuneloop.runtime.memory_state import MemoryRuntimeState

    if store is None:
        return BackendStore(
            MemoryRuntimeState(), project_id=project_id, clock=clock, threaded=False
        )
    if isinstance(store, CheckpointStore):
        return store
    if isinstance(store, str | os.PathLike):
        from tuneloop.store.runtime_state import open_runtime_state

        backend: RuntimeStateBackend = open_runtime_state(os.fspath(store))
        return BackendStore(backend, project_id=project_id, clock=clock, threaded=True)
    runtime = getattr(store, "runtime", None)
    if runtime is None and hasattr(store, "save_checkpoint"):
        runtime = store  # a RuntimeStateBackend, such as open_runtime_state(..., fsync=True)
    if runtime is None:
        from tuneloop.errors import ConfigError

        raise ConfigError(
            f"store= must be a path, a database URL, a tuneloop Store or a CheckpointStore, "
            f"not {type(store).__name__}"
        )
    return BackendStore(runtime, project_id=project_id, clock=clock, threaded=True)

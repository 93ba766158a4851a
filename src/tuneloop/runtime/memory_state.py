"""`MemoryRuntimeState`: the in-process `RuntimeStateBackend` (the default, and for tests).

A checkpoint's data is kept as saved: the runtime hands over a fresh snapshot each
time and never changes what it handed over. What is read back is a deep copy, so a
caller changing it cannot change what is stored. Cache values are kept as JSON text,
as a database would, so what is cacheable here is cacheable there.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tuneloop.errors import ConflictError, NotFoundError
from tuneloop.runtime.budget import Spend
from tuneloop.runtime.cache import CacheEntry
from tuneloop.runtime.checkpoints import Checkpoint
from tuneloop.runtime.machine import RunState
from tuneloop.runtime.review import Decision, ReviewItem, ReviewStats, ReviewStatus
from tuneloop.runtime.tools.idempotency import LedgerEntry


class MemoryRuntimeState:
    """Run state in this process's memory; every method is keyed by project as in a database."""

    def __init__(self) -> None:
        self._checkpoints: dict[
            tuple[str, str], tuple[Checkpoint, Mapping[str, Any], Mapping[str, Any]]
        ] = {}
        self._ledger: dict[tuple[str, str], LedgerEntry] = {}
        self._cache: dict[tuple[str, str], tuple[str, int, int | None]] = {}
        self._reviews: dict[tuple[str, str], ReviewItem] = {}
        self._sessions: dict[tuple[str, str, str], Spend] = {}

    def load_checkpoint(self, project_id: str, run_id: str) -> Checkpoint | None:
        """The run's last checkpoint, or ``None``."""
        stored = self._checkpoints.get((project_id, run_id))
        if stored is None:
            return None
        checkpoint, data, configs = stored
        return replace(checkpoint, data=copy.deepcopy(data), configs=copy.deepcopy(configs))

    def save_checkpoint(
        self,
        project_id: str,
        checkpoint: Checkpoint,
        *,
        expected_version: int,
        session_spend: Spend | None = None,
    ) -> Checkpoint:
        """Compare-and-set save; adds ``session_spend`` to the session."""
        key = (project_id, checkpoint.run_id)
        current = self._checkpoints.get(key)
        found = 0 if current is None else current[0].version
        if expected_version == 0 and current is not None:
            raise ConflictError(
                f"run {checkpoint.run_id!r} already exists; start a run with a new id, or resume it"
            )
        if found != expected_version:
            raise ConflictError(
                f"run {checkpoint.run_id!r} was saved by someone else (version {found}, "
                f"expected {expected_version}); another process is continuing it"
            )
        configs: Mapping[str, Any]
        if checkpoint.configs is not None:
            configs = checkpoint.configs
        else:
            configs = {} if current is None else current[2]
        saved = Checkpoint(
            checkpoint.run_id,
            checkpoint.agent,
            checkpoint.state,
            checkpoint.step,
            {},
            expected_version + 1,
            checkpoint.created_ms,
            checkpoint.updated_ms,
            checkpoint.session_id,
        )
        self._checkpoints[key] = (saved, checkpoint.data, configs)
        if session_spend is not None and checkpoint.session_id is not None:
            session = (project_id, checkpoint.agent, checkpoint.session_id)
            self._sessions[session] = self._sessions.get(session, Spend()) + session_spend
        return replace(saved, data=checkpoint.data, configs=checkpoint.configs)

    def list_checkpoints(
        self,
        project_id: str,
        *,
        agent: str | None = None,
        states: Sequence[RunState] | None = None,
        limit: int = 100,
    ) -> list[Checkpoint]:
        """Runs, most recently saved first."""
        found = [
            replace(checkpoint, data=copy.deepcopy(data), configs=copy.deepcopy(configs))
            for (project, _), (checkpoint, data, configs) in self._checkpoints.items()
            if project == project_id
            and (agent is None or checkpoint.agent == agent)
            and (states is None or checkpoint.state in states)
        ]
        found.sort(key=lambda c: (c.updated_ms, c.run_id), reverse=True)
        return found[:limit]

    def ledger_get(self, project_id: str, key: str) -> LedgerEntry | None:
        """A recorded side effect, or ``None``."""
        return self._ledger.get((project_id, key))

    def ledger_record(self, project_id: str, entry: LedgerEntry) -> LedgerEntry:
        """Record unless the key is taken; the first entry stands."""
        return self._ledger.setdefault((project_id, entry.key), entry)

    def cache_get(self, project_id: str, key: str, *, now_ms: int) -> CacheEntry | None:
        """The live entry, or ``None``."""
        item = self._cache.get((project_id, key))
        if item is None:
            return None
        text, stored, expires = item
        if expires is not None and now_ms >= expires:
            del self._cache[(project_id, key)]
            return None
        return CacheEntry(json.loads(text), stored)

    def cache_set(
        self, project_id: str, key: str, value: Any, *, now_ms: int, expires_ms: int | None
    ) -> None:
        """Store an entry."""
        self._cache[(project_id, key)] = (json.dumps(value), now_ms, expires_ms)

    def cache_delete(self, project_id: str, key: str) -> None:
        """Forget an entry."""
        self._cache.pop((project_id, key), None)

    def add_review(self, project_id: str, item: ReviewItem) -> ReviewItem:
        """Store unless the id exists; the first item stands."""
        return self._reviews.setdefault((project_id, item.review_id), item)

    def get_review(self, project_id: str, review_id: str) -> ReviewItem | None:
        """One item, or ``None``."""
        return self._reviews.get((project_id, review_id))

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
        found = [
            item
            for (project, _), item in self._reviews.items()
            if project == project_id
            and (status is None or item.status == status)
            and (agent is None or item.agent == agent)
            and (run_id is None or item.run_id == run_id)
        ]
        found.sort(key=lambda item: (item.created_ms, item.review_id))
        return found[:limit]

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
        """Record a decision (final)."""
        item = self._reviews.get((project_id, review_id))
        if item is None:
            raise NotFoundError(f"no review {review_id!r} in project {project_id!r}")
        decided = item.decide(decision, reviewer=reviewer, reason=reason, now_ms=now_ms)
        self._reviews[(project_id, review_id)] = decided
        return decided

    def review_stats(self, project_id: str, *, agent: str | None = None) -> ReviewStats:
        """Counts by status."""
        items = self.list_reviews(project_id, agent=agent, limit=len(self._reviews))
        counts = dict.fromkeys(("pending", "approved", "rejected"), 0)
        for item in items:
            counts[item.status] += 1
        return ReviewStats(counts["pending"], counts["approved"], counts["rejected"])

    def session_spend(self, project_id: str, agent: str, session_id: str) -> Spend:
        """A session's spend so far."""
        return self._sessions.get((project_id, agent, session_id), Spend())

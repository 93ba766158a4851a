"""Checkpoint saves on the calling thread (SQLite without fsync), and their fallback."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from tuneloop.clock import FakeClock
from tuneloop.errors import ConflictError
from tuneloop.runtime.budget import Spend
from tuneloop.runtime.checkpoints import BackendStore, Checkpoint
from tuneloop.store.runtime_state import RuntimeStateRepository, open_runtime_state


def checkpoint(step: int, **changes: Any) -> Checkpoint:
    fields: dict[str, Any] = {
        "run_id": "run-1",
        "agent": "support",
        "state": "executing",
        "step": step,
        "data": {"messages": [{"role": "user", "content": "héllo"}], "step": step},
        "created_ms": 10,
        "updated_ms": 10 + step,
        "session_id": "s-1",
    }
    return Checkpoint(**{**fields, **changes})


@pytest.fixture
def repo(tmp_path: Path) -> Any:
    repository = open_runtime_state(str(tmp_path / "runs.db"))
    yield repository
    repository.close()


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another connection in the middle of a write transaction on ``path``."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_a_save_now_commits_on_this_thread_and_is_read_back(repo: RuntimeStateRepository) -> None:
    first = repo.save_checkpoint_now("p", checkpoint(0, configs={"a": 1}), expected_version=0)
    assert first is not None and first.version == 1
    second = repo.save_checkpoint_now(
        "p", checkpoint(1), expected_version=1, session_spend=Spend(3, 4, 0.5)
    )
    assert second is not None and second.version == 2
    loaded = repo.load_checkpoint("p", "run-1")  # through the pooled engine
    assert loaded is not None
    assert (loaded.step, loaded.version, loaded.configs) == (1, 2, {"a": 1})
    assert loaded.data == {"messages": [{"role": "user", "content": "héllo"}], "step": 1}
    assert repo.session_spend("p", "support", "s-1") == Spend(3, 4, 0.5)


def test_a_stale_or_duplicate_save_now_conflicts_and_writes_nothing(
    repo: RuntimeStateRepository,
) -> None:
    repo.save_checkpoint_now("p", checkpoint(0), expected_version=0)
    with pytest.raises(ConflictError, match="run 'run-1' already exists"):
        repo.save_checkpoint_now("p", checkpoint(0), expected_version=0)
    with pytest.raises(ConflictError, match="saved by someone else since version 5"):
        repo.save_checkpoint_now(
            "p", checkpoint(9), expected_version=5, session_spend=Spend(100, 100, 9.0)
        )
    loaded = repo.load_checkpoint("p", "run-1")
    assert loaded is not None and (loaded.step, loaded.version) == (0, 1)
    # The rejected save's spend was rolled back with it.
    assert repo.session_spend("p", "support", "s-1") == Spend()


def test_a_save_now_never_waits_for_another_writer(
    repo: RuntimeStateRepository, tmp_path: Path
) -> None:
    repo.save_checkpoint_now("p", checkpoint(0), expected_version=0)
    other = hold_write_lock(tmp_path / "runs.db")
    try:
        busy = repo.save_checkpoint_now(
            "p", checkpoint(1), expected_version=1, session_spend=Spend(1, 1, 1.0)
        )
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert busy is None
    loaded = repo.load_checkpoint("p", "run-1")
    assert loaded is not None and loaded.version == 1  # nothing of it was written
    assert repo.session_spend("p", "support", "s-1") == Spend()
    again = repo.save_checkpoint_now("p", checkpoint(1), expected_version=1)
    assert again is not None and again.version == 2


def test_the_store_falls_back_to_a_worker_thread_that_waits_for_the_lock(
    repo: RuntimeStateRepository, tmp_path: Path
) -> None:
    store = BackendStore(repo, project_id="p", clock=FakeClock(), threaded=True)
    other = hold_write_lock(tmp_path / "runs.db")
    other.execute(
        "INSERT INTO runtime_cache (project_id, cache_key, value, stored_ms, expires_ms) "
        "VALUES ('p', 'k', '1', 0, NULL)"
    )
    release = threading.Timer(0.3, lambda: (other.execute("COMMIT"), other.close()))

    async def save() -> Checkpoint:
        release.start()
        return await store.save(checkpoint(0), expected_version=0)

    saved = asyncio.run(save())
    release.join()
    assert saved.version == 1
    loaded = repo.load_checkpoint("p", "run-1")
    assert loaded is not None and loaded.version == 1
    with sqlite3.connect(tmp_path / "runs.db") as check:  # the other writer committed first
        assert check.execute("SELECT count(*) FROM runtime_cache").fetchone() == (1,)


def test_only_a_sqlite_file_without_fsync_saves_inline(tmp_path: Path, store: Any) -> None:
    durable = open_runtime_state(str(tmp_path / "durable.db"), fsync=True)
    try:
        assert durable.save_checkpoint_now("p", checkpoint(0), expected_version=0) is None
        assert durable.load_checkpoint("p", "run-1") is None
    finally:
        durable.close()
    # The server's store (SQLite with fsync, or PostgreSQL) always saves in a thread.
    assert store.runtime.save_checkpoint_now("p", checkpoint(0), expected_version=0) is None
    assert store.runtime.load_checkpoint("p", "run-1") is None

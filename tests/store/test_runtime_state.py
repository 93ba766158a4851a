"""The runtime's repository on both engines: checkpoints, ledger, reviews, session spend."""

from __future__ import annotations

from typing import Any

import pytest

from tuneloop.errors import ConflictError, InvalidInputError, NotFoundError
from tuneloop.runtime.budget import Spend
from tuneloop.runtime.checkpoints import Checkpoint
from tuneloop.runtime.memory_state import MemoryRuntimeState
from tuneloop.runtime.review import ReviewItem
from tuneloop.runtime.tools.idempotency import LedgerEntry


@pytest.fixture(params=["database", "memory"])
def backend(request: pytest.FixtureRequest, store: Any) -> Any:
    """The database repository on each engine, and the in-memory one: same contract."""
    return MemoryRuntimeState() if request.param == "memory" else store.runtime


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


def test_checkpoints_are_compare_and_set_and_keep_their_configs(backend: Any) -> None:
    configs = {"support": {"version": "v1", "config": {"model": {"name": "m"}}}}
    first = backend.save_checkpoint("p", checkpoint(0, configs=configs), expected_version=0)
    assert first.version == 1
    with pytest.raises(ConflictError, match="run 'run-1' already exists"):
        backend.save_checkpoint("p", checkpoint(0, configs=configs), expected_version=0)
    second = backend.save_checkpoint(
        "p",
        checkpoint(1, state="waiting_approval"),
        expected_version=1,
        session_spend=Spend(3, 4, 0.5),
    )
    assert second.version == 2
    with pytest.raises(ConflictError):
        backend.save_checkpoint("p", checkpoint(2), expected_version=1)
    loaded = backend.load_checkpoint("p", "run-1")
    assert (loaded.state, loaded.step, loaded.version, loaded.created_ms) == (
        "waiting_approval",
        1,
        2,
        10,
    )
    assert loaded.data == {"messages": [{"role": "user", "content": "héllo"}], "step": 1}
    assert loaded.configs == configs  # kept: the second save did not repeat them
    assert backend.load_checkpoint("other-project", "run-1") is None
    assert backend.session_spend("p", "support", "s-1") == Spend(3, 4, 0.5)
    backend.save_checkpoint("p", checkpoint(2), expected_version=2, session_spend=Spend(1, 1, 0.25))
    assert backend.session_spend("p", "support", "s-1") == Spend(4, 5, 0.75)
    assert backend.session_spend("p", "support", "s-2") == Spend()
    listed = backend.list_checkpoints("p", agent="support", states=["executing"])
    assert [c.run_id for c in listed] == ["run-1"]
    assert backend.list_checkpoints("p", states=["completed"]) == []


def test_the_ledger_keeps_the_first_entry_for_a_key(backend: Any) -> None:
    first = LedgerEntry("idem:1", "refund", {"status": "success", "data": {"id": 7}}, 5)
    assert backend.ledger_record("p", first) == first
    later = LedgerEntry("idem:1", "refund", {"status": "success", "data": {"id": 8}}, 9)
    assert backend.ledger_record("p", later) == first
    assert backend.ledger_get("p", "idem:1") == first
    assert backend.ledger_get("q", "idem:1") is None


def review(review_id: str, **changes: Any) -> ReviewItem:
    fields: dict[str, Any] = {
        "review_id": review_id,
        "run_id": "run-1",
        "agent": "support",
        "kind": "tool_call",
        "reason": "needs approval",
        "source": "tool_settings",
        "created_ms": 100,
        "tool": "refund",
        "call_id": "c1",
        "arguments": {"order_id": "A-1"},
        "content": {"status": "success", "data": [1, 2]},
        "hop": "tool_args",
        "trace_id": "ab" * 16,
        "metadata": {"step": 1},
    }
    return ReviewItem(**{**fields, **changes})


def test_review_items_are_stored_once_and_decided_once(backend: Any) -> None:
    item = review("rv_1")
    assert backend.add_review("p", item) == item
    assert backend.add_review("p", review("rv_1", reason="another")) == item
    backend.add_review("p", review("rv_2", created_ms=200, agent="billing", run_id="run-2"))
    assert [i.review_id for i in backend.list_reviews("p")] == ["rv_1", "rv_2"]
    assert [i.review_id for i in backend.list_reviews("p", agent="billing")] == ["rv_2"]
    assert [i.review_id for i in backend.list_reviews("p", run_id="run-1")] == ["rv_1"]

    decided = backend.decide_review("p", "rv_1", "reject", reviewer="ana", reason="no", now_ms=300)
    assert (decided.status, decided.reviewer, decided.decision_reason, decided.decided_ms) == (
        "rejected",
        "ana",
        "no",
        300,
    )
    assert backend.get_review("p", "rv_1") == decided
    with pytest.raises(ConflictError, match="already rejected by 'ana'"):
        backend.decide_review("p", "rv_1", "approve", reviewer="bo", reason="", now_ms=400)
    with pytest.raises(NotFoundError, match="no review 'rv_9'"):
        backend.decide_review("p", "rv_9", "approve", reviewer="bo", reason="", now_ms=400)
    with pytest.raises(InvalidInputError, match="needs the reviewer's name"):
        backend.decide_review("p", "rv_2", "approve", reviewer=" ", reason="", now_ms=400)
    assert [i.review_id for i in backend.list_reviews("p", status="pending")] == ["rv_2"]
    stats = backend.review_stats("p")
    assert (stats.pending, stats.rejected, stats.override_rate) == (1, 1, 1.0)
    assert backend.review_stats("p", agent="billing").override_rate is None
    assert backend.list_reviews("q") == []

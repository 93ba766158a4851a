"""Runs in the tuneloop database (SQLite and PostgreSQL): resumed elsewhere, ledger, caches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.runtime.agent_fixtures import (
    Calls,
    agent,
    answer,
    call,
    config,
    echo_last_tool,
    lookup_tool,
    model,
    refund_tool,
)
from tests.runtime.conftest import Traced
from tuneloop import semconv
from tuneloop.clock import FakeClock
from tuneloop.runtime import Agent, Tool
from tuneloop.runtime.checkpoints import BackendStore
from tuneloop.runtime.tools.idempotency import LedgerEntry

pytestmark = pytest.mark.anyio

REFUND = call("refund", {"order_id": "A-1", "amount_cents": 500}, "r1")


def refunder(store: Any, clock: FakeClock, calls: Calls, **options: Any) -> Agent:
    provider = model(clock, [REFUND, echo_last_tool])
    return agent(config(), [refund_tool(calls)], provider, clock, store=store, **options)


async def test_a_parked_run_is_resumed_by_another_agent_on_the_same_database(
    store: Any, clock: FakeClock
) -> None:
    calls = Calls()
    first = refunder(store, clock, calls, project_id="acme")
    parked = await first.run("refund A-1", run_id="run-1", unit_id="u", session_id="s")
    assert parked.review is not None
    item = store.runtime.get_review("acme", parked.review.review_id)
    assert (item.status, item.tool, item.trace_id) == ("pending", "refund", parked.trace_id)
    store.runtime.decide_review(
        "acme", parked.review.review_id, "approve", reviewer="ana", reason="ok", now_ms=1
    )

    # A fresh agent: what a new process builds. It knows the run only from the database.
    later = refunder(store, clock, calls, project_id="acme")
    done = await later.resume("run-1")
    assert (done.outcome, done.steps, calls.count) == ("success", 2, 1)
    assert done.spend == parked.spend + (done.spend - parked.spend)
    checkpoint = store.runtime.load_checkpoint("acme", "run-1")
    assert (checkpoint.state, checkpoint.version, checkpoint.session_id) == (
        "completed",
        done_version(checkpoint),
        "s",
    )
    assert checkpoint.configs["support"]["version"] == done.config_version
    assert store.runtime.session_spend("acme", "support", "s").tokens == done.spend.tokens
    assert store.runtime.load_checkpoint("other", "run-1") is None


def done_version(checkpoint: Any) -> int:
    # executing, after the model, waiting; claim, executing, tool, reviewing, completed
    assert checkpoint.version == 8
    return 8


async def test_a_write_recorded_in_the_ledger_is_replayed_not_repeated(
    store: Any, clock: FakeClock
) -> None:
    calls = Calls()
    one = refunder(store, clock, calls)
    await one.store.ledger.record(LedgerEntry("idem:x", "refund", {"status": "success"}, 5))
    again = await refunder(store, clock, calls).store.ledger.record(
        LedgerEntry("idem:x", "refund", {"status": "error"}, 9)
    )
    assert (again.result, again.recorded_at_ms) == ({"status": "success"}, 5)

    def make() -> Agent:
        tools = [refund_tool(calls, requires_approval=False)]
        return agent(config(), tools, model(clock, [REFUND, echo_last_tool]), clock, store=store)

    first = await make().run("refund A-1", run_id="run-a")
    second = await make().run("refund A-1", run_id="run-b")
    assert calls.count == 2  # two runs: two keys, two refunds
    assert calls.seen[0]["key"] != calls.seen[1]["key"]
    # The same run's call, made again (a resumed step), is answered from the ledger.
    entry = await make().store.ledger.get(calls.seen[0]["key"])
    assert entry is not None and entry.tool == "refund"
    assert entry.result == {"status": "success", "data": {"refunded_cents": 500, "order_id": "A-1"}}
    assert first.output == second.output


async def test_the_store_cache_is_shared_between_agents_and_expires(
    store: Any, clock: FakeClock, traced: Traced
) -> None:
    calls = Calls()
    cfg = config(tools={"lookup_order": {"cache_ttl_s": 60}})

    def make() -> Agent:
        provider = model(clock, [call("lookup_order", {"order_id": "A-1"}, "c1"), answer("ok")])
        return agent(cfg, [lookup_tool(calls)], provider, clock, traced, store=store)

    await make().run("status")
    await make().run("status")
    assert calls.count == 1
    clock.advance(61_000)
    await make().run("status")
    assert calls.count == 2
    hits = [
        (span.attributes or {}).get(semconv.TL_CACHE_HIT)
        for span in traced.named("execute_tool lookup_order")
    ]
    assert hits == [False, True, False]


async def test_the_shared_cache_honours_the_cache_protocol(store: Any, clock: FakeClock) -> None:
    cache = BackendStore(store.runtime, project_id="p", clock=clock, threaded=True).cache
    assert await cache.get("k") is None
    await cache.set("k", {"a": [1, 2]}, ttl_s=2)
    entry = await cache.get("k")
    assert entry is not None and (entry.value, entry.stored_at_ms) == (
        {"a": [1, 2]},
        clock.now_ms(),
    )
    await cache.set("k", "newer")
    assert (await cache.get("k")).value == "newer"  # type: ignore[union-attr]
    await cache.set("gone", 1, ttl_s=0)
    await cache.set("short", 1, ttl_s=1)
    clock.advance(1000)
    assert await cache.get("short") is None and await cache.get("gone") is None
    await cache.delete("k")
    assert await cache.get("k") is None
    await cache.set("old", 1, ttl_s=1)
    clock.advance(5000)
    assert store.runtime.purge_cache("p", now_ms=clock.now_ms()) == 1


async def test_an_agent_opens_a_sqlite_file_given_by_path(tmp_path: Path, clock: FakeClock) -> None:
    calls = Calls()
    path = tmp_path / "runs.db"
    parked = await refunder(str(path), clock, calls).run("refund A-1", run_id="r")
    assert parked.review is not None
    again = refunder(f"sqlite:///{path}", clock, calls)
    await again.decide(parked.review.review_id, "approve", reviewer="ana")
    assert (await again.resume("r")).outcome == "success"
    assert calls.count == 1


def test_store_must_be_something_that_stores(clock: FakeClock) -> None:
    from tuneloop.errors import ConfigError

    with pytest.raises(ConfigError, match="store= must be a path, a database URL"):
        agent(config(), [], model(clock, []), clock, store=42)


async def test_checkpoints_list_by_agent_and_state(store: Any, clock: FakeClock) -> None:
    support = refunder(store, clock, Calls())
    await support.run("refund A-1", run_id="parked")
    reader = agent(config(), [Tool(lambda: None, name="noop")], model(clock, [answer("hi")]),
                   clock, store=store, name="reader")  # fmt: skip
    await reader.run("hello", run_id="done")
    parked = await support.store.runs(agent="support", states=["waiting_approval"])
    assert [c.run_id for c in parked] == ["parked"]
    everything = await support.store.runs()
    assert sorted(c.run_id for c in everything) == ["done", "parked"]

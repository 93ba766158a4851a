"""Idempotency: a write whose result is in the ledger is never executed again."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from tests.runtime.conftest import Sleeps, Traced
from tuneloop import semconv
from tuneloop.clock import FakeClock
from tuneloop.config.model import AgentConfig
from tuneloop.errors import ToolTimeoutError
from tuneloop.runtime.providers import ToolCallRequest
from tuneloop.runtime.tools import (
    ApprovalRequired,
    InMemoryLedger,
    LedgerEntry,
    Tool,
    ToolContext,
    ToolRunner,
    idempotency_key,
)

pytestmark = pytest.mark.anyio

CONFIG = AgentConfig.from_data(
    {
        "model": {"provider": "simulated", "name": "sim"},
        "tools": {
            "issue_refund": {"side_effect": "write", "retry": {"max_attempts": 3, "backoff_ms": 5}}
        },
    }
)
REFUND = ToolCallRequest("call_1", "issue_refund", '{"order_id": "A-1", "amount_cents": 1500}')


class Payments:
    """A payment API: records each refund it executes."""

    def __init__(self) -> None:
        self.refunds: list[tuple[str, int, str]] = []
        self.fail_next: list[BaseException] = []

    async def issue_refund(
        self, order_id: str, amount_cents: int, context: ToolContext
    ) -> dict[str, Any]:
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.refunds.append((order_id, amount_cents, context.idempotency_key))
        return {"refund_id": f"rf_{len(self.refunds)}", "amount_cents": amount_cents}


def refund_tool(payments: Payments) -> Tool:
    async def issue_refund(
        order_id: str, amount_cents: int, context: ToolContext
    ) -> dict[str, Any]:
        """Refund an order."""
        return await payments.issue_refund(order_id, amount_cents, context)

    return Tool(issue_refund)


def runner(
    payments: Payments,
    ledger: InMemoryLedger,
    clock: FakeClock,
    sleeps: Sleeps,
    config: AgentConfig = CONFIG,
) -> ToolRunner:
    return ToolRunner.from_config(
        [refund_tool(payments)],
        config,
        clock=clock,
        rng=random.Random(2),
        sleep=sleeps,
        ledger=ledger,
    )


async def test_a_resumed_run_replays_the_recorded_write(
    clock: FakeClock, sleeps: Sleeps, traced: Traced
) -> None:
    payments, ledger = Payments(), InMemoryLedger()
    first = await runner(payments, ledger, clock, sleeps).run(REFUND, scope="run-9:step-2")
    assert first.status == "success"  # type: ignore[union-attr]
    # The process crashed before the run's checkpoint; a new runner resumes the step.
    with traced.run() as run:
        again = await runner(payments, ledger, clock, sleeps).run(
            REFUND, scope="run-9:step-2", run=run
        )
    assert len(payments.refunds) == 1
    assert again.data == first.data  # type: ignore[union-attr]
    assert again.metadata["idempotent_replay"] is True  # type: ignore[union-attr]
    span = traced.one("execute_tool issue_refund")
    assert span.attributes[semconv.TL_TOOL_IDEMPOTENT_REPLAY] is True
    assert span.attributes[semconv.TL_TOOL_SIDE_EFFECT] == "write"
    # The tool saw the key, to pass on to the payment API.
    expected = idempotency_key(
        "issue_refund", {"order_id": "A-1", "amount_cents": 1500}, scope="run-9:step-2"
    )
    assert payments.refunds[0][2] == expected


async def test_a_retry_never_re_executes_a_write_in_the_ledger(
    clock: FakeClock, sleeps: Sleeps
) -> None:
    payments, ledger = Payments(), InMemoryLedger()
    key = idempotency_key(
        "issue_refund", {"order_id": "A-1", "amount_cents": 1500}, scope="run-1:step-4"
    )
    await ledger.record(
        LedgerEntry(key, "issue_refund", {"status": "success", "data": {"refund_id": "rf_0"}}, 0)
    )
    result = await runner(payments, ledger, clock, sleeps).run(REFUND, scope="run-1:step-4")
    assert payments.refunds == []
    assert result.data == {"refund_id": "rf_0"}  # type: ignore[union-attr]


async def test_failed_attempts_are_not_recorded_and_the_success_is_once(
    clock: FakeClock, sleeps: Sleeps
) -> None:
    payments, ledger = Payments(), InMemoryLedger()
    payments.fail_next = [ToolTimeoutError("gateway timeout")]
    tools = runner(payments, ledger, clock, sleeps)
    result = await tools.run(REFUND, scope="s")
    assert result.status == "success"  # type: ignore[union-attr]
    assert result.metadata["attempts"] == 2  # type: ignore[union-attr]
    assert len(payments.refunds) == 1
    assert len(ledger) == 1
    # A retried run step (same scope) replays; a new step (new scope) refunds again.
    await tools.run(REFUND, scope="s")
    assert len(payments.refunds) == 1
    await tools.run(REFUND, scope="s2")
    assert len(payments.refunds) == 2


async def test_concurrent_duplicates_execute_once(clock: FakeClock, sleeps: Sleeps) -> None:
    payments, ledger = Payments(), InMemoryLedger()
    tools = runner(payments, ledger, clock, sleeps)
    results = await asyncio.gather(*(tools.run(REFUND, scope="same") for _ in range(5)))
    assert len(payments.refunds) == 1
    assert {r.data["refund_id"] for r in results} == {"rf_1"}  # type: ignore[union-attr]
    assert sum(bool(r.metadata.get("idempotent_replay")) for r in results) == 4  # type: ignore[union-attr]


async def test_approval_then_resume_runs_the_write_once(clock: FakeClock, sleeps: Sleeps) -> None:
    payments, ledger = Payments(), InMemoryLedger()
    config = AgentConfig.from_data(
        {
            "model": {"provider": "simulated", "name": "sim"},
            "tools": {"issue_refund": {"side_effect": "write", "requires_approval": True}},
        }
    )
    parked = await runner(payments, ledger, clock, sleeps, config).run(REFUND, scope="r:1")
    assert isinstance(parked, ApprovalRequired)
    assert payments.refunds == []
    for _ in range(2):  # approved, then the approval is delivered twice
        await runner(payments, ledger, clock, sleeps, config).run(
            REFUND, scope="r:1", approved=True
        )
    assert len(payments.refunds) == 1
    assert parked.idempotency_key == payments.refunds[0][2]


def test_key_ignores_argument_order_but_not_values() -> None:
    a = idempotency_key("t", {"x": 1, "y": [1, 2]}, scope="s")
    assert a == idempotency_key("t", {"y": [1, 2], "x": 1}, scope="s")
    assert a != idempotency_key("t", {"x": 2, "y": [1, 2]}, scope="s")
    assert a != idempotency_key("t", {"x": 1, "y": [1, 2]}, scope="other")
    assert a != idempotency_key("u", {"x": 1, "y": [1, 2]}, scope="s")

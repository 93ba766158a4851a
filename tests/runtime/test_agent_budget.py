"""Budgets: run and session limits in tokens and USD, checked before and after each call."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.agent_fixtures import Calls, agent, answer, call, config, lookup_tool, model
from tests.runtime.conftest import Traced
from tuneloop import semconv
from tuneloop.clock import FakeClock
from tuneloop.config.model import Budget
from tuneloop.runtime import Agent, ChatRequest, Message
from tuneloop.runtime.budget import Exhaustion, Spend, check, estimate
from tuneloop.runtime.providers import scripted
from tuneloop.settings import ModelPrice
from tuneloop.store.runtime_state import open_runtime_state
from tuneloop.telemetry.pricing import PriceTable

pytestmark = pytest.mark.anyio

PRICES = {"sim-1": ModelPrice(input_per_1k=1.0, output_per_1k=2.0)}


def looping(n: int = 10) -> list[Message]:
    return [call("lookup_order", {"order_id": f"A-{i}"}, f"c{i}") for i in range(n)]


async def test_a_run_over_its_token_budget_stops_with_a_summary(
    clock: FakeClock, traced: Traced
) -> None:
    calls = Calls()
    cfg = config(budget={"run_tokens": 200}, limits={"max_steps": 20})
    # The second answer is far longer than any before it, so the estimate lets it through.
    rambling = Message.assistant("x" * 800, [call("lookup_order", {"order_id": "B"}, "c1")
                                             .tool_calls[0]])  # fmt: skip
    provider = model(clock, [*looping(1), rambling, *looping()])
    result = await agent(cfg, [lookup_tool(calls)], provider, clock, traced).run("go")

    assert (result.state, result.outcome, result.stop_reason) == (
        "completed",
        "budget_exhausted",
        "budget_exhausted",
    )
    assert result.spend.tokens > 200
    # The call that overran was paid for, but its tool call never ran.
    assert (result.steps, provider.calls, calls.count) == (2, 2, 1)
    assert result.output is not None
    assert result.output.startswith("I have to stop here: the run token budget (200) is spent:")
    assert "lookup_order (success)" in result.output
    run = traced.one("invoke_agent support")
    (event,) = [e for e in run.events if e.name == semconv.TL_BUDGET_EXHAUSTED_EVENT]
    assert dict(event.attributes or {}) == {
        semconv.TL_BUDGET_SCOPE: "run",
        semconv.TL_BUDGET_KIND: "tokens",
        semconv.TL_BUDGET_LIMIT: 200.0,
        semconv.TL_BUDGET_USED: float(result.spend.tokens),
        semconv.TL_BUDGET_PHASE: "actual",
    }
    assert (run.attributes or {})[semconv.TL_RUN_OUTCOME] == "budget_exhausted"


async def test_the_estimate_stops_a_call_that_could_not_fit_before_it_is_made(
    clock: FakeClock,
) -> None:
    # max_tokens makes the worst case of the next answer known before the call.
    cfg = config(budget={"run_tokens": 500}, params={"max_tokens": 400})
    provider = model(clock, looping())
    result = await agent(cfg, [lookup_tool(Calls())], provider, clock).run("go")
    assert result.stop_reason == "budget_exhausted"
    assert result.output is not None and "would be exceeded" in result.output
    assert result.spend.tokens <= 500
    assert provider.calls == result.steps


async def test_a_usd_budget_uses_the_price_table_and_a_custom_message(clock: FakeClock) -> None:
    cfg = config(
        budget={"run_usd": 0.2},
        prompts={"system": "s", "budget_exhausted": "Out of money ({reason})."},
        limits={"max_steps": 20},
    )
    support = agent(cfg, [lookup_tool(Calls())], model(clock, looping()), clock, prices=PRICES)
    result = await support.run("go")
    assert 0 < result.spend.cost_usd <= 0.2
    assert result.output is not None
    assert result.output.startswith(
        "Out of money (the run USD budget ($0.2000) would be exceeded: $0."
    )


async def test_a_session_budget_adds_up_over_runs_and_processes(
    clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "runs.db"
    cfg = config(budget={"session_tokens": 100})
    replies = scripted([answer("x" * 200)])  # about 60 tokens a run

    def make(store: object) -> Agent:
        provider = model(clock, policy=lambda r, rng: replies(r, rng))
        return agent(cfg, [], provider, clock, store=store)

    one, two = open_runtime_state(str(path)), open_runtime_state(str(path))
    first = await make(one).run("hello", session_id="s-1")
    assert first.outcome == "success" and first.spend.tokens > 50
    # Another process on the same database sees what the first spent in the session.
    second = await make(two).run("hello", session_id="s-1")
    assert second.outcome == "budget_exhausted"
    assert second.output is not None and "the session token budget (100)" in second.output
    other = await make(two).run("hello", session_id="s-2")
    assert other.outcome == "success"
    assert await make(one).store.session_spend("support", "s-1") == first.spend + second.spend
    one.engine.dispose()
    two.engine.dispose()


def test_estimates_count_the_request_and_the_longest_possible_answer() -> None:
    prices = PriceTable({"m": ModelPrice(input_per_1k=1.0, output_per_1k=10.0)})
    request = ChatRequest("m", (Message.user("x" * 400),), max_tokens=50)
    assert estimate(request, prices=prices, expected_output_tokens=999) == Spend(
        100, 50, pytest.approx(0.6)
    )
    open_ended = ChatRequest("m", (Message.user("x" * 40),))
    assert estimate(open_ended, prices=prices, expected_output_tokens=20).tokens == 30


def test_check_names_the_first_limit_overrun() -> None:
    budget = Budget(run_tokens=100, session_usd=1.0)
    assert check(budget, run=Spend(50, 40), session=Spend(0, 0, 0.5)) is None
    assert check(budget, run=Spend(50, 40), session=Spend(), next_call=Spend(20)) == Exhaustion(
        "run", "tokens", 100.0, 110.0, "estimate"
    )
    over = check(budget, run=Spend(1, 1), session=Spend(0, 0, 1.5))
    assert over == Exhaustion("session", "usd", 1.0, 1.5, "actual")
    assert over.describe() == "the session USD budget ($1.0000) is spent: $1.5000 used"

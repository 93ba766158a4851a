"""The demo world's model: tool choice under temperature, answers, handovers, latency."""

from __future__ import annotations

import asyncio
import json

from tuneloop.clock import FakeClock
from tuneloop.demo.customers import QUESTIONS
from tuneloop.demo.llm import HANDOFF, TOOL_FOR, WorldModel, misroute_rate
from tuneloop.demo.support import build_tools
from tuneloop.runtime import ChatRequest, Message, ToolCallRequest, simulated_sleep
from tuneloop.runtime.providers.base import ChatResponse


class _NoBackend:
    async def lookup_order(self, order_id: str, *, timeout_s: float) -> dict[str, object]:
        raise AssertionError("not called")

    search_policy = account_help = issue_refund = lookup_order


SPECS = tuple(tool.spec() for tool in build_tools(_NoBackend(), lambda name: 1.0))  # type: ignore[arg-type]


def ask(model: WorldModel, text: str, *, temperature: float, name: str = "gpt-4o") -> ChatResponse:
    request = ChatRequest(
        model=name,
        messages=(Message.system("You are support."), Message.user(text)),
        tools=SPECS,
        temperature=temperature,
    )
    return asyncio.run(model.chat(request))


def model(seed: int = 1) -> tuple[WorldModel, FakeClock]:
    clock = FakeClock()
    return WorldModel(seed, sleep=simulated_sleep(clock)), clock


def test_the_model_picks_the_tool_a_question_needs_and_misroutes_more_when_hotter() -> None:
    world, _ = model()
    for temperature in (0.0, 1.0):
        wrong = 0
        trials = 0
        for question in QUESTIONS:
            text = question.text.format(order="A-12345")
            for _ in range(60):
                call = ask(world, text, temperature=temperature).message.tool_calls[0]
                trials += 1
                wrong += call.name != TOOL_FOR[question.intent]
                if call.name == "lookup_order":
                    assert json.loads(call.arguments) == {"order_id": "A-12345"}
        assert abs(wrong / trials - misroute_rate(temperature)) < 0.02


def test_a_failed_tool_or_an_unrelated_result_is_handed_to_a_colleague() -> None:
    world, _ = model(2)
    call = ToolCallRequest(id="c1", name="lookup_order", arguments='{"order_id": "A-12345"}')
    failed = json.dumps({"status": "error", "data": None, "error": {"message": "503"}})
    request = ChatRequest(
        model="gpt-4o",
        messages=(
            Message.user("Where is my order A-12345?"),
            Message.assistant(None, [call]),
            Message.tool("c1", failed, name="lookup_order"),
        ),
        tools=SPECS,
    )
    answer = asyncio.run(world.chat(request)).message
    assert answer.tool_calls[0].name == HANDOFF
    assert "lookup_order failed" in json.loads(answer.tool_calls[0].arguments)["reason"]


def test_an_order_answer_comes_from_the_lookup() -> None:
    world, _ = model(3)
    call = ToolCallRequest(id="c1", name="lookup_order", arguments='{"order_id": "A-12345"}')
    found = {"order_id": "A-12345", "status": "shipped", "eta": "2026-01-14", "email": "a@b.io"}
    request = ChatRequest(
        model="gpt-4o-mini",
        messages=(
            Message.user("Which email did I use for order A-12345?"),
            Message.assistant(None, [call]),
            Message.tool("c1", json.dumps({"status": "success", "data": found}), name="x"),
        ),
        tools=SPECS,
    )
    response = asyncio.run(world.chat(request))
    assert response.message.text == "Order A-12345 was placed with a@b.io."
    assert response.finish_reason == "stop"
    assert response.usage.output_tokens > 20 and response.usage.input_tokens > 20


def test_the_small_model_answers_faster() -> None:
    world, clock = model(4)

    def mean_ms(name: str) -> float:
        before = clock.now_ms()
        for _ in range(200):
            ask(world, "I can't log in to my account.", temperature=0.0, name=name)
        return (clock.now_ms() - before) / 200

    assert mean_ms("gpt-4o-mini") < 0.7 * mean_ms("gpt-4o")

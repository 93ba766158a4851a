"""Helpers for the Agent tests: configs, scripted models, counted tools, span lookups."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from tests.runtime.conftest import Traced
from tuneloop import semconv
from tuneloop.clock import FakeClock
from tuneloop.config.model import AgentConfig
from tuneloop.runtime import (
    Agent,
    ChatRequest,
    Message,
    SimulatedProvider,
    Tool,
    ToolContext,
    simulated_sleep,
)
from tuneloop.runtime.providers import FailureModel, LatencyModel, scripted, tool_call

FAST = LatencyModel(base_ms=100, per_input_token_ms=0, per_output_token_ms=0, jitter_sigma=0)


def config(**sections: Any) -> AgentConfig:
    """A config on the simulated model with a system prompt; ``sections`` override."""
    data: dict[str, Any] = {
        "model": {"provider": "simulated", "name": "sim-1"},
        "prompts": {"system": "You are a support agent."},
    }
    data.update(sections)
    return AgentConfig.from_data(data)


def model(
    clock: FakeClock,
    replies: Sequence[Message | Callable[[ChatRequest], Message]] | None = None,
    *,
    policy: Any = None,
    name: str = "simulated",
    failures: FailureModel | None = None,
    latency: LatencyModel = FAST,
) -> SimulatedProvider:
    """A simulated provider answering ``replies`` in turn (or by ``policy``)."""
    return SimulatedProvider(
        policy or scripted(list(replies or ())),
        rng=random.Random(11),
        clock=clock,
        sleep=simulated_sleep(clock),
        latency=latency,
        failures=failures,
        name=name,
    )


def call(name: str, arguments: dict[str, Any], call_id: str) -> Message:
    """An assistant message calling one tool."""
    return Message.assistant(None, [tool_call(name, arguments, call_id=call_id)])


def answer(text: str) -> Message:
    """A final answer."""
    return Message.assistant(text)


def echo_last_tool(request: ChatRequest) -> Message:
    """A final answer quoting the last tool message (what the model read)."""
    return Message.assistant("tool said: " + request.messages[-1].text)


@dataclass
class Calls:
    """Counts a tool's executions and keeps their arguments and idempotency keys."""

    seen: list[dict[str, Any]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.seen)


def lookup_tool(calls: Calls, name: str = "lookup_order") -> Tool:
    """A read tool answering an order's status."""

    async def lookup_order(order_id: str) -> dict[str, Any]:
        """Look up an order.

        Args:
            order_id: the order's id.
        """
        calls.seen.append({"order_id": order_id})
        return {"order_id": order_id, "status": "shipped", "total_cents": 4200}

    return Tool(lookup_order, name=name)


def refund_tool(calls: Calls, *, requires_approval: bool = True) -> Tool:
    """A write tool that records each execution."""

    async def refund(order_id: str, amount_cents: int, context: ToolContext) -> dict[str, Any]:
        """Refund an order.

        Args:
            order_id: the order's id.
            amount_cents: how much.
        """
        calls.seen.append({"order_id": order_id, "key": context.idempotency_key})
        return {"refunded_cents": amount_cents, "order_id": order_id}

    return Tool(refund, side_effect="write", requires_approval=requires_approval)


def agent(
    cfg: AgentConfig,
    tools: Sequence[Tool],
    provider: Any,
    clock: FakeClock,
    traced: Traced | None = None,
    **options: Any,
) -> Agent:
    """An Agent named ``support`` in simulated time, traced into ``traced``."""
    options.setdefault("name", "support")
    return Agent(
        cfg,
        tools,
        provider,
        clock=clock,
        sleep=simulated_sleep(clock),
        rng=random.Random(3),
        tracing=None if traced is None else traced.provider,
        **options,
    )


def roots(traced: Traced) -> list[ReadableSpan]:
    """The run spans (``invoke_agent`` without a parent), in the order they ended."""
    return [
        span
        for span in traced.spans()
        if span.parent is None
        and span.attributes is not None
        and span.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_INVOKE_AGENT
    ]


def transitions(span: ReadableSpan) -> list[tuple[Any, Any]]:
    """``(from, to)`` of every transition event on a run span."""
    return [
        (event.attributes[semconv.TL_RUN_STATE_FROM], event.attributes[semconv.TL_RUN_STATE_TO])
        for event in span.events
        if event.name == semconv.TL_RUN_TRANSITION_EVENT and event.attributes is not None
    ]


def children(traced: Traced, parent: ReadableSpan) -> list[ReadableSpan]:
    """The spans directly under ``parent``."""
    span_id = parent.context.span_id
    return [s for s in traced.spans() if s.parent is not None and s.parent.span_id == span_id]


def content(message: Message) -> Any:
    """A tool message's content as data."""
    return json.loads(message.text)

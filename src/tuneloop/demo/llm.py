"""The demo world's language model: what the agent's model calls answer, and how fast.

It stands in for a hosted model behind the provider interface every tuneloop agent
uses. It reads what a real model would (the conversation, the tools offered, the
sampling temperature, the model name) and nothing else:

- on a customer's message it picks the tool for what they ask. Sampling at a higher
  temperature picks a plausible wrong tool more often: 1 % of the time plus 10 % per
  unit of temperature;
- on a tool's result it answers from it; on a failed tool it hands the customer to a
  colleague; on a result that does not match the question it notices half the time
  (and hands over), else it answers with what it found;
- the larger model is slower than the small one, and both have a long tail.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tuneloop.demo.customers import INTENTS, Intent, Question, understand
from tuneloop.runtime.providers.base import (
    ChatRequest,
    ChatResponse,
    Message,
    ToolCallRequest,
    Usage,
)

Sleep = Callable[[float], Awaitable[None]]
HANDOFF = "handoff_to_human"
# The tool a request of each intent needs, as the tools' descriptions tell the model.
TOOL_FOR: Mapping[Intent, str] = {
    "order_status": "lookup_order",
    "refund": "issue_refund",
    "shipping_policy": "search_policy",
    "account": "account_help",
}
INTENT_OF: Mapping[str, Intent] = {tool: intent for intent, tool in TOOL_FOR.items()}
# The wrong tool a hot sample picks: one whose arguments the message can fill.
CONFUSED_WITH: Mapping[Intent, tuple[Intent, ...]] = {
    "order_status": ("shipping_policy", "account"),
    "refund": ("order_status",),
    "shipping_policy": ("account",),
    "account": ("shipping_policy",),
}
MISROUTE_FLOOR = 0.01
MISROUTE_PER_TEMPERATURE = 0.10
NOTICE_MISMATCH = 0.5
GREETING = "I can help with orders, refunds, shipping and your account. What do you need?"
_CHARS_PER_TOKEN = 4
_MS_PER_S = 1000.0


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """How fast a model answers: a base, per output token, and log-normal jitter."""

    base_ms: float
    per_output_token_ms: float
    jitter_sigma: float = 0.25

    def sample_ms(self, rng: random.Random, output_tokens: int) -> float:
        """One call's latency in milliseconds."""
        mean = self.base_ms + self.per_output_token_ms * output_tokens
        return mean * math.exp(self.jitter_sigma * rng.gauss(0.0, 1.0))


PROFILES: Mapping[str, ModelProfile] = {
    "gpt-4o": ModelProfile(base_ms=320.0, per_output_token_ms=20.0),
    "gpt-4o-mini": ModelProfile(base_ms=180.0, per_output_token_ms=8.0),
}


def misroute_rate(temperature: float) -> float:
    """The share of messages the model sends to a wrong tool at ``temperature``."""
    return MISROUTE_FLOOR + MISROUTE_PER_TEMPERATURE * temperature


class WorldModel:
    """A `Provider` answering as the world's model does (see the module docstring).

    Args:
        seed: the seed of its sampling and latency.
        sleep: how its latency is spent.
        name: the provider name it reports (``gen_ai.provider.name``).
    """

    def __init__(self, seed: int, *, sleep: Sleep, name: str = "openai") -> None:
        self._rng = random.Random(seed)
        self._sleep = sleep
        self._name = name

    @property
    def name(self) -> str:
        """The provider's name."""
        return self._name

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """The next assistant message, after the model's latency."""
        offered = {spec.name for spec in request.tools}
        temperature = 1.0 if request.temperature is None else request.temperature
        if any(m.role == "assistant" for m in request.messages):
            message = self._after_tool(request, offered)
        else:
            message = self._first(request, offered, temperature)
        text_tokens = math.ceil(len(message.text) / _CHARS_PER_TOKEN)
        if message.tool_calls:
            call = message.tool_calls[0]
            output_tokens = 8 + math.ceil((len(call.name) + len(call.arguments)) / _CHARS_PER_TOKEN)
        else:
            # Models say more than the gist: greetings, context, a closing offer of help.
            output_tokens = text_tokens + round(90 * math.exp(0.35 * self._rng.gauss(0.0, 1.0)))
        profile = PROFILES.get(request.model, PROFILES["gpt-4o"])
        await self._sleep(profile.sample_ms(self._rng, output_tokens) / _MS_PER_S)
        return ChatResponse(
            message=message,
            finish_reason="tool_calls" if message.tool_calls else "stop",
            usage=Usage(input_tokens=_input_tokens(request), output_tokens=output_tokens),
            model=request.model,
            provider=self._name,
        )

    def _first(self, request: ChatRequest, offered: set[str], temperature: float) -> Message:
        found = understand(_last_user_text(request))
        if found is None:
            return Message.assistant(GREETING)
        question, order = found
        intent = question.intent
        if self._rng.random() < misroute_rate(temperature):
            intent = self._rng.choice(CONFUSED_WITH[intent])
        tool = TOOL_FOR[intent]
        if tool not in offered:
            return _handoff(offered, f"no tool for {intent}") or Message.assistant(GREETING)
        return _call(tool, _arguments(intent, question, order, _last_user_text(request)))

    def _after_tool(self, request: ChatRequest, offered: set[str]) -> Message:
        tool, result = _last_result(request)
        if tool == HANDOFF:
            return Message.assistant("A colleague from our support team will contact you shortly.")
        if result.get("status") == "error":
            error = result.get("error") or {}
            reason = f"{tool} failed: {error.get('message', 'unknown error')}"
            return _handoff(offered, reason) or Message.assistant(
                "I'm sorry, something went wrong on our side. Please try again later."
            )
        found = understand(_last_user_text(request))
        answered = INTENT_OF.get(tool)
        mismatch = found is not None and answered != found[0].intent
        if mismatch and self._rng.random() < NOTICE_MISMATCH:
            handoff = _handoff(offered, f"what {tool} found does not answer the question")
            if handoff is not None:
                return handoff
        question = found[0] if found is not None else None
        return Message.assistant(_answer(tool, result.get("data"), question))


def _last_user_text(request: ChatRequest) -> str:
    return next((m.text for m in reversed(request.messages) if m.role == "user"), "")


def _last_result(request: ChatRequest) -> tuple[str, dict[str, Any]]:
    names = {c.id: c.name for m in request.messages for c in m.tool_calls}
    for message in reversed(request.messages):
        if message.role == "tool":
            try:
                parsed = json.loads(message.text)
            except ValueError:
                parsed = {"status": "error", "error": {"message": message.text[:200]}}
            return names.get(message.tool_call_id or "", ""), parsed
    return "", {}


def _arguments(intent: Intent, question: Question, order: str | None, text: str) -> dict[str, str]:
    match intent:
        case "order_status" | "refund":
            return {"order_id": order or ""}
        case "shipping_policy":
            return {"query": text}
        case "account":
            return {"topic": question.topic if question.intent == "account" else "general"}
    raise AssertionError(f"unknown intent {intent!r}")


def _call(tool: str, arguments: Mapping[str, str]) -> Message:
    call = ToolCallRequest(id=f"call_{tool}", name=tool, arguments=json.dumps(dict(arguments)))
    return Message.assistant(None, [call])


def _handoff(offered: set[str], reason: str) -> Message | None:
    if HANDOFF not in offered:
        return None
    return _call(HANDOFF, {"reason": reason})


def _answer(tool: str, data: Any, question: Question | None) -> str:
    if tool == "lookup_order" and isinstance(data, dict):
        order = data.get("order_id")
        if question is not None and question.intent == "order_status" and question.topic == "email":
            return f"Order {order} was placed with {data.get('email')}."
        eta = f" and should arrive on {data['eta']}" if data.get("eta") else ""
        return f"Order {order} is {data.get('status')}{eta}."
    if tool == "issue_refund" and isinstance(data, dict):
        amount = int(data.get("amount_cents", 0)) / 100
        return (
            f"Done: your refund of ${amount:.2f} for order {data.get('order_id')} is on its way "
            f"(reference {data.get('refund_id')})."
        )
    if tool == "search_policy" and isinstance(data, list):
        if not data:
            return "I couldn't find a policy on that; our help center has the full list."
        return str(data[0].get("text", ""))
    if tool == "account_help" and isinstance(data, dict):
        return str(data.get("article", ""))
    return "Here is what I found."


def _input_tokens(request: ChatRequest) -> int:
    chars = sum(len(m.text) + sum(len(c.arguments) for c in m.tool_calls) for m in request.messages)
    chars += sum(len(json.dumps(spec.to_dict())) for spec in request.tools)
    return math.ceil(chars / _CHARS_PER_TOKEN)


__all__ = ["HANDOFF", "INTENTS", "INTENT_OF", "PROFILES", "TOOL_FOR", "WorldModel", "misroute_rate"]

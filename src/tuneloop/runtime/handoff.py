"""Handoffs: a router agent delegates the conversation to a specialist.

The router's model sees one tool per specialist, ``transfer_to_<name>``, described by
the specialist's ``description``. Calling it hands the run over: the specialist
starts its own conversation (its system prompt and the user's input) with its own
config, tools and providers, inside a nested ``invoke_agent <name>`` span of the
same trace. The run's store, budget and state machine stay the run's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from tuneloop import semconv
from tuneloop.clock import Clock
from tuneloop.errors import ConfigError
from tuneloop.runtime.providers.base import ToolCallRequest, ToolSpec

PREFIX = "transfer_to_"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_PARAMETERS = {
    "type": "object",
    "properties": {
        "reason": {
            "type": "string",
            "description": "Why this specialist should take over, in one sentence.",
        }
    },
}


@dataclass(frozen=True, slots=True)
class Handoff:
    """A specialist the router can hand over to.

    Attributes:
        agent: the specialist's agent name.
        description: what it handles (what the router's model reads).
    """

    agent: str
    description: str

    @property
    def tool_name(self) -> str:
        """The tool the router's model calls: ``transfer_to_<agent>``."""
        return tool_name(self.agent)

    def spec(self) -> ToolSpec:
        """The tool as the router's model sees it."""
        return ToolSpec(
            self.tool_name,
            f"Hand the conversation to {self.agent}: {self.description}",
            _PARAMETERS,
        )


def tool_name(agent: str) -> str:
    """``transfer_to_<agent>``, with characters providers refuse replaced by ``_``.

    Raises:
        ConfigError: the name would be longer than providers accept (64).
    """
    name = PREFIX + _UNSAFE.sub("_", agent)
    if len(name) > 64:
        raise ConfigError(
            f"specialist name {agent!r} is too long for a handoff tool; use at most "
            f"{64 - len(PREFIX)} characters"
        )
    return name


def reason_of(call: ToolCallRequest) -> str:
    """The ``reason`` the router gave, or ``""`` when its arguments have none."""
    try:
        arguments: Any = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return ""
    reason = arguments.get("reason") if isinstance(arguments, dict) else None
    return reason if isinstance(reason, str) else ""


@contextmanager
def agent_span(
    tracer: trace.Tracer,
    agent: str,
    attributes: dict[str, AttributeValue],
    *,
    clock: Clock | None,
) -> Iterator[trace.Span]:
    """A nested ``invoke_agent <agent>`` span, current inside the block."""
    attrs: dict[str, AttributeValue] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT,
        semconv.GEN_AI_AGENT_NAME: agent,
        **attributes,
    }
    now = None if clock is None else clock.now_ns()
    span = tracer.start_span(f"{semconv.OP_INVOKE_AGENT} {agent}", attributes=attrs, start_time=now)
    try:
        with trace.use_span(span, end_on_exit=False, record_exception=False):
            yield span
    finally:
        span.end(end_time=None if clock is None else clock.now_ns())

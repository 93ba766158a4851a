"""What a run returns (`RunResult`) and what it reports as it goes (`RunEvent`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from tuneloop.runtime.budget import Spend
from tuneloop.runtime.machine import RunState
from tuneloop.runtime.providers.base import Message
from tuneloop.runtime.review import ReviewItem
from tuneloop.telemetry.model import Outcome

StopReason = Literal[
    "final_answer",
    "guardrail_blocked",
    "budget_exhausted",
    "max_steps",
    "review_rejected",
    "state_timeout",
    "provider_failed",
]
OUTCOME_OF: Mapping[StopReason, Outcome] = MappingProxyType(
    {
        "final_answer": "success",
        "guardrail_blocked": "failure",
        "budget_exhausted": "budget_exhausted",
        "max_steps": "failure",
        "review_rejected": "escalated",
        "state_timeout": "failure",
        "provider_failed": "failure",
    }
)
# Graceful ends answer the user; the others are failures of the run.
STATE_OF: Mapping[StopReason, RunState] = MappingProxyType(
    {
        "final_answer": "completed",
        "guardrail_blocked": "completed",
        "budget_exhausted": "completed",
        "max_steps": "completed",
        "review_rejected": "failed",
        "state_timeout": "failed",
        "provider_failed": "failed",
    }
)
EventKind = Literal[
    "transition",
    "model_response",
    "tool_result",
    "checkpoint",
    "handoff",
    "review_requested",
    "budget_exhausted",
]


@dataclass(frozen=True, slots=True)
class ToolCallSummary:
    """One tool call of a run: what was called, with what, and how it ended."""

    name: str
    arguments: Mapping[str, Any]
    status: str
    call_id: str
    agent: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "name": self.name,
            "arguments": dict(self.arguments),
            "status": self.status,
            "call_id": self.call_id,
            "agent": self.agent,
        }


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run (or its latest segment) ended.

    It carries the fields tuneloop's evals read (``output``, ``tool_calls``,
    ``cost_usd``, ``trace_id``, ``metadata``), so an `Agent` is an eval target as is.

    Attributes:
        run_id: the run; `Agent.resume` takes it.
        agent: the agent that started the run.
        state: ``completed``, ``failed`` or ``waiting_approval`` (parked for review).
        outcome: ``success``, ``failure``, ``escalated`` or ``budget_exhausted``;
            ``None`` while the run waits.
        output: the answer (or the graceful message: a refusal, a budget summary).
        stop_reason: why it ended; ``None`` while it waits.
        steps: model calls made.
        spend: tokens and dollars this run spent.
        tool_calls: every tool call, in order.
        review: the review the run waits for, when ``state`` is ``waiting_approval``.
        trace_id: the trace of this segment.
        config_version: the config version the run used.
        variant: the experiment variant, if any.
        agents: the agents that handled the run, in handoff order.
        messages: the active agent's conversation.
        error: what failed, for a run that failed.
    """

    run_id: str
    agent: str
    state: RunState
    outcome: Outcome | None
    output: str | None
    stop_reason: StopReason | None
    steps: int
    spend: Spend
    tool_calls: tuple[ToolCallSummary, ...] = ()
    review: ReviewItem | None = None
    trace_id: str | None = None
    config_version: str | None = None
    variant: str | None = None
    agents: tuple[str, ...] = ()
    messages: tuple[Message, ...] = ()
    error: str | None = None

    @property
    def waiting(self) -> bool:
        """Whether the run is parked for a human decision."""
        return self.state == "waiting_approval"

    @property
    def cost_usd(self) -> float:
        """Dollars spent (for evals)."""
        return self.spend.cost_usd

    @property
    def metadata(self) -> dict[str, Any]:
        """Everything else an evaluator may read."""
        return {
            "run_id": self.run_id,
            "state": self.state,
            "outcome": self.outcome,
            "stop_reason": self.stop_reason,
            "steps": self.steps,
            "tokens": self.spend.tokens,
            "config_version": self.config_version,
            "variant": self.variant,
            "agents": list(self.agents),
        }


@dataclass(frozen=True, slots=True)
class RunEvent:
    """Something a run did, told to the agent's listeners as it happens.

    A ``tool_result`` event comes after the tool ran and before the checkpoint that
    records it; ``checkpoint`` after each save.
    """

    kind: EventKind
    run_id: str
    state: RunState
    step: int
    detail: Mapping[str, Any] = field(default_factory=dict)


Listener = Callable[[RunEvent], None]
"""Told every `RunEvent` of every run, synchronously."""

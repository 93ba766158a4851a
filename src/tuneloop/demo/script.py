"""The values of the simulated world: the agent's settings and the script of one run.

A `ScriptedRun` says everything that happens in one run (who asked what, which
steps ran, how long each took, how it ended, what the user thought of it) and does
no I/O; `tuneloop.demo.agent` plays it through the SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Intent = Literal["order_status", "refund", "shipping_policy", "account"]
INTENTS: tuple[Intent, ...] = ("order_status", "refund", "shipping_policy", "account")
ToolName = Literal["lookup_order", "issue_refund", "search_policy", "get_account"]
LlmPurpose = Literal["router", "answer"]
GuardrailVerdict = Literal["pass", "redact"]
DemoOutcome = Literal["success", "failure", "escalated"]
Thumbs = Literal[0, 1]


@dataclass(frozen=True, slots=True)
class ToolSettings:
    """How the agent calls one tool.

    Attributes:
        timeout_ms: the agent gives up on an attempt after this long (None: waits).
        max_retries: retries after a retryable failure (503, timeout).
        backoff_ms: wait before the first retry; doubles with each retry.
    """

    timeout_ms: float | None = None
    max_retries: int = 0
    backoff_ms: float = 200.0


def _v1_tools() -> Mapping[ToolName, ToolSettings]:
    return MappingProxyType(
        {
            "lookup_order": ToolSettings(timeout_ms=5000.0),
            "issue_refund": ToolSettings(timeout_ms=5000.0),
            # Tighter than the tool's slow tail: a share of searches time out.
            "search_policy": ToolSettings(timeout_ms=3000.0),
            "get_account": ToolSettings(timeout_ms=5000.0),
        }
    )


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """The support agent's configuration: the behaviour surface later issues tune.

    Attributes:
        version: the configuration version runs are tagged with.
        router_model: the model classifying intents.
        router_temperature: the router's sampling temperature; misrouting rises with it.
        answer_model: the model writing answers (unless ``answer_routes`` says otherwise).
        refund_approval_usd: refunds above this go to a human (the run escalates).
        tools: per-tool timeout and retry policy.
        answer_routes: the answer model per routed intent, where it is not ``answer_model``.
    """

    version: str = "v1"
    router_model: str = "gpt-4o-mini"
    router_temperature: float = 0.7
    answer_model: str = "gpt-4o"
    refund_approval_usd: float = 200.0
    tools: Mapping[ToolName, ToolSettings] = field(default_factory=_v1_tools)
    answer_routes: Mapping[Intent, str] = field(default_factory=lambda: MappingProxyType({}))

    def tool(self, name: ToolName) -> ToolSettings:
        """The settings of one tool (defaults if the configuration has none)."""
        return self.tools.get(name, ToolSettings())

    def answer_model_for(self, intent: Intent) -> str:
        """The model that answers a run routed to ``intent``."""
        return self.answer_routes.get(intent, self.answer_model)


@dataclass(frozen=True, slots=True)
class GuardrailStep:
    """An input guardrail check."""

    name: str
    verdict: GuardrailVerdict
    latency_ms: float


@dataclass(frozen=True, slots=True)
class LlmStep:
    """A model call."""

    purpose: LlmPurpose
    model: str
    temperature: float
    input_tokens: int
    output_tokens: int
    latency_ms: float
    prompt: str
    reply: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a tool call: how long it took and, if it failed, how."""

    latency_ms: float
    error: str | None = None
    retryable: bool = False
    message: str | None = None


@dataclass(frozen=True, slots=True)
class ToolStep:
    """A tool call with its attempts; the last attempt decides the result.

    Attributes:
        tool: the tool's name.
        arguments: what the agent passed.
        attempts: every try, the retries after the first.
        backoff_ms: the waits before each retry (one fewer than the attempts).
        result: what the tool returned when it succeeded.
        fatal: the agent cannot go on without this tool and aborts the run.
    """

    tool: ToolName
    arguments: Mapping[str, object]
    attempts: tuple[Attempt, ...]
    backoff_ms: tuple[float, ...] = ()
    result: Mapping[str, object] | None = None
    fatal: bool = False

    @property
    def retries(self) -> int:
        """Tries after the first."""
        return len(self.attempts) - 1

    @property
    def final(self) -> Attempt:
        """The attempt whose result the agent got."""
        return self.attempts[-1]

    @property
    def failed(self) -> bool:
        """Whether the call failed for good."""
        return self.final.error is not None

    @property
    def latency_ms(self) -> float:
        """Attempts and backoff waits together."""
        return sum(a.latency_ms for a in self.attempts) + sum(self.backoff_ms)


Step = GuardrailStep | LlmStep | ToolStep


@dataclass(frozen=True, slots=True)
class ScriptedRun:
    """Everything that happens in one run of the support agent.

    Attributes:
        index: position in the simulation, from 0.
        start_ms: simulated start time, epoch milliseconds.
        unit_id: the user.
        session_id: the conversation.
        turn: the run's position in its session, from 1.
        intent: what the user actually wants.
        routed_intent: what the router decided (differs when it misclassified).
        settings: the configuration the agent ran with.
        steps: the spans of the run, in order.
        outcome: how the run ended.
        thumbs: the user's feedback (1 up, 0 down), or None if they gave none.
    """

    index: int
    start_ms: int
    unit_id: str
    session_id: str
    turn: int
    intent: Intent
    routed_intent: Intent
    settings: AgentSettings
    steps: tuple[Step, ...]
    outcome: DemoOutcome
    thumbs: Thumbs | None

    @property
    def misrouted(self) -> bool:
        """Whether the router picked the wrong intent."""
        return self.intent != self.routed_intent

    @property
    def aborted(self) -> bool:
        """Whether a tool failed in a way the agent could not recover from."""
        return any(isinstance(s, ToolStep) and s.fatal for s in self.steps)

    @property
    def duration_ms(self) -> float:
        """The run's simulated wall time: its steps back to back."""
        return sum(s.latency_ms for s in self.steps)

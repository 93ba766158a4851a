"""Normalized spans and the run and tool-call facts derived from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SpanKind = Literal["agent", "llm", "tool", "guardrail", "retrieval", "embedding", "other"]
SpanStatus = Literal["unset", "ok", "error"]
Outcome = Literal["success", "failure", "escalated", "budget_exhausted"]
OUTCOMES: tuple[Outcome, ...] = ("success", "failure", "escalated", "budget_exhausted")

STATUS_CODES: dict[SpanStatus, int] = {"unset": 0, "ok": 1, "error": 2}
STATUS_NAMES: dict[int, SpanStatus] = {code: name for name, code in STATUS_CODES.items()}

AttributeValue = str | bool | int | float | list[Any] | dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class RootFacts:
    """What a run's root span says about the run as a whole."""

    agent: str
    config_version: str | None
    experiment: str | None
    variant: str | None
    unit_id: str | None
    session_id: str | None
    outcome: str
    status: SpanStatus
    error_type: str | None
    started_ms: int
    duration_ms: float
    # Usage the root span reports itself; used only when the trace has no LLM spans,
    # so agent-level totals and per-call usage are never counted twice.
    input_tokens: int
    output_tokens: int
    cost_usd: float
    attributes: dict[str, AttributeValue]


@dataclass(frozen=True, slots=True)
class ToolFact:
    """One tool call."""

    tool: str
    status: Literal["success", "partial", "error"]
    error_type: str | None
    retryable: bool
    duration_ms: float
    retries: int
    started_ms: int


@dataclass(frozen=True, slots=True)
class LlmUsage:
    """Usage of one model call."""

    model: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class NormalizedSpan:
    """One span, normalized, with the facts it contributes to its run."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: SpanKind
    start_ns: int
    end_ns: int
    status: SpanStatus
    status_message: str
    attributes: dict[str, AttributeValue]
    events: list[dict[str, Any]] = field(default_factory=list)
    resource: dict[str, AttributeValue] | None = None
    dropped_attributes: int = 0
    root: RootFacts | None = None
    llm: LlmUsage | None = None
    tool: ToolFact | None = None

    @property
    def duration_ms(self) -> float:
        """Duration in milliseconds."""
        return max(0, self.end_ns - self.start_ns) / 1e6

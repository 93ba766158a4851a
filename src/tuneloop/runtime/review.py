"""Human review: what sends a run or a tool call to a reviewer, and the review item.

A tool call goes to review when its tool ``requires_approval`` or a ``tool_args`` /
``tool_output`` guardrail says ``require_approval``; a run's answer when an
``output`` guardrail says so, when the model's confidence is under
``review.min_confidence``, or when the run falls in the ``review.sample_rate``
sample. The run parks in ``waiting_approval`` until a reviewer approves or rejects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from tuneloop.errors import ConflictError, InvalidInputError

ReviewKind = Literal["tool_call", "output", "input"]
ReviewSource = Literal["tool_settings", "guardrail", "confidence", "sample"]
ReviewStatus = Literal["pending", "approved", "rejected"]
Decision = Literal["approve", "reject"]

REVIEW_STATUSES: tuple[ReviewStatus, ...] = get_args(ReviewStatus)
DECISIONS: tuple[Decision, ...] = get_args(Decision)
_SAMPLE_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A run, or one pending tool call of it, awaiting a human decision.

    Attributes:
        review_id: derived from the run, step and call, so a resumed run asking
            again finds the same item.
        run_id: the run.
        agent: the agent whose run it is.
        kind: ``tool_call``, ``output`` (the run's answer) or ``input``.
        reason: why review was asked for.
        source: ``tool_settings``, ``guardrail``, ``confidence`` or ``sample``.
        created_ms: when it was asked for.
        status: ``pending``, ``approved`` or ``rejected``.
        tool: the tool, for a tool call.
        call_id: the model's call id, for a tool call.
        arguments: the call's validated (and redacted) arguments.
        content: what the reviewer judges: the answer, the input, or the tool's
            result awaiting approval at ``tool_output``.
        hop: ``tool_args`` or ``tool_output`` for a tool call.
        trace_id: the trace of the run segment that asked.
        session_id: the run's session.
        reviewer: who decided.
        decision_reason: what the reviewer said.
        decided_ms: when.
    """

    review_id: str
    run_id: str
    agent: str
    kind: ReviewKind
    reason: str
    source: ReviewSource
    created_ms: int
    status: ReviewStatus = "pending"
    tool: str | None = None
    call_id: str | None = None
    arguments: Mapping[str, Any] | None = None
    content: Any = None
    hop: str | None = None
    trace_id: str | None = None
    session_id: str | None = None
    reviewer: str | None = None
    decision_reason: str | None = None
    decided_ms: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def decided(self) -> bool:
        """Whether a reviewer has approved or rejected it."""
        return self.status != "pending"

    def decide(self, decision: Decision, *, reviewer: str, reason: str, now_ms: int) -> ReviewItem:
        """The item with the reviewer's decision.

        Raises:
            InvalidInputError: an unknown decision or an empty reviewer.
            ConflictError: it was already decided.
        """
        if decision not in DECISIONS:
            raise InvalidInputError(f"unknown decision {decision!r}; use one of {DECISIONS}")
        if not reviewer.strip():
            raise InvalidInputError("a review decision needs the reviewer's name")
        if self.decided:
            raise ConflictError(
                f"review {self.review_id!r} was already {self.status} by {self.reviewer!r}; "
                "a decision is final"
            )
        status: ReviewStatus = "approved" if decision == "approve" else "rejected"
        return replace(
            self, status=status, reviewer=reviewer, decision_reason=reason, decided_ms=now_ms
        )

    def to_data(self) -> dict[str, Any]:
        """Plain JSON data (the HTTP API's shape)."""
        return {
            "review_id": self.review_id,
            "run_id": self.run_id,
            "agent": self.agent,
            "kind": self.kind,
            "reason": self.reason,
            "source": self.source,
            "status": self.status,
            "created_ms": self.created_ms,
            "tool": self.tool,
            "call_id": self.call_id,
            "arguments": None if self.arguments is None else dict(self.arguments),
            "content": self.content,
            "hop": self.hop,
            "trace_id": self.trace_id,
            "session_id": self.session_id,
            "reviewer": self.reviewer,
            "decision_reason": self.decision_reason,
            "decided_ms": self.decided_ms,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ReviewItem:
        """The inverse of `to_data`."""
        return cls(
            review_id=data["review_id"],
            run_id=data["run_id"],
            agent=data["agent"],
            kind=data["kind"],
            reason=data["reason"],
            source=data["source"],
            created_ms=int(data["created_ms"]),
            status=data.get("status", "pending"),
            tool=data.get("tool"),
            call_id=data.get("call_id"),
            arguments=data.get("arguments"),
            content=data.get("content"),
            hop=data.get("hop"),
            trace_id=data.get("trace_id"),
            session_id=data.get("session_id"),
            reviewer=data.get("reviewer"),
            decision_reason=data.get("decision_reason"),
            decided_ms=data.get("decided_ms"),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True, slots=True)
class ReviewStats:
    """Decisions so far; the override rate is the share of decided items a human rejected."""

    pending: int = 0
    approved: int = 0
    rejected: int = 0

    @property
    def decided(self) -> int:
        """Approved plus rejected."""
        return self.approved + self.rejected

    @property
    def override_rate(self) -> float | None:
        """Rejected / decided, or ``None`` before any decision."""
        return self.rejected / self.decided if self.decided else None

    def to_data(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "pending": self.pending,
            "approved": self.approved,
            "rejected": self.rejected,
            "decided": self.decided,
            "override_rate": self.override_rate,
        }


def review_id(run_id: str, step: int, subject: str) -> str:
    """The id of the review a run asks for at ``step`` about ``subject`` (a call id, ``output``)."""
    digest = hashlib.sha256(f"{run_id}\x00{step}\x00{subject}".encode()).hexdigest()
    return f"rv_{digest[:24]}"


def in_sample(run_id: str, rate: float) -> bool:
    """Whether the run falls in a ``rate`` sample; decided by the run id, so stable on resume."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    point = int.from_bytes(hashlib.sha256(f"review-sample\x00{run_id}".encode()).digest()[:8])
    return point / _SAMPLE_SCALE < rate


def below_confidence(confidence: float | None, minimum: float | None) -> bool:
    """Whether a known confidence is under the configured minimum."""
    return confidence is not None and minimum is not None and confidence < minimum

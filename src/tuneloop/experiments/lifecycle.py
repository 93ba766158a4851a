"""An experiment's lifecycle: ``draft → running → stopped → concluded``, and its records.

Starting publishes the allocation (the SDK assigns units from then on), stopping takes
it down, concluding records a decision (``ship``, ``keep_control``, ``inconclusive``)
and who made it. Any other move is refused with a message saying what to do instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tuneloop.errors import ConflictError
from tuneloop.experiments.definition import ExperimentDefinition

Status = Literal["draft", "running", "stopped", "concluded"]
Decision = Literal["ship", "keep_control", "inconclusive"]
Transition = Literal["start", "stop", "conclude"]
EventAction = Literal["create", "start", "stop", "conclude"]

_FROM: dict[Transition, Status] = {"start": "draft", "stop": "running", "conclude": "stopped"}
_TO: dict[Transition, Status] = {"start": "running", "stop": "stopped", "conclude": "concluded"}
_HINT: dict[Status, str] = {
    "draft": "start it first (tuneloop experiment start {key})",
    "running": "stop it first (tuneloop experiment stop {key})",
    "stopped": "it was stopped; conclude it (tuneloop experiment conclude {key} --decision ...)",
    "concluded": "it is concluded; create a new experiment to test again",
}


def next_status(key: str, status: Status, transition: Transition) -> Status:
    """The status after ``transition``.

    Raises:
        ConflictError: the experiment is not in the status the transition starts from;
            the message says what it is and what to do.
    """
    if status != _FROM[transition]:
        hint = _HINT[status].format(key=key)
        raise ConflictError(
            f"cannot {transition} experiment {key!r}: it is {status}, not "
            f"{_FROM[transition]}; {hint}"
        )
    return _TO[transition]


@dataclass(frozen=True, slots=True)
class ExperimentEvent:
    """One lifecycle step: what happened, who did it (an API key id) and when."""

    seq: int
    action: EventAction
    actor: str
    created_ms: int
    detail: dict[str, Any]

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "seq": self.seq,
            "action": self.action,
            "actor": self.actor,
            "created_ms": self.created_ms,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """A stored experiment: its definition, status, times and decision."""

    definition: ExperimentDefinition
    status: Status
    created_ms: int
    created_by: str
    started_ms: int | None = None
    stopped_ms: int | None = None
    concluded_ms: int | None = None
    decision: Decision | None = None
    decided_by: str | None = None
    decision_reason: str | None = None
    winner: str | None = None

    @property
    def key(self) -> str:
        """The experiment's id."""
        return self.definition.key

    @property
    def agent(self) -> str:
        """The agent it runs on."""
        return self.definition.agent

    def window(self, now_ms: int) -> tuple[int, int] | None:
        """The time runs are analysed over: start to stop (or now); None for a draft."""
        if self.started_ms is None:
            return None
        end = self.stopped_ms if self.stopped_ms is not None else now_ms
        return self.started_ms, max(end, self.started_ms)

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data: the definition's fields beside status, times and decision."""
        return {
            "id": self.key,
            "status": self.status,
            **self.definition.model_dump(mode="json"),
            "created_ms": self.created_ms,
            "created_by": self.created_by,
            "started_ms": self.started_ms,
            "stopped_ms": self.stopped_ms,
            "concluded_ms": self.concluded_ms,
            "decision": self.decision,
            "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
            "winner": self.winner,
        }

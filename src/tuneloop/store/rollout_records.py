"""Rollouts as values: the stored record, its timeline entries, and their JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuneloop.rollouts import ACTIVE_STATUSES, RolloutDefinition, RolloutState, RolloutStatus
from tuneloop.rollouts.definition import parse_definition


def to_json(value: Any) -> str:
    """JSON text of figures: NaN and infinities become null."""

    def clean(item: Any) -> Any:
        if isinstance(item, float):
            return item if math.isfinite(item) else None
        if isinstance(item, Mapping):
            return {str(k): clean(v) for k, v in item.items()}
        if isinstance(item, list | tuple | set | frozenset):
            return [clean(v) for v in item]
        return item

    return json.dumps(clean(value), separators=(",", ":"), allow_nan=False, default=str)


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """A stored rollout: its definition and its state (see store/schema.py)."""

    project_id: str
    rollout_id: str
    agent: str
    status: RolloutStatus
    candidate: str
    stable: str
    definition: RolloutDefinition
    step: int
    step_started_ms: int
    step_deadline_ms: int | None
    approved_steps: frozenset[int]
    revision: int
    reason: str | None
    force_reason: str | None
    created_by: str
    created_ms: int
    updated_ms: int
    finished_ms: int | None
    last_evaluated_ms: int | None
    candidate_label: str | None = None
    stable_label: str | None = None

    @property
    def active(self) -> bool:
        """Running or paused."""
        return self.status in ACTIVE_STATUSES

    def state(self) -> RolloutState:
        """The policy's view of where the rollout is."""
        return RolloutState(
            self.status, self.step, self.step_started_ms, self.approved_steps,
            self.step_deadline_ms,
        )  # fmt: skip

    def weight(self) -> float:
        """The candidate's current share of units (0 once the rollout is over, 1 promoted)."""
        if self.status == "promoted":
            return 1.0
        return self.definition.weight_of(self.step) if self.active else 0.0

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "rollout_id": self.rollout_id,
            "agent": self.agent,
            "status": self.status,
            "candidate": self.candidate,
            "candidate_label": self.candidate_label,
            "stable": self.stable,
            "stable_label": self.stable_label,
            "step": self.step,
            "steps": len(self.definition.steps),
            "weight": self.weight() * 100,
            "step_started_ms": self.step_started_ms,
            "step_deadline_ms": self.step_deadline_ms,
            "approved_steps": sorted(self.approved_steps),
            "revision": self.revision,
            "reason": self.reason,
            "force_reason": self.force_reason,
            "created_by": self.created_by,
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
            "finished_ms": self.finished_ms,
            "last_evaluated_ms": self.last_evaluated_ms,
            "definition": self.definition.model_dump(mode="json"),
        }


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One evaluation or action: what was decided, why, by whom, on which figures."""

    seq: int
    created_ms: int
    step: int
    decision: str
    reason: str
    actor: str
    figures: dict[str, Any]

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "seq": self.seq, "created_ms": self.created_ms, "step": self.step,
            "decision": self.decision, "reason": self.reason, "actor": self.actor,
            "figures": self.figures,
        }  # fmt: skip


def record_of(row: Any, labels: Mapping[tuple[str, str, str], str]) -> RolloutRecord:
    """A ``rollouts`` row as a record; ``labels`` maps (project, agent, hash) to labels."""

    def label(version: str) -> str | None:
        return labels.get((row.project_id, row.agent, version))

    return RolloutRecord(
        project_id=row.project_id, rollout_id=row.rollout_id, agent=row.agent,
        status=row.status, candidate=row.candidate_hash, stable=row.stable_hash,
        definition=parse_definition(json.loads(row.definition)), step=row.step,
        step_started_ms=row.step_started_ms, step_deadline_ms=row.step_deadline_ms,
        approved_steps=frozenset(json.loads(row.approved_steps)), revision=row.revision,
        reason=row.reason, force_reason=row.force_reason, created_by=row.created_by,
        created_ms=row.created_ms, updated_ms=row.updated_ms, finished_ms=row.finished_ms,
        last_evaluated_ms=row.last_evaluated_ms,
        candidate_label=label(row.candidate_hash), stable_label=label(row.stable_hash),
    )  # fmt: skip


def deadline_of(definition: RolloutDefinition, step: int, started_ms: int) -> int | None:
    """When an inconclusive step pauses: its start plus its maximum duration."""
    longest = definition.steps[step].max_duration_ms
    return None if longest is None else started_ms + longest

"""Rollouts over HTTP (admin keys): start, status, pause, resume, approve, abort, rollback.

``GET`` answers carry the timeline; ``POST …/evaluate`` evaluates now, as the
controller's next tick would; ``POST /agents/{agent}/rollback`` is one call back to
safety. A start is refused, with the reason, for a candidate equal to production, while
another rollout or an experiment runs on the agent, or for a version whose eval gate
failed (unless ``force_reason`` is given, which is recorded).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from tuneloop.analysis.metrics import parse_duration_ms
from tuneloop.config.versions import validate_agent
from tuneloop.errors import NotFoundError
from tuneloop.rollouts import PresetName, RolloutDefinition, parse_definition, preset, steps_for
from tuneloop.server.auth import AdminPrincipal
from tuneloop.store import Store
from tuneloop.store.evals import require_passing_gate
from tuneloop.store.rollouts import RolloutRecord

router = APIRouter(prefix="/api/v1", tags=["rollouts"])
Reason = Annotated[str, Field(max_length=4096)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RolloutIn(_Body):
    """Start a rollout of ``version`` against production.

    Either a full ``definition``, or a ``preset`` with optional changes: ``steps``
    (percentages), ``step_duration`` (minimum per step, e.g. ``30m``), ``min_units``
    per step, ``approve_before`` (weights whose step needs an approval), ``notify``
    (webhooks told of a rollback) and ``overrides`` (any definition field).
    ``rollout_id`` names the rollout (default: random); it is also the salt that
    splits units, so a rollout started again under the same id in another
    environment puts the same units on the candidate.
    """

    version: str = Field(min_length=1, max_length=128)
    rollout_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
    preset: PresetName = "canary"
    definition: dict[str, Any] | None = None
    steps: list[float] | None = Field(default=None, min_length=1, max_length=20)
    step_duration: str | None = Field(default=None, max_length=16)
    min_units: int | None = Field(default=None, ge=0)
    approve_before: list[float] = Field(default_factory=list, max_length=20)
    notify: list[str] | None = Field(default=None, max_length=10)
    overrides: dict[str, Any] = Field(default_factory=dict)
    force_reason: Reason | None = None


class ReasonIn(_Body):
    """Why (shown in the timeline)."""

    reason: Reason = ""


class ApproveIn(_Body):
    """Approve step ``step`` (counted from 1; default: the next step)."""

    step: int | None = Field(default=None, ge=1)


class RollbackIn(_Body):
    """Where production goes (default: the version before its last move)."""

    to: str | None = Field(default=None, max_length=128)


def definition_of(body: RolloutIn) -> RolloutDefinition:
    """The definition a start request asks for (see `RolloutIn`)."""
    if body.definition is not None:
        return parse_definition(body.definition)
    overrides = dict(body.overrides)
    if body.steps or body.step_duration or body.min_units is not None or body.approve_before:
        base = preset(body.preset)
        overrides.setdefault(
            "steps",
            steps_for(
                body.steps or [step.weight for step in base.steps],
                min_duration_ms=parse_duration_ms(body.step_duration)
                if body.step_duration
                else base.steps[0].min_duration_ms,
                min_units=body.min_units if body.min_units is not None else base.steps[0].min_units,
                approve_before=body.approve_before,
                prove_from=50 if body.preset == "gradual" else None,
            ),
        )
    if body.notify is not None:
        overrides["notify"] = body.notify
    return preset(body.preset, **overrides)


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _now(request: Request) -> int:
    now: int = request.app.state.clock.now_ms()
    return now


def _with_timeline(store: Store, record: RolloutRecord, limit: int = 200) -> dict[str, Any]:
    timeline = store.rollouts.timeline(
        record.project_id, record.rollout_id, limit=limit, latest=True
    )
    return {**record.to_data(), "timeline": [entry.to_data() for entry in timeline]}


@router.post("/agents/{agent}/rollouts", status_code=201)
def start_rollout(
    request: Request, principal: AdminPrincipal, agent: str, body: RolloutIn
) -> dict[str, Any]:
    """Start a rollout: the first step's weight goes into the agent state at once."""
    store, project = _store(request), principal.project_id
    definition = definition_of(body)

    def gate(version_hash: str) -> None:
        require_passing_gate(
            store, project, agent, version_hash, body.force_reason, author=principal.key_id,
            purpose="rollout", clock=request.app.state.clock,
        )  # fmt: skip

    record = store.rollout_ops.start(
        project, validate_agent(agent), version=body.version, definition=definition,
        author=principal.key_id, now_ms=_now(request), force_reason=body.force_reason, gate=gate,
        rollout_id=body.rollout_id,
    )  # fmt: skip
    return _with_timeline(store, record)


@router.get("/rollouts")
def list_rollouts(
    request: Request,
    principal: AdminPrincipal,
    agent: str | None = None,
    active: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The project's rollouts, newest first (``active``: running or paused only)."""
    records = _store(request).rollouts.find(
        principal.project_id, agent=agent, active_only=active, limit=limit
    )
    return {"items": [record.to_data() for record in records]}


@router.get("/agents/{agent}/rollout")
def agent_rollout(
    request: Request,
    principal: AdminPrincipal,
    agent: str,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> dict[str, Any]:
    """The agent's active rollout (else its latest) with the last ``limit`` timeline rows."""
    store = _store(request)
    record = store.rollouts.latest_for(principal.project_id, validate_agent(agent))
    if record is None:
        raise NotFoundError(
            f"agent {agent!r} has no rollout; start one with "
            f"`tuneloop rollout start {agent} --version V`"
        )
    return _with_timeline(store, record, limit)


@router.get("/rollouts/{rollout_id}")
def get_rollout(
    request: Request,
    principal: AdminPrincipal,
    rollout_id: str,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> dict[str, Any]:
    """One rollout with the last ``limit`` rows of its timeline."""
    store = _store(request)
    return _with_timeline(store, store.rollouts.get(principal.project_id, rollout_id), limit)


@router.post("/rollouts/{rollout_id}/pause")
def pause_rollout(
    request: Request, principal: AdminPrincipal, rollout_id: str, body: ReasonIn | None = None
) -> dict[str, Any]:
    """Hold at the current weight (guards still roll back); resume to continue."""
    store = _store(request)
    record = store.rollout_ops.pause(
        principal.project_id, rollout_id, actor=principal.key_id, now_ms=_now(request),
        reason=(body or ReasonIn()).reason,
    )  # fmt: skip
    return _with_timeline(store, record)


@router.post("/rollouts/{rollout_id}/resume")
def resume_rollout(request: Request, principal: AdminPrincipal, rollout_id: str) -> dict[str, Any]:
    """Continue a paused rollout."""
    store = _store(request)
    record = store.rollout_ops.resume(
        principal.project_id, rollout_id, actor=principal.key_id, now_ms=_now(request)
    )
    return _with_timeline(store, record)


@router.post("/rollouts/{rollout_id}/approve")
def approve_rollout(
    request: Request, principal: AdminPrincipal, rollout_id: str, body: ApproveIn | None = None
) -> dict[str, Any]:
    """Approve a step that needs approval (400 for a step that needs none)."""
    store = _store(request)
    record = store.rollout_ops.approve(
        principal.project_id, rollout_id, actor=principal.key_id, now_ms=_now(request),
        step=(body or ApproveIn()).step,
    )  # fmt: skip
    return _with_timeline(store, record)


@router.post("/rollouts/{rollout_id}/abort")
def abort_rollout(
    request: Request, principal: AdminPrincipal, rollout_id: str, body: ReasonIn | None = None
) -> dict[str, Any]:
    """Stop the rollout: the candidate gets no more units; production is unchanged."""
    store = _store(request)
    record = store.rollout_ops.stop(
        principal.project_id, rollout_id, actor=principal.key_id, now_ms=_now(request),
        reason=(body or ReasonIn()).reason,
    )  # fmt: skip
    return _with_timeline(store, record)


@router.post("/rollouts/{rollout_id}/evaluate")
def evaluate_rollout(
    request: Request, principal: AdminPrincipal, rollout_id: str
) -> dict[str, Any]:
    """Evaluate the rollout now, as the controller's next tick would, and apply it."""
    store = _store(request)
    record = store.rollouts.get(principal.project_id, rollout_id)
    if record.active:
        _decision, updated = store.rollout_ops.evaluate(
            record, now_ms=_now(request), actor=principal.key_id
        )
        record = updated or store.rollouts.get(principal.project_id, rollout_id)
    return _with_timeline(store, record)


@router.post("/agents/{agent}/rollback")
def rollback_agent(
    request: Request, principal: AdminPrincipal, agent: str, body: RollbackIn | None = None
) -> dict[str, Any]:
    """Stop any active rollout, and move production back if no rollout was running."""
    return _store(request).rollout_ops.rollback_agent(
        principal.project_id, validate_agent(agent), actor=principal.key_id,
        now_ms=_now(request), to=(body or RollbackIn()).to,
    )  # fmt: skip

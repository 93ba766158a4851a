"""A/B experiments over HTTP: create, list, start, stop, conclude, results.

Every endpoint needs an admin key. Lifecycle moves out of order answer 409 with what
to do instead; so does starting an experiment while another runs on the same agent and
unit type (the message names it). Results are JSON-safe: an undefined number is null
beside a ``status`` saying why, never NaN.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from tuneloop.experiments.definition import ExperimentIn
from tuneloop.experiments.lifecycle import Status
from tuneloop.experiments.results import LookInterval
from tuneloop.experiments.service import ConcludeIn, ExperimentService
from tuneloop.server.auth import AdminPrincipal

router = APIRouter(prefix="/api/v1", tags=["experiments"])


class StopIn(BaseModel):
    """Why the experiment is stopped (optional, recorded)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=4096)


def _service(request: Request) -> ExperimentService:
    return ExperimentService(request.app.state.store, clock=request.app.state.clock)


@router.post("/experiments", status_code=201)
def create_experiment(
    request: Request, principal: AdminPrincipal, body: ExperimentIn
) -> dict[str, Any]:
    """Create a draft experiment: variants pinned to versions, metrics, method."""
    service = _service(request)
    record = service.create(principal.project_id, body, author=principal.key_id)
    return service.describe(principal.project_id, record.key)


@router.get("/experiments")
def list_experiments(
    request: Request,
    principal: AdminPrincipal,
    agent: str | None = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Experiments, newest first."""
    records = _service(request).list_experiments(
        principal.project_id, agent=agent, status=status, limit=limit
    )
    return {"items": [record.to_data() for record in records]}


@router.get("/experiments/{key}")
def get_experiment(request: Request, principal: AdminPrincipal, key: str) -> dict[str, Any]:
    """One experiment with its lifecycle events."""
    return _service(request).describe(principal.project_id, key)


@router.post("/experiments/{key}/start")
def start_experiment(request: Request, principal: AdminPrincipal, key: str) -> dict[str, Any]:
    """Start: the allocation goes into the agent state document."""
    service = _service(request)
    service.start(principal.project_id, key, author=principal.key_id)
    return service.describe(principal.project_id, key)


@router.post("/experiments/{key}/stop")
def stop_experiment(
    request: Request, principal: AdminPrincipal, key: str, body: StopIn | None = None
) -> dict[str, Any]:
    """Stop: the allocation leaves the agent state document."""
    service = _service(request)
    reason = body.reason if body is not None else ""
    service.stop(principal.project_id, key, author=principal.key_id, reason=reason)
    return service.describe(principal.project_id, key)


@router.post("/experiments/{key}/conclude")
def conclude_experiment(
    request: Request, principal: AdminPrincipal, key: str, body: ConcludeIn
) -> dict[str, Any]:
    """Record the decision (and, with ``promote``, move production to the shipped version)."""
    service = _service(request)
    service.conclude(principal.project_id, key, body, author=principal.key_id)
    return service.describe(principal.project_id, key)


@router.get("/experiments/{key}/results")
def experiment_results(
    request: Request, principal: AdminPrincipal, key: str, interval: LookInterval = "day"
) -> dict[str, Any]:
    """Per metric and variant: units, value, lifts, p-values, verdicts; SRM; what to do."""
    return _service(request).results(principal.project_id, key, interval=interval)

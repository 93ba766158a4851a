"""Eval runs over HTTP: upload, list, show, per-case diff, and a version's gate verdict.

Every endpoint needs an admin key: an upload records gate verdicts, and those decide
whether a version may start an experiment or rollout. An upload is validated field by
field (422 naming the path, ``body.run.cases.0.trials.0.passed``); a run id already
stored with other content is a 409; a version the agent does not have is a 404.

Diffing runs of different suites (or stages, agents, trial counts) is allowed: cases
are matched by id, and the answer's ``warnings`` says what differs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from tuneloop.evals.documents import EvalRunDocument
from tuneloop.server.auth import AdminPrincipal
from tuneloop.store import Store
from tuneloop.store.evals import MAX_PAGE

router = APIRouter(prefix="/api/v1", tags=["evals"])


class EvalRunIn(BaseModel):
    """An eval run to store, and what it evaluated."""

    model_config = ConfigDict(extra="forbid")

    run: EvalRunDocument = Field(description="the JSON `tuneloop eval run --out` writes")
    agent: str | None = Field(default=None, description="default: the run's own agent")
    version: str | None = Field(
        default=None,
        description="the stored version it evaluated (hash, prefix, label or channel); "
        "default: the version whose hash is the run's config hash, if any",
    )


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.post("/eval-runs", status_code=201)
def upload_eval_run(
    request: Request, response: Response, principal: AdminPrincipal, body: EvalRunIn
) -> dict[str, Any]:
    """Store an eval run (200 if this exact run is already stored) and its gate verdict."""
    store = _store(request)
    saved = store.evals.save_run(
        principal.project_id,
        body.run.to_run(),
        author=principal.key_id,
        now_ms=request.app.state.clock.now_ms(),
        agent=body.agent,
        version=body.version,
    )
    if not saved.created:
        response.status_code = 200
    summary = saved.summary
    gate = None
    if summary.version_hash is not None:
        gate = store.evals.gate_verdict(
            principal.project_id, summary.agent, summary.version_hash
        ).to_data()
    return {
        **summary.to_data(),
        "created": saved.created,
        "version_label": saved.version_label,
        "verdict": None if saved.verdict is None else saved.verdict.to_data(),
        "gate": gate,
    }


@router.get("/eval-runs")
def list_eval_runs(
    request: Request,
    principal: AdminPrincipal,
    agent: str | None = None,
    version: Annotated[
        str | None, Query(description="hash, prefix, label or channel; needs agent")
    ] = None,
    suite: str | None = None,
    stage: str | None = None,
    passed: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Stored runs, newest upload first; pass ``next_cursor`` back as ``cursor`` for more."""
    items, next_cursor = _store(request).evals.list_runs(
        principal.project_id,
        agent=agent,
        version=version,
        suite=suite,
        stage=stage,
        passed=passed,
        limit=limit,
        cursor=cursor,
    )
    return {"items": [item.to_data() for item in items], "next_cursor": next_cursor}


@router.get("/eval-runs/{run_id}")
def get_eval_run(request: Request, principal: AdminPrincipal, run_id: str) -> dict[str, Any]:
    """One stored run: its summary and the whole run document (``run``)."""
    stored = _store(request).evals.get_run(principal.project_id, run_id)
    return {**stored.summary.to_data(), "run": stored.run.to_dict()}


@router.get("/eval-runs/{baseline_id}/diff/{current_id}")
def diff_eval_runs(
    request: Request,
    principal: AdminPrincipal,
    baseline_id: str,
    current_id: str,
    alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05,
) -> dict[str, Any]:
    """Per-case changes from one run to another (regressed, improved, within noise...)."""
    diff, warnings = _store(request).evals.diff(
        principal.project_id, baseline_id, current_id, alpha=alpha
    )
    return {**diff.to_dict(), "warnings": list(warnings)}


@router.get("/agents/{agent}/versions/{ref}/gate")
def version_gate(request: Request, principal: AdminPrincipal, agent: str, ref: str) -> Any:
    """A version's latest gate verdict per stage: ``status`` passed, failed or unknown."""
    return _store(request).evals.gate_verdict(principal.project_id, agent, ref).to_data()

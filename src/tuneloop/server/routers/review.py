"""The human review queue over HTTP: list, read, approve and reject (admin keys).

A decision is final and recorded with the reviewer and the reason; the agent resumes
the parked run on its next `Agent.resume` / `resume_decided`. Each decision also
attaches a ``human_override`` feedback score to the run's trace (1 for a rejection,
0 for an approval), so the override rate is a feedback metric like any other;
``GET /reviews/stats`` counts it directly.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tuneloop.errors import ConflictError, InvalidInputError, NotFoundError
from tuneloop.runtime.review import REVIEW_STATUSES, Decision, ReviewItem
from tuneloop.server.auth import AdminPrincipal
from tuneloop.server.http_errors import error_body
from tuneloop.store import Store

router = APIRouter(prefix="/api/v1", tags=["review"])
OVERRIDE_FEEDBACK = "human_override"


class DecisionIn(BaseModel):
    """A reviewer's decision; ``reviewer`` defaults to the API key's id."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=4096)
    reviewer: str | None = Field(default=None, min_length=1, max_length=256)


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.get("/reviews")
def list_reviews(
    request: Request,
    principal: AdminPrincipal,
    status: str = "pending",
    agent: str | None = None,
    run_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Review items, oldest first: ``status`` pending (the default), approved, rejected or all."""
    if status != "all" and status not in REVIEW_STATUSES:
        raise InvalidInputError(
            f"unknown review status {status!r}; use one of {[*REVIEW_STATUSES, 'all']}"
        )
    items = _store(request).runtime.list_reviews(
        principal.project_id,
        status=None if status == "all" else status,  # type: ignore[arg-type]
        agent=agent,
        run_id=run_id,
        limit=limit,
    )
    return {"items": [item.to_data() for item in items]}


@router.get("/reviews/stats")
def review_stats(
    request: Request, principal: AdminPrincipal, agent: str | None = None
) -> dict[str, Any]:
    """Pending, approved and rejected counts, and the human override rate."""
    return _store(request).runtime.review_stats(principal.project_id, agent=agent).to_data()


@router.get("/reviews/{review_id}")
def get_review(request: Request, principal: AdminPrincipal, review_id: str) -> dict[str, Any]:
    """One review item."""
    item = _store(request).runtime.get_review(principal.project_id, review_id)
    if item is None:
        raise NotFoundError(f"no review {review_id!r} in project {principal.project_id!r}")
    return item.to_data()


@router.post("/reviews/{review_id}/approve", response_model=None)
def approve(
    request: Request, principal: AdminPrincipal, review_id: str, body: DecisionIn
) -> dict[str, Any] | JSONResponse:
    """Approve: the tool call runs (or the answer goes out) when the agent resumes the run."""
    return _decide(request, principal.project_id, principal.key_id, review_id, "approve", body)


@router.post("/reviews/{review_id}/reject", response_model=None)
def reject(
    request: Request, principal: AdminPrincipal, review_id: str, body: DecisionIn
) -> dict[str, Any] | JSONResponse:
    """Reject: the tool call is refused (or the run is escalated) when the agent resumes it."""
    return _decide(request, principal.project_id, principal.key_id, review_id, "reject", body)


def _decide(
    request: Request,
    project_id: str,
    key_id: str,
    review_id: str,
    decision: Decision,
    body: DecisionIn,
) -> dict[str, Any] | JSONResponse:
    store = _store(request)
    now_ms: int = request.app.state.clock.now_ms()
    try:
        item: ReviewItem = store.runtime.decide_review(
            project_id,
            review_id,
            decision,
            reviewer=body.reviewer or key_id,
            reason=body.reason,
            now_ms=now_ms,
        )
    except ConflictError as exc:
        return JSONResponse(error_body(exc), status_code=409)
    if item.trace_id is not None:
        store.add_feedback(
            project_id,
            trace_id=item.trace_id,
            name=OVERRIDE_FEEDBACK,
            value=1.0 if item.status == "rejected" else 0.0,
            comment=body.reason or None,
            key_id=key_id,
            now_ms=now_ms,
        )
    return item.to_data()

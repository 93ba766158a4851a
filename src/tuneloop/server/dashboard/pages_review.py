"""The review queue: tool calls awaiting approval and sampled answers, approved or rejected here.

A decision goes through the JSON API's own endpoint functions
(`tuneloop.server.routers.review.approve` / ``reject``), so it is recorded exactly as
``POST /api/v1/reviews/{id}/approve`` records it: the reviewer (the signed-in key), the
reason, and the ``human_override`` feedback on the run's trace.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.datastructures import URL

from tuneloop.errors import ConflictError, InvalidInputError
from tuneloop.runtime.review import REVIEW_STATUSES
from tuneloop.server.dashboard.routing import DashboardRoute, form_of, session_of
from tuneloop.server.dashboard.site import NavEntry, dashboard_of
from tuneloop.server.routers import review as review_api
from tuneloop.store import Store
from tuneloop.store.keys import Principal

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
NAV = NavEntry("Review", "/ui/review", ("/ui/review",))
ROWS = 100
SOURCE_LABELS = {"tool_settings": "tool needs approval", "guardrail": "guardrail",
                 "confidence": "low confidence", "sample": "sample"}  # fmt: skip


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _context(request: Request, status: str, agent: str, *, error: str = "") -> dict[str, Any]:
    session = session_of(request)
    if status != "all" and status not in REVIEW_STATUSES:
        raise InvalidInputError(
            f"unknown review status {status[:20]!r}; use one of {', '.join(REVIEW_STATUSES)} or all"
        )
    runtime = _store(request).runtime
    items = runtime.list_reviews(
        session.project_id,
        status=None if status == "all" else status,  # type: ignore[arg-type]
        agent=agent or None,
        limit=ROWS,
    )
    return {
        "items": items,
        "stats": runtime.review_stats(session.project_id, agent=agent or None),
        "status": status,
        "statuses": (*REVIEW_STATUSES, "all"),
        "agent": agent,
        "source_labels": SOURCE_LABELS,
        "error": error,
        "notice": request.query_params.get("done", ""),
    }


@router.get("/ui/review")
def review_page(request: Request, status: str = "pending", agent: str = "") -> Response:
    """Pending approvals and sampled answers, oldest first; decided ones on request."""
    context = _context(request, status, agent.strip())
    return dashboard_of(request).render(request, "review.html", context)


def _decide(request: Request, review_id: str, approve: bool) -> Response:
    session = session_of(request)
    principal = Principal(key_id=session.key_id, project_id=session.project_id, scope="admin")
    body = review_api.DecisionIn(reason=form_of(request).get("reason").strip()[:4096])
    endpoint = review_api.approve if approve else review_api.reject
    answer = endpoint(request, principal, review_id, body)
    if isinstance(answer, JSONResponse):  # the API's 409: someone decided it first
        item = _store(request).runtime.get_review(session.project_id, review_id)
        decided = f"{item.status} by {item.reviewer}" if item else "decided"
        refusal = ConflictError(f"review {review_id!r} was already {decided}; a decision is final")
        context = _context(request, "pending", "", error=str(refusal))
        return dashboard_of(request).render(request, "review.html", context, status_code=409)
    done = f"{answer['review_id']} {answer['status']}"
    return RedirectResponse(str(URL("/ui/review").include_query_params(done=done)), status_code=303)


@router.post("/ui/review/{review_id}/approve")
def approve(request: Request, review_id: str) -> Response:
    """Approve: the tool call runs (or the answer goes out) when the agent resumes."""
    return _decide(request, review_id, approve=True)


@router.post("/ui/review/{review_id}/reject")
def reject(request: Request, review_id: str) -> Response:
    """Reject: the tool call is refused (or the run escalated) when the agent resumes."""
    return _decide(request, review_id, approve=False)

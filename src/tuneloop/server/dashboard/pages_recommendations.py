"""Recommendations: what analyzers found, the evidence with its example traces; accept, dismiss.

Accepting calls `RecommendationRepository.accept` (a bundle and a candidate version,
as ``POST …/recommendations/{id}/accept`` does) and dismissing calls ``dismiss`` with
the reason, so the rows and versions they write are the API's.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import URL

from tuneloop.config.versions import validate_agent
from tuneloop.errors import InvalidInputError, TuneloopError
from tuneloop.server.dashboard.routing import DashboardRoute, form_of, session_of
from tuneloop.server.dashboard.site import NavEntry, dashboard_of
from tuneloop.server.http_errors import status_of
from tuneloop.store import Store
from tuneloop.store.recommendations import STATUSES
from tuneloop.store.schema import recommendations

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
NAV = NavEntry("Recommendations", "/ui/recommendations", ("/ui/recommendations",))
ROWS = 100
_T = recommendations.c


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def open_counts(store: Store, project_id: str) -> dict[str, int]:
    """Open recommendations per agent (agents with none are left out), by agent name."""
    query = (
        sa.select(_T.agent, sa.func.count())
        .where(_T.project_id == project_id, _T.status == "open")
        .group_by(_T.agent)
        .order_by(_T.agent)
    )
    with store.engine.connect() as conn:
        return {str(agent): int(count) for agent, count in conn.execute(query)}


def evidence_rows(evidence: dict[str, Any]) -> list[tuple[str, Any]]:
    """The evidence's figures for a table: everything but the example traces."""
    return [
        (key.replace("_", " "), value)
        for key, value in evidence.items()
        if key not in ("example_trace_ids", "recommendation_id")
    ]


def _context(
    request: Request, agent: str, status: str, *, error: str = "", focus: str = ""
) -> dict[str, Any]:
    session = session_of(request)
    store = _store(request)
    if status != "all" and status not in STATUSES:
        raise InvalidInputError(
            f"unknown status {status[:20]!r}; use one of {', '.join(STATUSES)} or all"
        )
    counts = open_counts(store, session.project_id)
    agents = sorted(counts.keys() | {row["agent"] for row in store.configs.list_agents(
        session.project_id)})  # fmt: skip
    chosen = agent or next(iter(counts), "") or (agents[0] if agents else "")
    items: list[dict[str, Any]] = []
    if chosen:
        items = store.recommendations.list_for(
            session.project_id,
            validate_agent(chosen),
            status=None if status == "all" else status,  # type: ignore[arg-type]
            limit=ROWS,
        )
    accepted = request.query_params.get("accepted", "")
    versions = store.configs.list_versions(session.project_id, chosen, limit=200) if chosen else []
    labels = {v.hash: v.label for v in versions}
    return {
        "agent": chosen,
        "agents": agents,
        "counts": counts,
        "status": status,
        "statuses": (*STATUSES, "all"),
        "items": items,
        "labels": labels,
        "evidence_rows": evidence_rows,
        "error": error,
        "focus": focus,
        "accepted": next((i for i in items if i["id"] == accepted), None) if accepted else None,
        "dismissed": request.query_params.get("dismissed", ""),
    }


@router.get("/ui/recommendations")
def recommendations_page(request: Request, agent: str = "", status: str = "open") -> Response:
    """An agent's recommendations, most confident first, with evidence and the proposed change."""
    context = _context(request, agent.strip(), status)
    return dashboard_of(request).render(request, "recommendations.html", context)


def _back(agent: str, **params: str) -> RedirectResponse:
    url = URL("/ui/recommendations").include_query_params(agent=agent, **params)
    return RedirectResponse(str(url), status_code=303)


def _refused(request: Request, agent: str, rec_id: str, exc: TuneloopError) -> Response:
    context = _context(request, agent, "all", error=str(exc), focus=rec_id)
    return dashboard_of(request).render(
        request, "recommendations.html", context, status_code=status_of(exc)
    )


@router.post("/ui/recommendations/{agent}/{rec_id}/accept")
def accept(request: Request, agent: str, rec_id: str) -> Response:
    """Create a bundle and a candidate version from the recommendation."""
    session = session_of(request)
    base = form_of(request).get("base").strip() or None
    try:
        _store(request).recommendations.accept(
            session.project_id,
            validate_agent(agent),
            rec_id,
            author=session.key_id,
            now_ms=request.app.state.clock.now_ms(),
            base=base,
        )
    except TuneloopError as exc:
        return _refused(request, agent, rec_id, exc)
    return _back(agent, status="accepted", accepted=rec_id)


@router.post("/ui/recommendations/{agent}/{rec_id}/dismiss")
def dismiss(request: Request, agent: str, rec_id: str) -> Response:
    """Set the recommendation aside with a reason (required)."""
    session = session_of(request)
    try:
        _store(request).recommendations.dismiss(
            session.project_id,
            validate_agent(agent),
            rec_id,
            reason=form_of(request).get("reason"),
            author=session.key_id,
            now_ms=request.app.state.clock.now_ms(),
        )
    except TuneloopError as exc:
        return _refused(request, agent, rec_id, exc)
    return _back(agent, dismissed=rec_id)

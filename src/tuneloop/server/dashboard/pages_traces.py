"""Trace search, one trace as a waterfall, and a session's runs."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from tuneloop import semconv as sc
from tuneloop.errors import InvalidInputError, NotFoundError
from tuneloop.server.dashboard import waterfall
from tuneloop.server.dashboard.routing import DashboardRoute, session_of
from tuneloop.server.dashboard.site import NavEntry, dashboard_of
from tuneloop.server.params import run_filter
from tuneloop.store import Store
from tuneloop.telemetry.model import OUTCOMES

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
NAV = NavEntry("Traces", "/ui/traces", ("/ui/traces", "/ui/sessions"))
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
PAGE = 50
SESSION_RUNS = 200
SESSION_DETAILS = 20
# Search windows: a bounded default keeps a rare filter from scanning every stored run.
SINCE_CHOICES = (("1h", "last hour"), ("24h", "last 24 hours"), ("7d", "last 7 days"),
                 ("30d", "last 30 days"), ("all", "any time"))  # fmt: skip
FILTERS = ("agent", "outcome", "version", "variant", "experiment", "session_id", "unit_id")


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.get("/ui/traces")
def search(
    request: Request,
    q: str = "",
    since: str = "24h",
    attr: Annotated[list[str] | None, Query()] = None,
    cursor: str | None = None,
) -> Response:
    """Runs newest first, filtered by agent, outcome, version, variant, session, unit, time."""
    session = session_of(request)
    wanted = q.strip()
    if wanted:
        if not _TRACE_ID.match(wanted):
            raise InvalidInputError(
                f"{wanted[:64]!r} is not a trace id: paste the 32 hex characters of one"
            )
        return RedirectResponse(f"/ui/traces/{wanted.lower()}", status_code=303)
    if since not in {choice for choice, _ in SINCE_CHOICES}:
        raise InvalidInputError(f"unknown time range {since[:20]!r}; use 1h, 24h, 7d, 30d or all")
    values = {name: (request.query_params.get(name) or "").strip() for name in FILTERS}
    attrs = [a for a in (attr or []) if a.strip()]
    where = run_filter(
        now_ms=request.app.state.clock.now_ms(),
        agent=values["agent"] or None,
        outcome=values["outcome"] or None,
        version=values["version"] or None,
        variant=values["variant"] or None,
        experiment=values["experiment"] or None,
        session_id=values["session_id"] or None,
        unit_id=values["unit_id"] or None,
        since=None if since == "all" else since,
        attr=attrs,
    )
    store = _store(request)
    runs, next_cursor = store.queries.list_runs(
        session.project_id, where, limit=PAGE, cursor=cursor
    )
    kept = [(name, value) for name, value in values.items() if value]
    kept += [("since", since)] + [("attr", a) for a in attrs]
    return dashboard_of(request).render(
        request,
        "traces.html",
        {
            "runs": runs,
            "values": values,
            "attrs": attrs,
            "since": since,
            "since_choices": SINCE_CHOICES,
            "outcomes": OUTCOMES,
            "agents": [row["agent"] for row in store.configs.list_agents(session.project_id)],
            "next_url": f"/ui/traces?{urlencode([*kept, ('cursor', next_cursor)])}"
            if next_cursor
            else None,
            "first_url": f"/ui/traces?{urlencode(kept)}" if cursor else None,
            "filtered": bool(kept[:-1] or attrs),
        },
    )


@router.get("/ui/traces/{trace_id}")
def trace_page(request: Request, trace_id: str) -> Response:
    """One trace: its run, a waterfall of spans with their details, and its events."""
    session = session_of(request)
    if not _TRACE_ID.match(trace_id):
        raise InvalidInputError(f"trace id must be 32 hex characters, got {trace_id[:64]!r}")
    trace = _store(request).queries.get_trace(session.project_id, trace_id)
    rows, events, duration_ms = waterfall.build(trace)
    return dashboard_of(request).render(
        request,
        "trace.html",
        {
            "trace": trace,
            "run": trace["run"],
            "rows": rows,
            "events": events,
            "duration_ms": duration_ms,
            "headline": waterfall.headline,
        },
    )


def _excerpt(trace: dict[str, Any]) -> tuple[str, str]:
    """The last user message a run received and the last answer it gave, if recorded."""
    asked = answered = ""
    for row in trace["spans"]:
        attributes = row["attributes"]
        for role, text in waterfall.message_texts(attributes.get(sc.GEN_AI_INPUT_MESSAGES)):
            if role == "user" and text:
                asked = asked or text
        for _role, text in waterfall.message_texts(attributes.get(sc.GEN_AI_OUTPUT_MESSAGES)):
            if text:
                answered = text
    return asked, answered


@router.get("/ui/sessions/{session_id}")
def session_page(request: Request, session_id: str) -> Response:
    """A conversation: its runs in order on one timeline, with what was asked and answered."""
    session = session_of(request)
    if not session_id or len(session_id) > 256:
        raise InvalidInputError("a session id has 1 to 256 characters")
    store = _store(request)
    where = run_filter(now_ms=request.app.state.clock.now_ms(), session_id=session_id)
    runs, more = store.queries.list_runs(session.project_id, where, limit=SESSION_RUNS)
    if not runs:
        raise NotFoundError(f"no runs in session {session_id!r} in this project")
    runs.reverse()  # oldest first: a conversation reads forwards
    start = runs[0]["started_ms"]
    end = max(r["started_ms"] + (r["duration_ms"] or 0) for r in runs)
    span = max(end - start, 1)
    excerpts = {}
    for run in runs[:SESSION_DETAILS]:
        try:
            excerpts[run["trace_id"]] = _excerpt(
                store.queries.get_trace(session.project_id, run["trace_id"])
            )
        except NotFoundError:
            continue
    return dashboard_of(request).render(
        request,
        "session.html",
        {
            "session_id": session_id,
            "runs": runs,
            "truncated": more is not None,
            "bars": [
                ((r["started_ms"] - start) / span, (r["duration_ms"] or 0) / span) for r in runs
            ],
            "excerpts": excerpts,
            "duration_ms": end - start,
            "total_cost": sum(r["cost_usd"] or 0 for r in runs),
        },
    )

"""Trace search and the span tree of one trace."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from tuneloop.errors import InvalidInputError
from tuneloop.server.auth import AdminPrincipal
from tuneloop.server.params import run_filter
from tuneloop.store.queries import MAX_PAGE

router = APIRouter(prefix="/api/v1", tags=["traces"])
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")


@router.get("/traces")
def list_traces(
    request: Request,
    principal: AdminPrincipal,
    agent: str | None = None,
    version: str | None = None,
    variant: str | None = None,
    experiment: str | None = None,
    outcome: str | None = None,
    unit_id: str | None = None,
    session_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    attr: Annotated[list[str] | None, Query(description="KEY=VALUE; repeatable")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Runs newest first, filtered; pass ``next_cursor`` back as ``cursor`` for the next page."""
    where = run_filter(
        now_ms=request.app.state.clock.now_ms(),
        agent=agent,
        version=version,
        variant=variant,
        experiment=experiment,
        outcome=outcome,
        unit_id=unit_id,
        session_id=session_id,
        since=since,
        until=until,
        attr=attr,
    )
    items, next_cursor = request.app.state.store.queries.list_runs(
        principal.project_id, where, limit=limit, cursor=cursor
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/traces/{trace_id}")
def get_trace(request: Request, principal: AdminPrincipal, trace_id: str) -> dict[str, Any]:
    """A trace's run facts, span tree (attributes, events) and feedback."""
    if not _TRACE_ID.match(trace_id):
        raise InvalidInputError(f"trace id must be 32 hex characters, got {trace_id[:64]!r}")
    result: dict[str, Any] = request.app.state.store.queries.get_trace(
        principal.project_id, trace_id
    )
    return result

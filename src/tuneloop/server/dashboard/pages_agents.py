"""One agent: its health, versions and channels, diffs, rollback and audit trail."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import URL

from tuneloop.config.diff import diff_configs
from tuneloop.config.versions import PRODUCTION, VersionInfo, semver_key, validate_agent
from tuneloop.errors import ConflictError, InvalidInputError, NotFoundError
from tuneloop.server.dashboard.health import WINDOW_NAMES, agent_health, tools_of, window_named
from tuneloop.server.dashboard.routing import DashboardRoute, form_of, session_of
from tuneloop.server.dashboard.site import dashboard_of
from tuneloop.server.http_errors import status_of
from tuneloop.store import Store
from tuneloop.store.filters import RunFilter
from tuneloop.store.schema import config_audit

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
AUDIT_ROWS = 30
VERSION_ROWS = 50
RECENT_RUNS = 10


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def recent_audit(store: Store, project_id: str, agent: str, limit: int) -> list[dict[str, Any]]:
    """The agent's newest audit rows first (``ix_config_audit_agent``, read backwards)."""
    a = config_audit.c
    query = (
        sa.select(a.seq, a.action, a.channel, a.key_id, a.created_ms, a.before_hash)
        .add_columns(a.after_hash, a.detail)
        .where(a.project_id == project_id, a.agent == agent)
        .order_by(a.seq.desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def _older(versions: list[VersionInfo], current: VersionInfo | None) -> list[VersionInfo]:
    """Versions a channel on ``current`` can roll back to: created before it."""
    if current is None:
        return []
    mark = (current.created_ms, semver_key(current.label))
    return [v for v in versions if (v.created_ms, semver_key(v.label)) < mark]


def _agent_context(
    request: Request, agent: str, window_name: str | None, *, error: str = ""
) -> dict[str, Any]:
    session = session_of(request)
    project = session.project_id
    store = _store(request)
    now_ms = request.app.state.clock.now_ms()
    window = window_named(window_name)
    # The two rollup reads are most of the page's time; SQLite and PostgreSQL run them
    # side by side on two pooled connections while this thread reads the rest.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dashboard") as pool:
        metrics = pool.submit(agent_health, store.queries, project, agent, window, now_ms=now_ms)
        tools = pool.submit(tools_of, store.queries, project, agent, window, now_ms=now_ms)
        context = _config_context(request, agent, store)
        health, per_version = metrics.result()
        per_tool = tools.result()
    return {
        **context,
        "window": window,
        "windows": WINDOW_NAMES,
        "health": health,
        "per_version": per_version,
        "per_tool": per_tool,
        "error": error,
    }


def _config_context(request: Request, agent: str, store: Store) -> dict[str, Any]:
    """Versions, channels, recent runs, audit, flags and allocations of ``agent``."""
    project = session_of(request).project_id
    versions = store.configs.list_versions(project, agent, limit=VERSION_ROWS)
    recent, _ = store.queries.list_runs(project, RunFilter(agent=agent), limit=RECENT_RUNS)
    if not versions and not recent:
        raise NotFoundError(f"no agent {agent!r} in this project: it has no runs and no versions")
    by_hash = {v.hash: v for v in versions}
    channels: list[dict[str, Any]] = []
    for info in store.configs.list_channels(project, agent):
        older = _older(versions, by_hash.get(info.version))
        previous = store.configs.previous_version(project, agent, info.channel)
        channels.append(
            {
                "info": info,
                "older": older,
                "previous": previous if previous in {v.hash for v in older} else None,
            }
        )
    pointers: dict[str, list[str]] = {}
    for entry in channels:
        pointers.setdefault(entry["info"].version, []).append(entry["info"].channel)
    return {
        "agent": agent,
        "versions": versions,
        "labels": {v.hash: v.label for v in versions},
        "pointers": pointers,
        "channels": channels,
        "recent": recent,
        "audit": recent_audit(store, project, agent, AUDIT_ROWS),
        "flags": store.agent_state.list_flags(project, agent),
        "allocations": store.agent_state.list_allocations(project, agent),
        "notice": _notice(request, channels),
    }


def _notice(request: Request, channels: list[dict[str, Any]]) -> str:
    """The message after a rollback, written from the channel's state now."""
    moved = request.query_params.get("rolled_back")
    for channel in channels:
        info = channel["info"]
        if info.channel == moved:
            return f"{info.channel} rolled back: it now serves {info.label} ({info.version[:12]})."
    return ""


@router.get("/ui/agents/{agent}")
def agent_page(request: Request, agent: str, window: str | None = None) -> Response:
    """Health over a window, figures per version and tool, versions, channels, audit."""
    context = _agent_context(request, validate_agent(agent), window)
    return dashboard_of(request).render(request, "agent.html", context)


@router.get("/ui/agents/{agent}/diff")
def diff_page(request: Request, agent: str) -> Response:
    """What changed between two versions: path by path, and prompt text diffs."""
    session = session_of(request)
    configs = _store(request).configs
    project = session.project_id
    validate_agent(agent)
    new_ref = request.query_params.get("to") or PRODUCTION
    new = configs.get_version(project, agent, new_ref)
    old_ref = request.query_params.get("from") or (new.parents[0] if new.parents else "")
    if not old_ref:
        raise InvalidInputError(
            f"version {new.label} of {agent!r} has no parent; choose a version to compare with"
        )
    old = configs.get_version(project, agent, old_ref)
    diff = diff_configs(old.config, new.config, old=old.label, new=new.label)
    return dashboard_of(request).render(
        request,
        "diff.html",
        {
            "agent": agent,
            "old": old,
            "new": new,
            "diff": diff,
            "versions": configs.list_versions(project, agent, limit=VERSION_ROWS),
        },
    )


@router.post("/ui/agents/{agent}/channels/{channel}/rollback")
def rollback(request: Request, agent: str, channel: str) -> Response:
    """Move a channel back to an earlier version; a compare-and-set on what the page showed."""
    session = session_of(request)
    form = form_of(request)
    configs = _store(request).configs
    validate_agent(agent)
    expected = form.get("expected_version") or None
    target = form.get("version") or configs.previous_version(session.project_id, agent, channel)
    try:
        if target is None:
            raise NotFoundError(
                f"channel {channel!r} of {agent!r} has no earlier version to roll back to"
            )
        configs.move_channel(
            session.project_id,
            agent,
            channel,
            target,
            expected=expected,
            author=session.key_id,
            now_ms=request.app.state.clock.now_ms(),
            rollback=True,
        )
    except (ConflictError, InvalidInputError, NotFoundError) as exc:
        context = _agent_context(request, agent, None, error=str(exc))
        return dashboard_of(request).render(
            request, "agent.html", context, status_code=status_of(exc)
        )
    back = URL(f"/ui/agents/{agent}").include_query_params(rolled_back=channel)
    return RedirectResponse(f"{back}#channels", status_code=303)

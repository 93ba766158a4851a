"""Rollouts: the list; one rollout's steps, and its timeline with each evaluation's guard figures.

Pause, resume, approve and abort call `RolloutService` (``store.rollout_ops``), as
the JSON API does, so every action lands in the rollout's timeline with its actor.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import URL

from tuneloop.errors import TuneloopError
from tuneloop.rollouts.metrics import METRICS, format_difference, format_value
from tuneloop.server.dashboard.routing import DashboardRoute, form_of, session_of
from tuneloop.server.dashboard.site import NavEntry, dashboard_of
from tuneloop.server.http_errors import status_of
from tuneloop.store import Store
from tuneloop.store.rollouts import RolloutRecord

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
NAV = NavEntry("Rollouts", "/ui/rollouts", ("/ui/rollouts",))
LIST_ROWS = 100
TIMELINE_ROWS = 100
GUARD_CSS = {"non_inferior": "good", "breached": "bad", "inconclusive": "warn"}
DECISION_CSS = {"start": "info", "advance": "good", "promote": "good", "rollback": "bad",
                "abort": "bad", "pause": "warn", "resume": "info", "approve": "good",
                "hold": "idle"}  # fmt: skip


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def metric_label(metric: str) -> str:
    """A guard metric's name as people say it (``p95 latency``)."""
    info = METRICS.get(metric)  # type: ignore[call-overload]
    return metric if info is None else str(info.label)


def guard_line(check: dict[str, Any]) -> str:
    """A recorded guard check in one line: how much worse, its bounds, and the margin."""
    metric, relative = check["metric"], check["margin_kind"] == "relative"
    if check.get("worse_by") is None or check.get("lower_bound") is None:
        return check.get("reason") or "not enough data"

    def diff(value: float) -> str:
        return format_difference(metric, value, relative=relative)

    return (
        f"worse by {diff(check['worse_by'])} "
        f"(bounds {diff(check['lower_bound'])} … {diff(check['upper_bound'])}), "
        f"margin {diff(check['margin']).lstrip('+')}"
    )


def steps_of(record: RolloutRecord) -> list[dict[str, Any]]:
    """Each step with its state: done, current, waiting (for approval) or to come."""
    out = []
    for index, step in enumerate(record.definition.steps):
        if record.status == "promoted" or index < record.step:
            state = "done"
        elif index == record.step:
            state = "current" if record.active else record.status
        elif step.approval and index not in record.approved_steps:
            state = "needs approval"
        else:
            state = "approved" if step.approval else "to come"
        out.append({"number": index + 1, "spec": step, "state": state})
    return out


def next_approval(record: RolloutRecord) -> int | None:
    """The step number (from 1) a person may approve now, if any."""
    if not record.active:
        return None
    for index, step in enumerate(record.definition.steps):
        if index > record.step and step.approval and index not in record.approved_steps:
            return index + 1
    return None


@router.get("/ui/rollouts")
def rollouts_page(request: Request, agent: str = "", active: str = "") -> Response:
    """Every rollout, newest first (``active``: running or paused only)."""
    session = session_of(request)
    records = _store(request).rollouts.find(
        session.project_id, agent=agent.strip() or None, active_only=active == "1",
        limit=LIST_ROWS,
    )  # fmt: skip
    return dashboard_of(request).render(
        request, "rollouts.html", {"records": records, "agent": agent, "active": active == "1"}
    )


def _rollout_context(request: Request, rollout_id: str, *, error: str = "") -> dict[str, Any]:
    session = session_of(request)
    store = _store(request)
    record = store.rollouts.get(session.project_id, rollout_id)
    # Timeline seq numbers are the revisions that wrote them: the last rows, read directly.
    after = max(record.revision - TIMELINE_ROWS, 0)
    timeline = store.rollouts.timeline(session.project_id, rollout_id, after_seq=after)
    timeline.reverse()
    return {
        "r": record,
        "steps": steps_of(record),
        "timeline": timeline,
        "truncated": after > 0,
        "approvable": next_approval(record),
        "guard_line": guard_line,
        "metric_label": metric_label,
        "format_value": lambda metric, value: format_value(metric, value),
        "decision_css": DECISION_CSS,
        "guard_css": GUARD_CSS,
        "error": error,
        "notice": request.query_params.get("done", ""),
    }


@router.get("/ui/rollouts/{rollout_id}")
def rollout_page(request: Request, rollout_id: str) -> Response:
    """Steps, the candidate's weight, and the timeline of evaluations and actions."""
    context = _rollout_context(request, rollout_id)
    return dashboard_of(request).render(request, "rollout.html", context)


def _act(request: Request, rollout_id: str, action: str) -> Response:
    session = session_of(request)
    form = form_of(request)
    ops = _store(request).rollout_ops
    now_ms: int = request.app.state.clock.now_ms()
    project, actor, reason = session.project_id, session.key_id, form.get("reason").strip()
    try:
        if action == "pause":
            ops.pause(project, rollout_id, actor=actor, now_ms=now_ms, reason=reason)
        elif action == "resume":
            ops.resume(project, rollout_id, actor=actor, now_ms=now_ms)
        elif action == "approve":
            step = form.get("step")
            ops.approve(
                project, rollout_id, actor=actor, now_ms=now_ms,
                step=int(step) if step.isdigit() else None,
            )  # fmt: skip
        else:
            ops.stop(project, rollout_id, actor=actor, now_ms=now_ms, reason=reason)
    except TuneloopError as exc:
        context = _rollout_context(request, rollout_id, error=str(exc))
        return dashboard_of(request).render(
            request, "rollout.html", context, status_code=status_of(exc)
        )
    done = {"pause": "paused", "resume": "resumed", "approve": "approved", "abort": "aborted"}
    back = URL(f"/ui/rollouts/{rollout_id}").include_query_params(done=done[action])
    return RedirectResponse(str(back), status_code=303)


@router.post("/ui/rollouts/{rollout_id}/pause")
def pause(request: Request, rollout_id: str) -> Response:
    """Hold at the current weight (guards still roll back)."""
    return _act(request, rollout_id, "pause")


@router.post("/ui/rollouts/{rollout_id}/resume")
def resume(request: Request, rollout_id: str) -> Response:
    """Continue a paused rollout."""
    return _act(request, rollout_id, "resume")


@router.post("/ui/rollouts/{rollout_id}/approve")
def approve(request: Request, rollout_id: str) -> Response:
    """Approve the next step that needs a person's approval."""
    return _act(request, rollout_id, "approve")


@router.post("/ui/rollouts/{rollout_id}/abort")
def abort(request: Request, rollout_id: str) -> Response:
    """Stop the rollout: the candidate gets no more units; production is unchanged."""
    return _act(request, rollout_id, "abort")

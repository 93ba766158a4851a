"""Alert rules, their firing/resolved history and webhook deliveries over HTTP (admin keys).

Rules are evaluated by the controller on every tick; ``GET /alert-events`` is the
history the dashboard shows, newest first, and each event lists its deliveries
(attempts, status, last error).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from tuneloop.alerts import AlertRuleSpec
from tuneloop.config.versions import validate_agent
from tuneloop.server.auth import AdminPrincipal
from tuneloop.store import Store

router = APIRouter(prefix="/api/v1", tags=["alerts"])


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _now(request: Request) -> int:
    now: int = request.app.state.clock.now_ms()
    return now


@router.post("/agents/{agent}/alerts", status_code=201)
def create_rule(
    request: Request, principal: AdminPrincipal, agent: str, body: AlertRuleSpec
) -> dict[str, Any]:
    """Add a threshold rule to an agent (409 if it has one by that name)."""
    rule = _store(request).alerts.create_rule(
        principal.project_id, validate_agent(agent), body, author=principal.key_id,
        now_ms=_now(request),
    )  # fmt: skip
    return rule.to_data()


@router.get("/alerts")
def list_rules(
    request: Request, principal: AdminPrincipal, agent: str | None = None
) -> dict[str, Any]:
    """The project's rules (of one agent), with their state: ok, pending or firing."""
    rules = _store(request).alerts.list_rules(principal.project_id, agent=agent)
    return {"items": [rule.to_data() for rule in rules]}


@router.get("/alerts/{rule_id}")
def get_rule(request: Request, principal: AdminPrincipal, rule_id: str) -> dict[str, Any]:
    """One rule and its state."""
    return _store(request).alerts.get_rule(principal.project_id, rule_id).to_data()


@router.put("/alerts/{rule_id}")
def replace_rule(
    request: Request, principal: AdminPrincipal, rule_id: str, body: AlertRuleSpec
) -> dict[str, Any]:
    """Replace a rule's definition (a firing rule stays firing until it resolves)."""
    rule = _store(request).alerts.replace_rule(
        principal.project_id, rule_id, body, now_ms=_now(request)
    )
    return rule.to_data()


@router.delete("/alerts/{rule_id}", status_code=204)
def delete_rule(request: Request, principal: AdminPrincipal, rule_id: str) -> Response:
    """Delete a rule; its events stay in the history."""
    _store(request).alerts.delete_rule(principal.project_id, rule_id)
    return Response(status_code=204)


@router.get("/alert-events")
def list_events(
    request: Request,
    principal: AdminPrincipal,
    agent: str | None = None,
    status: Literal["firing", "resolved"] | None = None,
    rule_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Firing and resolved events, newest first, each with its webhook deliveries."""
    alerts = _store(request).alerts
    events = alerts.events(
        principal.project_id, agent=agent, status=status, rule_id=rule_id, limit=limit
    )
    for event in events:
        event["deliveries"] = [
            d.to_data() for d in alerts.deliveries(principal.project_id, event_id=event["event_id"])
        ]
    return {"items": events}

"""Alerts: the rules firing now, every rule's state, and the firing/resolved history.

It reads `AlertRepository` (``store.alerts``) as ``/api/v1/alerts`` and
``/api/v1/alert-events`` do; rules are evaluated by the controller, not by this page.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import APIRouter, Request, Response

from tuneloop.alerts import EventStatus
from tuneloop.errors import InvalidInputError
from tuneloop.server.dashboard.format import fmt_duration, fmt_number, fmt_pct, fmt_usd
from tuneloop.server.dashboard.routing import DashboardRoute, session_of
from tuneloop.server.dashboard.site import NavEntry, dashboard_of
from tuneloop.store import Store
from tuneloop.store.alerts import Delivery

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
NAV = NavEntry("Alerts", "/ui/alerts", ("/ui/alerts",))
EVENTS = 100
DELIVERIES = 300
RATE_METRICS = frozenset({"error_rate", "task_success_rate", "escalation_rate",
                          "tool_error_rate", "guardrail_trigger_rate"})  # fmt: skip


def alert_value(value: float | None, metric: str | None) -> str:
    """A rule's value or threshold in its metric's units."""
    if metric in RATE_METRICS:
        return fmt_pct(value)
    if metric == "latency_p95_ms":
        return fmt_duration(value)
    if metric == "cost_per_run":
        return fmt_usd(value)
    return fmt_number(value, 3)


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.get("/ui/alerts")
def alerts_page(request: Request, status: str = "", agent: str = "") -> Response:
    """Firing rules first, then every rule, then the event history newest first."""
    session = session_of(request)
    if status not in ("", "firing", "resolved"):
        raise InvalidInputError(f"unknown event status {status[:20]!r}; use firing or resolved")
    alerts = _store(request).alerts
    wanted = agent.strip() or None
    rules = alerts.list_rules(session.project_id, agent=wanted)
    wanted_status = cast("EventStatus | None", status or None)
    events = alerts.events(session.project_id, agent=wanted, status=wanted_status, limit=EVENTS)
    deliveries: dict[str, list[Delivery]] = {}
    for delivery in alerts.deliveries(session.project_id, limit=DELIVERIES):
        deliveries.setdefault(delivery.event_id, []).append(delivery)
    context: dict[str, Any] = {
        "firing": [rule for rule in rules if rule.state.state == "firing"],
        "rules": rules,
        "events": events,
        "deliveries": deliveries,
        "status": status,
        "agent": agent,
        "alert_value": alert_value,
    }
    return dashboard_of(request).render(request, "alerts.html", context)

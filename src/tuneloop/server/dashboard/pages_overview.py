"""The overview: one health card per agent, with sparklines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from tuneloop.config.allocations import AllocationSpec
from tuneloop.server.dashboard.health import (
    WINDOW_NAMES,
    Health,
    Thresholds,
    agents_health,
    health_of,
    window_named,
)
from tuneloop.server.dashboard.routing import DashboardRoute, session_of
from tuneloop.server.dashboard.site import NavEntry, dashboard_of
from tuneloop.store import Store

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
NAV = NavEntry("Overview", "/ui/", ("/ui/", "/ui/agents"))


@dataclass(frozen=True, slots=True)
class Card:
    """An agent's card: its health, production version and running allocations."""

    health: Health
    production: str | None
    allocations: list[AllocationSpec]


def _cards(store: Store, project_id: str, window_name: str | None, now_ms: int) -> dict[str, Any]:
    window = window_named(window_name)
    healths = agents_health(store.queries, project_id, window, now_ms=now_ms)
    configured = {row["agent"]: row for row in store.configs.list_agents(project_id)}
    starts = window.starts(now_ms)
    cards = []
    for agent in sorted(healths.keys() | configured.keys()):
        health = healths.get(agent) or health_of(agent, {}, starts, thresholds=Thresholds())
        production = configured.get(agent, {}).get("channels", {}).get("production")
        allocations = store.agent_state.list_allocations(project_id, agent)
        cards.append(Card(health, production, allocations))
    # Busiest agents first; agents without runs in the window last, by name.
    cards.sort(key=lambda card: (-card.health.runs, card.health.agent))
    total_runs = sum(card.health.runs for card in cards)
    total_cost = sum(card.health.summary["total_cost_usd"] for card in cards)
    return {
        "window": window,
        "windows": WINDOW_NAMES,
        "cards": cards,
        "total_runs": total_runs,
        "total_cost": total_cost,
        "attention": sum(1 for card in cards if card.health.status in ("warn", "bad")),
    }


@router.get("/ui")
def ui_root() -> Response:
    """``/ui`` is ``/ui/``."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
def overview(request: Request, window: str | None = None) -> Response:
    """Health cards: completion, p95 latency, cost per run, escalations, errors."""
    session = session_of(request)
    store: Store = request.app.state.store
    context = _cards(store, session.project_id, window, request.app.state.clock.now_ms())
    return dashboard_of(request).render(
        request, "overview.html", {**context, "server_url": str(request.base_url).rstrip("/")}
    )

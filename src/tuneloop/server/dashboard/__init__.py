"""The dashboard: server-rendered pages under ``/ui``, no build step, no external assets.

Each area is a module with a ``router`` and, if it has a top-level page, a ``NAV``
entry; :data:`AREAS` lists them in navigation order. A new area (experiments,
rollouts, recommendations...) is one more module and one more line here.
"""

from __future__ import annotations

from types import ModuleType

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from tuneloop.server.dashboard import (
    auth,
    pages_agents,
    pages_alerts,
    pages_evals,
    pages_experiments,
    pages_overview,
    pages_recommendations,
    pages_review,
    pages_rollouts,
    pages_traces,
)
from tuneloop.server.dashboard.site import STATIC_DIR, Dashboard
from tuneloop.settings import Settings

AREAS: tuple[ModuleType, ...] = (
    pages_overview,
    pages_traces,
    pages_agents,
    pages_experiments,
    pages_rollouts,
    pages_recommendations,
    pages_evals,
    pages_review,
    pages_alerts,
)


def mount_dashboard(app: FastAPI, settings: Settings) -> Dashboard:
    """Add the dashboard's routes, static files and ``/`` → ``/ui/`` to ``app``."""
    dashboard = Dashboard(settings.resolved_secret_key)
    app.state.dashboard = dashboard
    app.include_router(auth.public_router)
    app.include_router(auth.router)
    for area in AREAS:
        app.include_router(area.router)
        dashboard.add_filters(getattr(area, "TEMPLATE_FILTERS", {}))
        entry = getattr(area, "NAV", None)
        if entry is not None:
            dashboard.nav.append(entry)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")

    @app.get("/", include_in_schema=False)
    def _root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    return dashboard


__all__ = ["AREAS", "Dashboard", "mount_dashboard"]

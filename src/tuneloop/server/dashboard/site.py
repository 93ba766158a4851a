"""The dashboard's shared parts: templates, navigation, the session key, page rendering.

One :class:`Dashboard` lives on ``app.state.dashboard``. Each area of the dashboard
(overview, traces, agents, and later experiments, rollouts...) is a router plus
templates; an area that is mounted adds its :class:`NavEntry`, so the navigation only
ever shows pages that exist.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from tuneloop._version import __version__
from tuneloop.server.dashboard import charts
from tuneloop.server.dashboard.format import FILTERS
from tuneloop.server.dashboard.sessions import Session, SessionCodec

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"
SESSION_COOKIE = "tl_session"
LOGIN_COOKIE = "tl_login"
# Pages may load only their own CSS, JS and images; forms post only to this origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True, slots=True)
class NavEntry:
    """A link in the top navigation; it is active on pages under any of ``prefixes``."""

    label: str
    path: str
    prefixes: tuple[str, ...]

    def active(self, path: str) -> bool:
        """True when ``path`` belongs to this entry's area."""
        return any(
            path == prefix or (not prefix.endswith("/") and path.startswith(prefix + "/"))
            for prefix in self.prefixes
        )


class Dashboard:
    """Templates, navigation and the session codec of one application."""

    def __init__(self, secret: Callable[[], bytes]) -> None:
        self._secret = secret
        self._codec: SessionCodec | None = None
        self._lock = threading.Lock()
        self.nav: list[NavEntry] = []
        self._filters: dict[str, Any] = dict(FILTERS)
        self._env: jinja2.Environment | None = None

    def add_filters(self, filters: Mapping[str, Any]) -> None:
        """Make ``filters`` available to every template (an area's own filters)."""
        with self._lock:
            self._filters.update(filters)
            if self._env is not None:
                self._env.filters.update(filters)

    @property
    def env(self) -> jinja2.Environment:
        """The template environment, built when the first page is rendered.

        Jinja2 is imported here, not at startup: a server that only ingests never loads it.
        """
        env = self._env
        if env is not None:
            return env
        import jinja2

        with self._lock:
            if self._env is None:
                env = jinja2.Environment(
                    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
                    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                    undefined=jinja2.StrictUndefined,
                    trim_blocks=True,
                    lstrip_blocks=True,
                )
                env.filters.update(self._filters)
                env.globals.update(
                    version=__version__,
                    sparkline=charts.sparkline,
                    line_chart=charts.line_chart,
                    bar_chart=charts.bar_chart,
                    span_bar=charts.span_bar,
                    Series=charts.Series,
                    fmt=dict(FILTERS),
                )
                self._env = env
            return self._env

    @property
    def codec(self) -> SessionCodec:
        """The session codec; the key is read (or created) on first use, not at startup."""
        with self._lock:
            if self._codec is None:
                self._codec = SessionCodec(self._secret())
            return self._codec

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        status_code: int = 200,
        session: Session | None = None,
    ) -> HTMLResponse:
        """A page: ``template`` with ``context``, the navigation and the signed-in session."""
        session = session or getattr(request.state, "session", None)
        path = request.url.path
        html = self.env.get_template(template).render(
            {
                "request_path": path,
                "nav": [(entry, entry.active(path)) for entry in self.nav],
                "session": session,
                "csrf": session.csrf if session else "",
                **context,
            }
        )
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def dashboard_of(request: Request) -> Dashboard:
    """The application's dashboard."""
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard

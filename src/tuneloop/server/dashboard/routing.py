"""Every dashboard route goes through :class:`DashboardRoute`.

Before the endpoint runs it resolves the session (a page without one redirects to the
login form) and, on any request that can change state (anything but GET and HEAD),
parses the form and refuses it unless it carries the session's CSRF token. An endpoint
cannot forget the check: it happens here, for every route of every dashboard router.
Errors become HTML pages rather than the API's JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from tuneloop.errors import TuneloopError
from tuneloop.server.dashboard.sessions import Session, same_token
from tuneloop.server.dashboard.site import SECURITY_HEADERS, SESSION_COOKIE, dashboard_of
from tuneloop.server.http_errors import status_of
from tuneloop.store import Store

MAX_FORM_BYTES = 64 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Form:
    """A submitted ``application/x-www-form-urlencoded`` form."""

    fields: dict[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        """The first value of ``name``, or ``default``."""
        values = self.fields.get(name)
        return values[0] if values else default


class FormRejected(Exception):
    """A state-changing request the dashboard refuses (bad CSRF token, bad body)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


async def read_form(request: Request) -> Form:
    """Parse the request body as a URL-encoded form (at most 64 KiB)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if not body and not content_type:
        return Form({})  # nothing submitted: an empty form, refused for its missing token
    if content_type != "application/x-www-form-urlencoded":
        raise FormRejected(415, "the dashboard accepts only its own forms (URL-encoded)")
    if len(body) > MAX_FORM_BYTES:
        raise FormRejected(413, f"form larger than {MAX_FORM_BYTES} bytes")
    fields = parse_qs(
        body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=200
    )
    return Form(fields)


def live_session(request: Request) -> Session | None:
    """The request's session if its cookie is valid and its key is still a live admin key."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    now_ms: int = request.app.state.clock.now_ms()
    session = dashboard_of(request).codec.decode(token, now_ms=now_ms)
    if session is None:
        return None
    store: Store = request.app.state.store
    for key in store.keys.list_keys(session.project_id):
        if key.key_id == session.key_id:
            live = key.revoked_ms is None and key.scope == "admin"
            return session if live else None
    return None


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path only, never another site."""
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


def login_redirect(request: Request) -> RedirectResponse:
    """303 to the login form, coming back to this page afterwards."""
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method not in SAFE_METHODS:
        back = "/ui/"  # a form posted without a session is not replayed after login
    return RedirectResponse(f"/ui/login?next={quote(safe_next(back))}", status_code=303)


def _error_page(request: Request, status_code: int, message: str) -> Response:
    return dashboard_of(request).render(
        request,
        "error.html",
        {"status_code": status_code, "message": message},
        status_code=status_code,
    )


class DashboardRoute(APIRoute):
    """A route behind the dashboard login, with CSRF checks and HTML error pages."""

    public = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler with the session and CSRF checks."""
        handler = super().get_route_handler()
        public = self.public

        async def guarded(request: Request) -> Response:
            try:
                if not public:
                    session = await run_in_threadpool(live_session, request)
                    if session is None:
                        return login_redirect(request)
                    request.state.session = session
                    if request.method not in SAFE_METHODS:
                        form = await read_form(request)
                        if not same_token(form.get("csrf") or None, session.csrf):
                            raise FormRejected(
                                403,
                                "refused: this form has no valid CSRF token. Reload the page "
                                "and submit it again.",
                            )
                        request.state.form = form
                response = await handler(request)
            except FormRejected as exc:
                return _error_page(request, exc.status_code, str(exc))
            except TuneloopError as exc:
                return _error_page(request, status_of(exc), str(exc))
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return guarded


class PublicRoute(DashboardRoute):
    """A dashboard route reachable without a session (the login form)."""

    public = True


def session_of(request: Request) -> Session:
    """The session :class:`DashboardRoute` checked for this request."""
    session: Session = request.state.session
    return session


def form_of(request: Request) -> Form:
    """The form :class:`DashboardRoute` parsed and CSRF-checked for this request."""
    form: Form = request.state.form
    return form

"""Signing in with an admin API key, and signing out.

The login form is protected like every other form: ``GET /ui/login`` sets a signed,
short-lived token both as a cookie and as a hidden field, and ``POST /ui/login``
accepts only a form whose field matches the cookie (so another site cannot sign a
browser in under its own key). A valid admin key gets a session cookie: HttpOnly,
SameSite=Lax, Secure over HTTPS, expiring after 12 hours.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from tuneloop.errors import AuthError
from tuneloop.server.auth import Authenticator
from tuneloop.server.dashboard.routing import (
    DashboardRoute,
    PublicRoute,
    live_session,
    read_form,
    safe_next,
)
from tuneloop.server.dashboard.sessions import LOGIN_FORM_TTL_MS, SESSION_TTL_MS
from tuneloop.server.dashboard.site import LOGIN_COOKIE, SESSION_COOKIE, dashboard_of

public_router = APIRouter(route_class=PublicRoute, include_in_schema=False)
router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


def _now(request: Request) -> int:
    now: int = request.app.state.clock.now_ms()
    return now


def _login_page(
    request: Request, *, next_path: str, message: str = "", status_code: int = 200
) -> Response:
    dashboard = dashboard_of(request)
    token = dashboard.codec.login_token(now_ms=_now(request))
    response = dashboard.render(
        request,
        "login.html",
        {"login_token": token, "next_path": next_path, "message": message},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_FORM_TTL_MS // 1000,
        path="/ui/login",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@public_router.get("/ui/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form (or straight on, when the browser is signed in already)."""
    target = safe_next(next)
    if await run_in_threadpool(live_session, request) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_page(request, next_path=target)


@public_router.post("/ui/login")
async def login(request: Request) -> Response:
    """Check the login token and the admin key; set the session cookie."""
    form = await read_form(request)
    target = safe_next(form.get("next"))
    dashboard = dashboard_of(request)
    token_ok = dashboard.codec.check_login_token(
        form.get("csrf"), request.cookies.get(LOGIN_COOKIE, ""), now_ms=_now(request)
    )
    if not token_ok:
        return _login_page(
            request,
            next_path=target,
            message="The sign-in form expired or did not come from this server; try again.",
            status_code=403,
        )
    authenticator: Authenticator = request.app.state.authenticator
    try:
        principal = await run_in_threadpool(authenticator.principal, form.get("key").strip())
    except AuthError as exc:
        return _login_page(request, next_path=target, message=str(exc), status_code=401)
    if principal.scope != "admin":
        return _login_page(
            request,
            next_path=target,
            message=(
                f"key {principal.key_id!r} has scope {principal.scope!r}; the dashboard needs "
                "an admin key (tuneloop keys create --scope admin)"
            ),
            status_code=403,
        )
    codec = dashboard.codec
    session = codec.new_session(principal.key_id, principal.project_id, now_ms=_now(request))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        codec.encode(session),
        max_age=SESSION_TTL_MS // 1000,
        path="/ui",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
    return response


@router.post("/ui/logout")
def logout() -> Response:
    """End the session (the CSRF check ran in :class:`DashboardRoute`)."""
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="lax")
    return response

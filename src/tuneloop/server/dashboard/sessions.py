"""Signed session cookies and CSRF tokens, with nothing kept on the server.

A session cookie is ``payload.mac``: the payload is base64url JSON (key id, project,
CSRF token, issue and expiry times) and the mac an HMAC-SHA256 of it under the server's
secret key (``TUNELOOP_SECRET_KEY``), so replicas sharing the key accept each other's
sessions. The clear API key is never in the cookie; each request checks that the key it
names is still a live admin key, so revoking the key ends its sessions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson

SESSION_TTL_MS = 12 * 3_600_000
LOGIN_FORM_TTL_MS = 3_600_000
_SESSION = b"tuneloop.dashboard.session.v1|"
_LOGIN = b"tuneloop.dashboard.login.v1|"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in dashboard user: an admin key of one project."""

    key_id: str
    project_id: str
    csrf: str
    issued_ms: int
    expires_ms: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Signs and checks session cookies and login-form tokens with one secret key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the session key must be at least 32 bytes")
        self._secret = secret

    def _mac(self, domain: bytes, payload: str) -> str:
        return _b64(hmac.new(self._secret, domain + payload.encode(), hashlib.sha256).digest())

    def _checked(self, domain: bytes, token: str) -> str | None:
        payload, dot, mac = token.partition(".")
        if not dot or not hmac.compare_digest(mac.encode(), self._mac(domain, payload).encode()):
            return None
        return payload

    def new_session(self, key_id: str, project_id: str, *, now_ms: int) -> Session:
        """A fresh session with its own random CSRF token."""
        return Session(
            key_id, project_id, secrets.token_urlsafe(24), now_ms, now_ms + SESSION_TTL_MS
        )

    def encode(self, session: Session) -> str:
        """The cookie value for ``session``."""
        body = orjson.dumps(
            {
                "k": session.key_id,
                "p": session.project_id,
                "c": session.csrf,
                "i": session.issued_ms,
                "e": session.expires_ms,
            }
        )
        payload = _b64(body)
        return f"{payload}.{self._mac(_SESSION, payload)}"

    def decode(self, token: str, *, now_ms: int) -> Session | None:
        """The session a cookie holds; None if it is forged, garbled or expired."""
        payload = self._checked(_SESSION, token[:4096])
        if payload is None:
            return None
        try:
            body = orjson.loads(_unb64(payload))
            session = Session(
                str(body["k"]), str(body["p"]), str(body["c"]), int(body["i"]), int(body["e"])
            )
        except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
            return None
        return session if session.expires_ms > now_ms else None

    def login_token(self, *, now_ms: int) -> str:
        """A token for the login form, also set as a cookie: the POST must carry both."""
        payload = f"{now_ms + LOGIN_FORM_TTL_MS}-{secrets.token_urlsafe(18)}"
        return f"{payload}.{self._mac(_LOGIN, payload)}"

    def check_login_token(self, form_value: str, cookie_value: str, *, now_ms: int) -> bool:
        """True if the form's token is the cookie's, signed by this server and not expired."""
        if not form_value or not hmac.compare_digest(form_value.encode(), cookie_value.encode()):
            return False
        payload = self._checked(_LOGIN, form_value[:512])
        if payload is None:
            return False
        expires, _, _nonce = payload.partition("-")
        return expires.isdigit() and int(expires) > now_ms


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted CSRF token with the session's."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())

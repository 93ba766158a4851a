"""API-key authentication and scopes, as FastAPI dependencies."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from tuneloop.errors import AuthError, PermissionDeniedError
from tuneloop.store.keys import Principal, Scope

# Which scopes may do what: an ingest key writes traces and feedback, nothing else.
_ALLOWED: dict[Scope, frozenset[Scope]] = {
    "ingest": frozenset({"ingest", "admin"}),
    "admin": frozenset({"admin"}),
}


class Authenticator:
    """Resolves keys to principals, caching hits briefly so ingest does not hit the DB."""

    def __init__(self, resolve: Callable[[str], Principal], *, ttl_s: float = 10.0) -> None:
        self._resolve = resolve
        self._ttl = ttl_s
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def principal(self, key: str) -> Principal:
        """The principal of ``key``; AuthError if invalid, revoked or malformed."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        principal = self._resolve(key)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (principal, now + self._ttl)
        return principal

    def forget(self) -> None:
        """Drop cached keys (after a revocation)."""
        with self._lock:
            self._cache.clear()


def _key_from_headers(authorization: str | None, x_api_key: str | None) -> str:
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise AuthError("Authorization header must be 'Bearer <api key>'")
    raise AuthError("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")


def require(scope: Scope) -> Callable[..., Principal]:
    """A dependency that authenticates the caller and checks the scope."""

    def dependency(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> Principal:
        key = _key_from_headers(authorization, x_api_key)
        authenticator: Authenticator = request.app.state.authenticator
        principal = authenticator.principal(key)
        if principal.scope not in _ALLOWED[scope]:
            raise PermissionDeniedError(
                f"this endpoint needs a key with scope {scope!r}; "
                f"key {principal.key_id!r} has scope {principal.scope!r}"
            )
        return principal

    return dependency


IngestPrincipal = Annotated[Principal, Depends(require("ingest"))]
AdminPrincipal = Annotated[Principal, Depends(require("admin"))]

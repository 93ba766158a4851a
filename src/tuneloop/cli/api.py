"""The CLI's HTTP client: one place that turns the server's error answers into exceptions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from tuneloop.errors import (
    AuthError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
    TuneloopError,
)
from tuneloop.settings import Settings


class Api:
    """Calls the tuneloop server's REST API with an admin key."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
        if not settings.api_key:
            raise AuthError("no API key: pass --api-key or set TUNELOOP_API_KEY to an admin key")
        self._client = httpx.Client(
            base_url=settings.url,
            headers={"Authorization": f"Bearer {settings.api_key}"},
            timeout=30.0,
            transport=transport,
        )

    def get(self, path: str, params: Sequence[tuple[str, str]] | None = None) -> Any:
        """GET a JSON document; server errors become tuneloop exceptions with its message."""
        return self.request("GET", path, params=list(params or []))

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """One request; the JSON answer (None when empty), or a tuneloop exception.

        401, 403, 404 and 409 become AuthError, PermissionDeniedError, NotFoundError and
        ConflictError; other 4xx InvalidInputError; 5xx and unreachable StoreError. Each
        carries the server's message.
        """
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self._client.request(method, path, json=json, params=params, **extra)
        except httpx.HTTPError as exc:
            raise StoreError(
                f"cannot reach the tuneloop server at {self._client.base_url}: {exc}"
            ) from exc
        if response.status_code < 400:
            return response.json() if response.content else None
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:500]
        kinds: dict[int, type[TuneloopError]] = {
            401: AuthError,
            403: PermissionDeniedError,
            404: NotFoundError,
            409: ConflictError,
        }
        fallback = InvalidInputError if response.status_code < 500 else StoreError
        raise kinds.get(response.status_code, fallback)(
            f"server answered {response.status_code}: {message}"
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

"""A small HTTP client for the CLI's read commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from tuneloop.errors import (
    AuthError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
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
        try:
            response = self._client.get(path, params=list(params or []))
        except httpx.HTTPError as exc:
            raise StoreError(
                f"cannot reach the tuneloop server at {self._client.base_url}: {exc}"
            ) from exc
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:500]
            error: type[Exception] = {
                401: AuthError,
                403: PermissionDeniedError,
                404: NotFoundError,
            }.get(
                response.status_code,
                InvalidInputError if response.status_code < 500 else StoreError,
            )
            raise error(f"server answered {response.status_code}: {message}")
        return response.json()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

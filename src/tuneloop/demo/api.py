"""The tuneloop server's HTTP API as the demo calls it: with an admin key, like any user.

Every figure the demo prints comes back through this client; it never reads the
database or the simulated world's parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from tuneloop import errors
from tuneloop.errors import StoreError, TuneloopError

# Errors the server names in its answer that the demo reacts to.
_NAMED: dict[str, type[TuneloopError]] = {
    "GateFailedError": errors.GateFailedError,
    "ConflictError": errors.ConflictError,
    "NotFoundError": errors.NotFoundError,
    "ConfigError": errors.ConfigError,
}
_BY_STATUS: dict[int, type[TuneloopError]] = {
    401: errors.AuthError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
}


def segment(text: str) -> str:
    """One URL path segment (an agent name, a version ref)."""
    return quote(text, safe="")


class Platform:
    """Calls the REST API of a tuneloop server.

    Args:
        url: the server's base URL.
        api_key: an admin key of the project.
        transport: an httpx transport (tests).
    """

    def __init__(
        self, url: str, api_key: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._client = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=120.0,
            transport=transport,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: Any = None,
    ) -> Any:
        """One call; the JSON answer, or the server's error as a tuneloop exception.

        Raises:
            TuneloopError: the server refused the call; the message is the server's.
            StoreError: the server cannot be reached.
        """
        try:
            response = self._client.request(method, path, params=list(params or []), json=body)
        except httpx.HTTPError as exc:
            raise StoreError(
                f"cannot reach the tuneloop server at {self._client.base_url}: {exc}"
            ) from exc
        if response.status_code < 400:
            return response.json() if response.content else None
        try:
            error = response.json()["error"]
            kind, message = str(error.get("type", "")), str(error["message"])
        except (ValueError, KeyError, TypeError, AttributeError):
            kind, message = "", response.text[:500]
        fallback = errors.InvalidInputError if response.status_code < 500 else StoreError
        cls = _NAMED.get(kind) or _BY_STATUS.get(response.status_code, fallback)
        raise cls(f"{method} {path}: server answered {response.status_code}: {message}")

    def get(self, path: str, params: Sequence[tuple[str, str]] | None = None) -> Any:
        """GET a JSON document."""
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None) -> Any:
        """POST a JSON body."""
        return self.request("POST", path, body=body if body is not None else {})

    def put(self, path: str, body: Any) -> Any:
        """PUT a JSON body."""
        return self.request("PUT", path, body=body)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

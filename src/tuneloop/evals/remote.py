"""The tuneloop server as the eval commands see it: versions, eval runs, traces, over HTTP.

Every call needs an admin key (versions and traces are admin reads; an upload records
a gate verdict). Server errors become tuneloop exceptions carrying the server's message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

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
from tuneloop.evals.results import EvalRun

_KINDS: dict[int, type[TuneloopError]] = {
    401: AuthError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
}


def _segment(text: str) -> str:
    return quote(text, safe="")


class EvalServer:
    """A tuneloop server's eval, version and trace endpoints.

    Args:
        url: the server's base URL.
        api_key: an admin key of the project.
        transport: an httpx transport (tests).
        timeout_s: per request.

    Raises:
        AuthError: no API key.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        if not api_key:
            raise AuthError(
                "no API key: pass --api-key or set TUNELOOP_API_KEY to an admin key of the project"
            )
        self._client = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
            transport=transport,
        )

    def __enter__(self) -> EvalServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: Any = None,
    ) -> Any:
        """One request; a JSON answer, or a tuneloop exception with the server's message."""
        try:
            response = self._client.request(method, path, params=list(params or []), json=body)
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
        fallback = InvalidInputError if response.status_code < 500 else StoreError
        raise _KINDS.get(response.status_code, fallback)(
            f"server answered {response.status_code}: {message}"
        )

    def version(self, agent: str, ref: str) -> dict[str, Any]:
        """A stored version with its config: ``version`` (the hash), ``label``, ``config``..."""
        found: dict[str, Any] = self.request(
            "GET", f"/api/v1/agents/{_segment(agent)}/versions/{_segment(ref)}"
        )
        return found

    def upload(
        self, run: EvalRun, *, agent: str | None = None, version: str | None = None
    ) -> dict[str, Any]:
        """Store ``run`` on the server; the answer names the version and verdict it set."""
        body = {"run": run.to_dict(), "agent": agent, "version": version}
        stored: dict[str, Any] = self.request("POST", "/api/v1/eval-runs", body=body)
        return stored

    def list_runs(self, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """Stored runs, newest first (``items``, ``next_cursor``)."""
        found: dict[str, Any] = self.request("GET", "/api/v1/eval-runs", params=params)
        return found

    def get_run(self, run_id: str) -> EvalRun:
        """A stored run."""
        document = self.request("GET", f"/api/v1/eval-runs/{_segment(run_id)}")
        return EvalRun.from_dict(document["run"], source=f"stored eval run {run_id}")

    def diff(self, baseline_id: str, current_id: str, *, alpha: float) -> dict[str, Any]:
        """The server's per-case diff of two stored runs, with its ``warnings``."""
        path = f"/api/v1/eval-runs/{_segment(baseline_id)}/diff/{_segment(current_id)}"
        found: dict[str, Any] = self.request("GET", path, params=[("alpha", repr(alpha))])
        return found

    def gate(self, agent: str, ref: str) -> dict[str, Any]:
        """A version's gate: its latest verdict per stage."""
        path = f"/api/v1/agents/{_segment(agent)}/versions/{_segment(ref)}/gate"
        found: dict[str, Any] = self.request("GET", path)
        return found

    def traces(self, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """One page of stored runs (``items``, ``next_cursor``) matching ``params``."""
        found: dict[str, Any] = self.request("GET", "/api/v1/traces", params=params)
        return found

    def trace(self, trace_id: str) -> dict[str, Any]:
        """One trace: its run facts and span tree."""
        found: dict[str, Any] = self.request("GET", f"/api/v1/traces/{_segment(trace_id)}")
        return found

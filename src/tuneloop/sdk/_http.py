"""HTTP delivery to the tuneloop server: bounded retries with backoff and jitter."""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from tuneloop._version import __version__
from tuneloop.errors import ConfigError
from tuneloop.sdk._stats import Recorder

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

_HINTS = {
    400: "the server could not decode the request; this is a bug, please report it",
    401: "the server rejected the API key; set TUNELOOP_API_KEY or pass api_key=",
    403: "the API key may not write to this project; check TUNELOOP_API_KEY",
    404: "no tuneloop endpoint at this URL; check TUNELOOP_URL",
    413: "the request is over the server's size limit (TUNELOOP_MAX_BODY_BYTES); "
    "lower max_export_batch",
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard the SDK tries before giving up on one request.

    Retryable failures are connection errors, timeouts and HTTP 429, 502, 503, 504.
    The wait before attempt ``n + 1`` is ``initial_backoff_s * multiplier ** (n - 1)``,
    capped at ``max_backoff_s``, shortened by up to ``jitter`` (a fraction) at random,
    and never shorter than the server's ``Retry-After``. The SDK gives up after
    ``max_attempts`` attempts or when the next wait would pass ``max_elapsed_s``.

    Attributes:
        max_attempts: attempts per request, the first included.
        initial_backoff_s: wait after the first failed attempt.
        max_backoff_s: longest wait between two attempts (``Retry-After`` aside).
        multiplier: growth of the wait from one attempt to the next.
        jitter: fraction of the wait removed at random, in ``[0, 1]``.
        max_elapsed_s: total time budget for one request, waits included.
        request_timeout_s: timeout of one HTTP attempt.
    """

    max_attempts: int = 5
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.5
    max_elapsed_s: float = 30.0
    request_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigError(f"jitter must be between 0 and 1, got {self.jitter}")
        if self.multiplier < 1.0:
            raise ConfigError(f"multiplier must be at least 1, got {self.multiplier}")
        for name in ("initial_backoff_s", "max_backoff_s", "max_elapsed_s", "request_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a finite number >= 0, got {value}")

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """The wait after failed attempt number ``attempt`` (1-based), jitter applied."""
        base = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        return base * (1.0 - self.jitter * rng.random())


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True, slots=True)
class Delivery:
    """The result of sending one request with retries.

    Attributes:
        response: the successful (2xx) response, or None when the SDK gave up.
        attempts: how many HTTP attempts were made.
    """

    response: httpx.Response | None
    attempts: int


class Sender:
    """Posts bodies to the server with retries; counts and logs every failed attempt."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        transport: httpx.BaseTransport | None,
        policy: RetryPolicy,
        recorder: Recorder,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self._recorder = recorder
        self._rng = rng or random.Random()
        self._cancelled = threading.Event()
        headers = {"User-Agent": f"tuneloop-sdk/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            transport=transport, headers=headers, timeout=policy.request_timeout_s
        )

    def cancel(self) -> None:
        """Stop waiting between attempts: pending and future retries give up at once."""
        self._cancelled.set()

    def close(self) -> None:
        """Cancel retries and release the connection pool."""
        self.cancel()
        self._http.close()

    def post(
        self,
        path: str,
        *,
        content: bytes,
        headers: dict[str, str],
        what: str,
        max_elapsed_s: float | None = None,
    ) -> Delivery:
        """POST ``content`` to ``path``, retrying retryable failures within the policy.

        Args:
            path: path under the base URL, such as ``/v1/traces``.
            content: the request body.
            headers: extra request headers.
            what: what is being sent, for log messages (``"spans"``, ``"feedback"``).
            max_elapsed_s: a tighter total budget than the policy's, if any.

        Returns:
            The successful response, or None in `Delivery.response` after giving up.
        """
        url = f"{self.base_url}{path}"
        budget = self.policy.max_elapsed_s if max_elapsed_s is None else max_elapsed_s
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            if self._cancelled.is_set():
                return Delivery(None, attempt - 1)
            retry_after: float | None = None
            try:
                response = self._http.post(url, content=content, headers=headers)
            except httpx.TimeoutException as exc:
                kind, retryable = "timeout", True
                message = f"timed out sending {what} to {url}: {exc!r}"
            except httpx.UnsupportedProtocol as exc:
                kind, retryable = "url", False
                message = f"cannot send {what} to {url}: {exc}; check TUNELOOP_URL"
            except httpx.ConnectError as exc:
                kind, retryable = "connect", True
                message = f"cannot reach the tuneloop server at {url} to send {what}: {exc!r}"
            except httpx.TransportError as exc:
                kind, retryable = "transport", True
                message = f"connection to {url} failed while sending {what}: {exc!r}"
            else:
                if response.is_success:
                    return Delivery(response, attempt)
                status = response.status_code
                kind, retryable = f"http {status}", status in RETRYABLE_STATUSES
                retry_after = retry_after_s(response.headers.get("Retry-After"))
                hint = _HINTS.get(status, "the server is busy or failing")
                message = f"tuneloop server answered {status} to {what} at {url}: {hint}"
            self._recorder.error(kind, message)
            if not retryable or attempt >= self.policy.max_attempts:
                return Delivery(None, attempt)
            delay = max(self.policy.backoff_s(attempt, self._rng), retry_after or 0.0)
            if time.monotonic() - started + delay > budget:
                return Delivery(None, attempt)
            if self._cancelled.wait(delay):
                return Delivery(None, attempt)

"""Resilience: classify failures, back off and retry, and break circuits.

Time comes from an injected `Clock`, waits from an injected `Sleep` and jitter from an
injected ``random.Random``, so every schedule is reproducible in tests and the demo.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import httpx

from tuneloop.clock import Clock
from tuneloop.config.model import ALL_RETRY_ON, CircuitBreakerSettings, ToolRetry
from tuneloop.errors import (
    ProviderAuthError,
    ProviderBadRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderServerError,
    ProviderTimeoutError,
    ToolError,
)
from tuneloop.runtime.timing import Sleep

FailureKind = Literal[
    "timeout",
    "rate_limit",
    "server_error",
    "connection",
    "bad_request",
    "auth",
    "invalid_output",
    "circuit_open",
    "error",
]
CircuitState = Literal["closed", "open", "half_open"]
Permit = Literal["call", "probe"]
TRANSIENT_KINDS: frozenset[str] = frozenset(ALL_RETRY_ON)
_MS_PER_S = 1000.0
_PROVIDER_KINDS: tuple[tuple[type[ProviderError], FailureKind], ...] = (
    (ProviderRateLimitError, "rate_limit"),
    (ProviderTimeoutError, "timeout"),
    (ProviderServerError, "server_error"),
    (ProviderConnectionError, "connection"),
    (ProviderBadRequestError, "bad_request"),
    (ProviderAuthError, "auth"),
)
_TOOL_KINDS: frozenset[str] = frozenset(
    ("timeout", "rate_limit", "server_error", "connection", "invalid_output", "error")
)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified failure: its kind decides whether a retry policy retries it.

    Attributes:
        kind: ``timeout``, ``rate_limit``, ``server_error``, ``connection`` (transient);
            ``bad_request``, ``auth``, ``invalid_output``, ``circuit_open``, ``error``.
        message: what happened, for the model and the trace.
        error_type: the exception's class name (``error.type`` on spans).
        retry_after_s: how long the failing side asked to wait, if it said.
    """

    kind: FailureKind
    message: str
    error_type: str
    retry_after_s: float | None = None

    @property
    def retryable(self) -> bool:
        """Whether the failure is transient (a retry may succeed)."""
        return self.kind in TRANSIENT_KINDS


def classify(exc: BaseException) -> Failure:
    """What kind of failure an exception is.

    Understands `ToolError` (its ``kind``), the `ProviderError` tree, httpx errors
    (``raise_for_status()`` included: 429, 5xx, 401/403, other 4xx), and the built-in
    `TimeoutError` and `ConnectionError`. Anything else is a plain ``error``: a bug
    in the tool, not worth retrying.
    """
    name = type(exc).__name__
    message = str(exc) or name
    retry_after = getattr(exc, "retry_after_s", None)
    if isinstance(exc, ToolError):
        kind = exc.kind if exc.kind in _TOOL_KINDS else "error"
        return Failure(kind, message, name, retry_after)  # type: ignore[arg-type]
    if isinstance(exc, ProviderError):
        for cls, provider_kind in _PROVIDER_KINDS:
            if isinstance(exc, cls):
                return Failure(provider_kind, message, name, retry_after)
        return Failure("server_error" if exc.retryable else "error", message, name, retry_after)
    if isinstance(exc, httpx.HTTPStatusError):
        return _http_failure(exc.response, message, name)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return Failure("timeout", message, name)
    if isinstance(exc, ConnectionError | httpx.TransportError):
        return Failure("connection", message, name)
    return Failure("error", message, name)


def _http_failure(response: httpx.Response, message: str, name: str) -> Failure:
    status = response.status_code
    if status == 429:
        raw = response.headers.get("retry-after", "")
        retry_after = float(raw) if raw.replace(".", "", 1).isdigit() else None
        return Failure("rate_limit", message, name, retry_after)
    if status >= 500:
        return Failure("server_error", message, name)
    if status == 408:
        return Failure("timeout", message, name)
    if status in (401, 403):
        return Failure("auth", message, name)
    return Failure("bad_request", message, name)


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """When to retry and how long to wait: exponential backoff with jitter.

    The n-th retry waits between half and all of ``min(max_backoff_ms, backoff_ms *
    2**(n-1))`` (jitter spreads retries of many callers apart), and never less than
    the Retry-After the failing side asked for.
    """

    max_attempts: int = 1
    backoff_ms: int = 200
    max_backoff_ms: int = 5000
    retry_on: frozenset[str] = TRANSIENT_KINDS

    @classmethod
    def from_settings(cls, retry: ToolRetry) -> RetrySchedule:
        """The schedule a tool's ``retry`` settings describe."""
        return cls(
            max_attempts=retry.max_attempts,
            backoff_ms=retry.backoff_ms,
            max_backoff_ms=retry.max_backoff_ms,
            retry_on=frozenset(retry.retry_on),
        )

    def should_retry(self, failure: Failure, attempt: int) -> bool:
        """Whether to try again after ``attempt`` (1-based) failed with ``failure``."""
        return attempt < self.max_attempts and failure.kind in self.retry_on

    def delay_s(self, retry: int, rng: random.Random, retry_after_s: float | None = None) -> float:
        """Seconds to wait before the ``retry``-th retry (1-based)."""
        cap = min(float(self.max_backoff_ms), self.backoff_ms * 2.0 ** (retry - 1))
        delay = cap / 2 + rng.uniform(0.0, cap / 2)
        return max(delay / _MS_PER_S, retry_after_s or 0.0)


async def retry_call(
    call: Callable[[int], Awaitable[T]],
    schedule: RetrySchedule,
    *,
    sleep: Sleep,
    rng: random.Random,
    on_retry: Callable[[int, Failure, float], None] | None = None,
) -> T:
    """Await ``call(attempt)`` until it succeeds or the schedule gives up; re-raise the last error.

    For providers and anything else that raises; the tool runner has its own loop
    because it also consults circuit breakers and returns envelopes.

    Args:
        call: makes one attempt (1-based attempt number).
        schedule: when to retry and how long to wait.
        sleep: how to wait.
        rng: jitter.
        on_retry: told ``(attempt, failure, delay_s)`` before each wait (logging, spans).
    """
    attempt = 1
    while True:
        try:
            return await call(attempt)
        except Exception as exc:
            failure = classify(exc)
            if not schedule.should_retry(failure, attempt):
                raise
            delay = schedule.delay_s(attempt, rng, failure.retry_after_s)
            if on_retry is not None:
                on_retry(attempt, failure, delay)
            await sleep(delay)
            attempt += 1


class CircuitBreaker:
    """Stops calling a failing dependency for a while, then probes it.

    Closed: calls go through; ``failure_threshold`` failures within ``window_s`` open
    it. Open: calls are refused until ``reset_after_s`` has passed, then it is
    half-open: one probe goes through; its success closes the circuit, its failure
    opens it again for another ``reset_after_s``.

    Callers `acquire` a permit, then report its outcome with `record_success`,
    `record_failure` or `release` (abandoned, say on cancellation).
    """

    def __init__(self, settings: CircuitBreakerSettings, *, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock
        self._failures: deque[int] = deque()
        self._opened_at_ms: int | None = None
        self._probing = False

    @property
    def state(self) -> CircuitState:
        """``closed``, ``open``, or ``half_open`` (the reset time has passed)."""
        if self._opened_at_ms is None:
            return "closed"
        reopen_at = self._opened_at_ms + self.settings.reset_after_s * _MS_PER_S
        return "half_open" if self._clock.now_ms() >= reopen_at else "open"

    def acquire(self) -> Permit | None:
        """A permit to call now (``call``, or the half-open ``probe``), or ``None`` if refused."""
        state = self.state
        if state == "closed":
            return "call"
        if state == "open" or self._probing:
            return None
        self._probing = True
        return "probe"

    def record_success(self, permit: Permit) -> None:
        """The call succeeded: a successful probe closes the circuit."""
        if permit == "probe":
            self._opened_at_ms = None
            self._failures.clear()
            self._probing = False

    def record_failure(self, permit: Permit) -> None:
        """The call failed: a failed probe reopens; enough failures in the window open."""
        now = self._clock.now_ms()
        if permit == "probe":
            self._opened_at_ms = now
            self._probing = False
            return
        if self._opened_at_ms is not None:
            return  # already open: a straggler started before it opened
        self._failures.append(now)
        horizon = now - self.settings.window_s * _MS_PER_S
        while self._failures and self._failures[0] <= horizon:
            self._failures.popleft()
        if len(self._failures) >= self.settings.failure_threshold:
            self._opened_at_ms = now
            self._failures.clear()

    def release(self, permit: Permit) -> None:
        """The call was abandoned without an outcome: let another probe through."""
        if permit == "probe":
            self._probing = False


class BreakerBoard:
    """One `CircuitBreaker` per tool, shared by every runner of a process.

    Breakers outlive a run (they protect a dependency, not a conversation), so the
    board is created once and given to each `ToolRunner`. A breaker takes the current
    settings on every lookup, so a bundle changing a threshold applies at once.
    """

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, name: str, settings: CircuitBreakerSettings | None) -> CircuitBreaker | None:
        """The breaker of tool ``name``, or ``None`` when its settings have none."""
        if settings is None:
            return None
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = self._breakers[name] = CircuitBreaker(settings, clock=self._clock)
        breaker.settings = settings
        return breaker

    def states(self) -> dict[str, CircuitState]:
        """Each known breaker's state, by tool."""
        return {name: breaker.state for name, breaker in self._breakers.items()}

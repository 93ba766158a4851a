"""Counters of what the SDK delivered and lost, and the one boundary that never raises.

The SDK never raises into the host agent because the platform is down or misbehaves.
Every entry point the host reaches (span end, flush, shutdown, feedback) and the
export thread go through `shielded`, which turns an unexpected exception into a
counted, logged error and a default return value.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, Protocol, TypeVar

logger = logging.getLogger("tuneloop.sdk")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ClientStats:
    """A snapshot of what a `Client` has delivered and lost since it started.

    Attributes:
        spans_exported: spans the server accepted.
        spans_dropped: spans discarded because the in-memory buffer was full (the
            oldest go first) or because they ended after `Client.shutdown`.
        spans_failed: spans given up on: rejected by the server, or still undelivered
            when retries or the shutdown deadline ran out.
        export_errors: failed HTTP attempts (traces and feedback), retried or not.
        feedback_sent: feedback scores the server accepted.
        feedback_failed: feedback scores that could not be delivered.
        last_error: the most recent failure, for humans.
    """

    spans_exported: int = 0
    spans_dropped: int = 0
    spans_failed: int = 0
    export_errors: int = 0
    feedback_sent: int = 0
    feedback_failed: int = 0
    last_error: str | None = None


class Recorder:
    """Thread-safe counters behind `ClientStats`; logs each kind of failure once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = ClientStats()
        self._logged: set[str] = set()

    def snapshot(self) -> ClientStats:
        """The counters as they are now."""
        with self._lock:
            return self._stats

    def count(
        self,
        *,
        exported: int = 0,
        dropped: int = 0,
        failed: int = 0,
        feedback_sent: int = 0,
        feedback_failed: int = 0,
    ) -> None:
        """Add to the span and feedback counters."""
        with self._lock:
            s = self._stats
            self._stats = ClientStats(
                spans_exported=s.spans_exported + exported,
                spans_dropped=s.spans_dropped + dropped,
                spans_failed=s.spans_failed + failed,
                export_errors=s.export_errors,
                feedback_sent=s.feedback_sent + feedback_sent,
                feedback_failed=s.feedback_failed + feedback_failed,
                last_error=s.last_error,
            )

    def error(
        self, kind: str, message: str, *, attempt: bool = True, exc: BaseException | None = None
    ) -> None:
        """Record a failure; log it at WARNING the first time its kind is seen.

        Args:
            kind: a short key such as ``"http 503"`` or ``"connect"``; one log line each.
            message: what happened and, where possible, how to fix it.
            attempt: whether this was a failed HTTP attempt (counted in ``export_errors``).
            exc: the exception behind it, logged with its traceback the first time.
        """
        with self._lock:
            s = self._stats
            self._stats = ClientStats(
                spans_exported=s.spans_exported,
                spans_dropped=s.spans_dropped,
                spans_failed=s.spans_failed,
                export_errors=s.export_errors + (1 if attempt else 0),
                feedback_sent=s.feedback_sent,
                feedback_failed=s.feedback_failed,
                last_error=message,
            )
            first = kind not in self._logged
            self._logged.add(kind)
        if first:
            logger.warning(
                "%s (further %r failures are logged at DEBUG)", message, kind, exc_info=exc
            )
        else:
            logger.debug("%s", message)


class HasRecorder(Protocol):
    """Anything that owns a `Recorder`."""

    @property
    def recorder(self) -> Recorder:
        """Where failures are counted."""
        ...


S = TypeVar("S", bound=HasRecorder)


def shielded(
    default: R,
) -> Callable[[Callable[Concatenate[S, P], R]], Callable[Concatenate[S, P], R]]:
    """Make a method return ``default`` instead of raising; the failure is counted and logged.

    This is the SDK's one boundary with the host: nothing else catches ``Exception``.
    """

    def decorate(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
        @functools.wraps(method)
        def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:  # the SDK boundary: see the module docstring
                self.recorder.error(
                    f"internal {method.__name__}",
                    f"tuneloop SDK: unexpected {type(exc).__name__} in {method.__name__}: {exc}",
                    attempt=False,
                    exc=exc,
                )
                return default

        return wrapper

    return decorate

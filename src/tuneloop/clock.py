"""Time, injected: core code asks a Clock, so tests and the demo can run simulated time."""

from __future__ import annotations

import threading
import time
from typing import Protocol

from tuneloop.errors import InvalidInputError

_NS_PER_MS = 1_000_000


class Clock(Protocol):
    """A source of wall-clock time."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...

    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch (span timestamps)."""
        ...


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        return time.time_ns() // _NS_PER_MS

    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch."""
        return time.time_ns()


class FakeClock:
    """A clock that moves only when told to.

    It keeps nanoseconds, so simulated latencies of fractions of a millisecond add up
    exactly; `now_ms` rounds down.
    """

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:
        self._now_ns = start_ms * _NS_PER_MS
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        """The current simulated time in milliseconds."""
        with self._lock:
            return self._now_ns // _NS_PER_MS

    def now_ns(self) -> int:
        """The current simulated time in nanoseconds."""
        with self._lock:
            return self._now_ns

    def advance(self, ms: float) -> None:
        """Move simulated time forward by ``ms`` milliseconds (fractions allowed).

        Raises:
            InvalidInputError: ``ms`` is negative; simulated time never goes back.
        """
        if ms < 0:
            raise InvalidInputError(f"a clock only moves forward; cannot advance by {ms} ms")
        with self._lock:
            self._now_ns += round(ms * _NS_PER_MS)

"""Waiting, injected: the runtime awaits a `Sleep`, so tests and simulations skip the waits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tuneloop.clock import FakeClock
from tuneloop.errors import InvalidInputError

Sleep = Callable[[float], Awaitable[None]]
"""Wait ``seconds``: `asyncio.sleep` for real, `simulated_sleep` in simulated time."""

_MS_PER_S = 1000.0


async def real_sleep(seconds: float) -> None:
    """Wait for real (`asyncio.sleep`)."""
    await asyncio.sleep(seconds)


def simulated_sleep(clock: FakeClock) -> Sleep:
    """A `Sleep` that moves ``clock`` forward instead of waiting, yielding to the loop once."""

    async def sleep(seconds: float) -> None:
        if seconds < 0:
            raise InvalidInputError(f"cannot sleep a negative time ({seconds} s)")
        clock.advance(seconds * _MS_PER_S)
        await asyncio.sleep(0)

    return sleep

"""Failure classification, backoff schedules and the circuit breaker (fake clock)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from tests.runtime.conftest import Sleeps, Traced
from tuneloop import semconv
from tuneloop.clock import FakeClock
from tuneloop.config.model import AgentConfig, CircuitBreakerSettings
from tuneloop.errors import (
    ProviderAuthError,
    ProviderRateLimitError,
    ProviderServerError,
    ToolOutputError,
    ToolTimeoutError,
    ToolTransientError,
)
from tuneloop.runtime.providers import ToolCallRequest
from tuneloop.runtime.tools import (
    BreakerBoard,
    CircuitBreaker,
    RetrySchedule,
    Tool,
    ToolRunner,
    classify,
)

pytestmark = pytest.mark.anyio


def http_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://api.test/orders")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(f"HTTP {status}", request=request, response=response)


@pytest.mark.parametrize(
    ("exc", "kind", "retry_after"),
    [
        (ToolTimeoutError("slow"), "timeout", None),
        (ToolTransientError("busy", kind="rate_limit", retry_after_s=3), "rate_limit", 3),
        (ToolOutputError("shape"), "invalid_output", None),
        (ProviderRateLimitError("429", retry_after_s=9), "rate_limit", 9),
        (ProviderServerError("500"), "server_error", None),
        (ProviderAuthError("401"), "auth", None),
        (http_error(429, {"retry-after": "2"}), "rate_limit", 2),
        (http_error(503), "server_error", None),
        (http_error(404), "bad_request", None),
        (http_error(403), "auth", None),
        (httpx.ReadTimeout("slow"), "timeout", None),
        (httpx.ConnectError("refused"), "connection", None),
        (TimeoutError(), "timeout", None),
        (ConnectionResetError("reset"), "connection", None),
        (ValueError("bug"), "error", None),
    ],
)
def test_classify(exc: Exception, kind: str, retry_after: float | None) -> None:
    failure = classify(exc)
    assert failure.kind == kind
    assert failure.retry_after_s == retry_after
    assert failure.retryable == (kind in {"timeout", "rate_limit", "server_error", "connection"})


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    schedule = RetrySchedule(max_attempts=10, backoff_ms=100, max_backoff_ms=1000)
    rng = random.Random(5)
    for retry, cap in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (8, 1.0)]:
        delays = [schedule.delay_s(retry, rng) for _ in range(200)]
        assert cap / 2 <= min(delays) and max(delays) <= cap
        assert max(delays) - min(delays) > cap / 4  # jitter actually spreads them
    assert schedule.delay_s(1, rng, retry_after_s=7.0) == 7.0


def breaker(
    clock: FakeClock, threshold: int = 3, window_s: float = 60, reset_after_s: float = 30
) -> CircuitBreaker:
    settings = CircuitBreakerSettings(
        failure_threshold=threshold, window_s=window_s, reset_after_s=reset_after_s
    )
    return CircuitBreaker(settings, clock=clock)


def test_breaker_opens_after_n_failures_in_the_window(clock: FakeClock) -> None:
    cb = breaker(clock)
    for _ in range(2):
        cb.record_failure(cb.acquire() or "call")
    clock.advance(61_000)  # those two fall out of the window
    cb.record_failure(cb.acquire() or "call")
    assert cb.state == "closed"
    cb.record_failure(cb.acquire() or "call")
    cb.record_failure(cb.acquire() or "call")
    assert cb.state == "open"
    assert cb.acquire() is None


def test_breaker_half_open_probe_closes_or_reopens(clock: FakeClock) -> None:
    cb = breaker(clock, threshold=1, reset_after_s=30)
    cb.record_failure(cb.acquire() or "call")
    clock.advance(29_999)
    assert cb.acquire() is None
    clock.advance(1)
    assert cb.state == "half_open"
    probe = cb.acquire()
    assert probe == "probe"
    assert cb.acquire() is None  # one probe at a time
    cb.record_failure(probe)
    assert cb.state == "open"  # a failed probe reopens for another reset_after_s
    clock.advance(30_000)
    probe = cb.acquire()
    assert probe == "probe"
    cb.record_success(probe)
    assert cb.state == "closed"
    assert cb.acquire() == "call"


def test_abandoned_probe_lets_another_through(clock: FakeClock) -> None:
    cb = breaker(clock, threshold=1)
    cb.record_failure("call")
    clock.advance(30_000)
    probe = cb.acquire()
    assert probe == "probe"
    cb.release(probe)
    assert cb.acquire() == "probe"


async def test_runner_breaker_opens_then_recovers(
    clock: FakeClock, sleeps: Sleeps, traced: Traced
) -> None:
    healthy = False
    calls = 0

    async def inventory(sku: str) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if not healthy:
            raise ToolTransientError("inventory API 503", kind="server_error")
        return {"sku": sku, "in_stock": 4}

    cfg = AgentConfig.from_data(
        {
            "model": {"provider": "simulated", "name": "sim"},
            "tools": {
                "inventory": {
                    "circuit_breaker": {
                        "failure_threshold": 3,
                        "window_s": 60,
                        "reset_after_s": 30,
                    },
                    "fallback": {"kind": "static", "value": {"in_stock": None}},
                }
            },
        }
    )
    board = BreakerBoard(clock=clock)

    def runner() -> ToolRunner:
        # A runner per run, as the state machine makes them; the board outlives them.
        return ToolRunner.from_config(
            [Tool(inventory)], cfg, clock=clock, rng=random.Random(1), sleep=sleeps, breakers=board
        )

    request = ToolCallRequest("c", "inventory", '{"sku": "X1"}')
    for _ in range(3):
        assert (await runner().run(request)).metadata["fallback"] == "static"  # type: ignore[union-attr]
    assert calls == 3
    assert board.states() == {"inventory": "open"}
    with traced.run() as run:
        refused = await runner().run(request, run=run)
    assert calls == 3  # not called while open
    assert refused.metadata["cause"]["type"] == "circuit_open"  # type: ignore[union-attr]
    span = traced.one("execute_tool inventory")
    assert span.attributes[semconv.TL_TOOL_CIRCUIT_STATE] == "open"
    assert span.attributes[semconv.TL_TOOL_STATUS] == "partial"

    clock.advance(30_000)
    healthy = True
    recovered = await runner().run(request)
    assert recovered.status == "success"  # type: ignore[union-attr]
    assert calls == 4
    assert board.states() == {"inventory": "closed"}


async def test_retries_stop_when_the_breaker_opens(clock: FakeClock, sleeps: Sleeps) -> None:
    calls = 0

    async def flaky(sku: str) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        raise ToolTransientError("503", kind="server_error")

    cfg = AgentConfig.from_data(
        {
            "model": {"provider": "simulated", "name": "sim"},
            "tools": {
                "flaky": {
                    "retry": {"max_attempts": 10, "backoff_ms": 10},
                    "circuit_breaker": {"failure_threshold": 2},
                }
            },
        }
    )
    tools = ToolRunner.from_config(
        [Tool(flaky)], cfg, clock=clock, rng=random.Random(1), sleep=sleeps
    )
    result = await tools.run(ToolCallRequest("c", "flaky", '{"sku": "X"}'))
    assert calls == 2
    assert result.error_kind == "server_error"  # type: ignore[union-attr]


async def test_a_cancelled_probe_does_not_wedge_the_breaker(
    clock: FakeClock, sleeps: Sleeps
) -> None:
    started = asyncio.Event()

    async def slow(sku: str) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(30)
        return {}

    cfg = AgentConfig.from_data(
        {
            "model": {"provider": "simulated", "name": "sim"},
            "tools": {"slow": {"circuit_breaker": {"failure_threshold": 1}}},
        }
    )
    board = BreakerBoard(clock=clock)
    cb = board.breaker("slow", cfg.tools["slow"].circuit_breaker)
    assert cb is not None
    cb.record_failure("call")
    clock.advance(30_000)
    tools = ToolRunner.from_config(
        [Tool(slow)], cfg, clock=clock, rng=random.Random(1), sleep=sleeps, breakers=board
    )
    task = asyncio.create_task(tools.run(ToolCallRequest("c", "slow", '{"sku": "X"}')))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cb.acquire() == "probe"

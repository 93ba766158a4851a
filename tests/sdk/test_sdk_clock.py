"""An injected clock: span start and end times follow it, exceptions included."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.sdk.sdk_fakes import FakeServer, by_name
from tuneloop.clock import FakeClock, SystemClock
from tuneloop.errors import InvalidInputError
from tuneloop.sdk import Client

START_MS = 1_767_225_600_000
MS = 1_000_000


def test_spans_start_and_end_at_the_clocks_times(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    clock = FakeClock(START_MS)
    client = make_client(clock=clock)
    with client.run("support") as run:
        clock.advance(1)
        with run.guardrail("pii", verdict="pass"):
            clock.advance(12.5)
        with run.llm_call("gpt-4o-mini") as call:
            clock.advance(400)
            call.usage(input_tokens=380, output_tokens=9)
        with run.tool_call("lookup_order") as tool:
            clock.advance(180.25)
            tool.retries(0)
        clock.advance(3)

    assert client.flush(timeout_s=5.0)
    spans = by_name(server.spans())
    t0 = START_MS * MS
    expected = {
        "invoke_agent support": (t0, t0 + 596_750_000),
        "guardrail pii": (t0 + 1 * MS, t0 + 13_500_000),
        "chat gpt-4o-mini": (t0 + 13_500_000, t0 + 413_500_000),
        "execute_tool lookup_order": (t0 + 413_500_000, t0 + 593_750_000),
    }
    assert {
        name: (span.start_time_unix_nano, span.end_time_unix_nano) for name, span in spans.items()
    } == expected
    assert run.trace_id == spans["invoke_agent support"].trace_id.hex()


def test_an_exception_is_recorded_at_the_clocks_time(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    clock = FakeClock(START_MS)
    client = make_client(clock=clock)
    with (
        pytest.raises(TimeoutError),
        client.run("support") as run,
        run.tool_call("search_policy"),
    ):
        clock.advance(3000)
        raise TimeoutError("policy search took too long")

    assert client.flush(timeout_s=5.0)
    spans = by_name(server.spans())
    tool = spans["execute_tool search_policy"]
    end_ns = (START_MS + 3000) * MS
    assert tool.end_time_unix_nano == end_ns
    assert [event.name for event in tool.events] == ["exception"]
    assert tool.events[0].time_unix_nano == end_ns
    assert spans["invoke_agent support"].end_time_unix_nano == end_ns


def test_without_a_clock_spans_use_the_system_time(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    before = time.time_ns()
    with client.run("support"):
        pass
    after = time.time_ns()

    assert client.flush(timeout_s=5.0)
    root = by_name(server.spans())["invoke_agent support"]
    assert before <= root.start_time_unix_nano <= root.end_time_unix_nano <= after


def test_fake_clock_keeps_fractions_of_a_millisecond_and_never_goes_back() -> None:
    clock = FakeClock(START_MS)
    clock.advance(0.4)
    clock.advance(0.7)
    assert clock.now_ns() == START_MS * MS + 1_100_000
    assert clock.now_ms() == START_MS + 1
    with pytest.raises(InvalidInputError, match="only moves forward"):
        clock.advance(-1)
    assert clock.now_ns() == START_MS * MS + 1_100_000


def test_system_clock_agrees_with_itself_in_both_units() -> None:
    clock = SystemClock()
    ms = clock.now_ms()
    ns = clock.now_ns()
    assert ms * MS <= ns < (ms + 1000) * MS

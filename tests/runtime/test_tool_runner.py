"""The tool runner: faults, retries, timeouts, fallbacks, caching and approval, from config."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import pytest

from tests.runtime.conftest import Sleeps, Traced
from tuneloop import semconv
from tuneloop.clock import FakeClock
from tuneloop.config.model import AgentConfig
from tuneloop.errors import ConfigError, ToolTransientError
from tuneloop.runtime.providers import ToolCallRequest
from tuneloop.runtime.tools import ApprovalRequired, Tool, ToolResult, ToolRunner, tool

pytestmark = pytest.mark.anyio


def config(tools: dict[str, Any], guardrails: list[dict[str, Any]] | None = None) -> AgentConfig:
    return AgentConfig.from_data(
        {
            "model": {"provider": "simulated", "name": "sim"},
            "tools": tools,
            "guardrails": guardrails or [],
        }
    )


class Flaky:
    """A tool body that fails with the given errors in order, then answers."""

    def __init__(self, *errors: BaseException, answer: Any = None) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.answer = answer if answer is not None else {"status": "shipped"}

    async def __call__(self, order_id: str) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {**self.answer, "order_id": order_id}


def make_tool(body: Any, name: str = "lookup_order", **kwargs: Any) -> Tool:
    async def lookup(order_id: str) -> dict[str, Any]:
        """Look up an order."""
        return await body(order_id)  # type: ignore[no-any-return]

    return Tool(lookup, name=name, **kwargs)


def runner(
    tools: list[Tool], cfg: AgentConfig, clock: FakeClock, sleeps: Sleeps, **kwargs: Any
) -> ToolRunner:
    return ToolRunner.from_config(
        tools, cfg, clock=clock, rng=random.Random(3), sleep=sleeps, **kwargs
    )


def call(
    name: str = "lookup_order", arguments: str = '{"order_id": "A-1"}', call_id: str = "call_1"
) -> ToolCallRequest:
    return ToolCallRequest(call_id, name, arguments)


async def test_transient_failures_are_retried_with_backoff(
    clock: FakeClock, sleeps: Sleeps, traced: Traced
) -> None:
    body = Flaky(ToolTransientError("503", kind="server_error"), ConnectionResetError("reset"))
    cfg = config(
        {"lookup_order": {"retry": {"max_attempts": 3, "backoff_ms": 100, "max_backoff_ms": 1000}}}
    )
    with traced.run() as run:
        result = await runner([make_tool(body)], cfg, clock, sleeps).run(call(), run=run)
    assert result == ToolResult(
        "success", {"status": "shipped", "order_id": "A-1"}, {"attempts": 3}
    )
    assert body.calls == 3
    # Exponential with jitter: the n-th wait is within [cap/2, cap], cap = 100 ms * 2^(n-1).
    assert len(sleeps.waits) == 2
    assert 0.05 <= sleeps.waits[0] <= 0.1
    assert 0.1 <= sleeps.waits[1] <= 0.2
    span = traced.one("execute_tool lookup_order")
    assert span.attributes[semconv.TL_TOOL_STATUS] == "success"
    assert span.attributes[semconv.TL_TOOL_RETRIES] == 2
    assert [e.name for e in span.events] == [semconv.TL_TOOL_ATTEMPT_FAILED_EVENT] * 2
    assert [e.attributes[semconv.ERROR_TYPE] for e in span.events] == ["server_error", "connection"]
    assert [e.attributes[semconv.TL_TOOL_ATTEMPT] for e in span.events] == [1, 2]


async def test_a_raising_tool_is_not_retried_and_answers_an_error(
    clock: FakeClock, sleeps: Sleeps, traced: Traced
) -> None:
    body = Flaky(KeyError("order_id"))
    cfg = config({"lookup_order": {"retry": {"max_attempts": 5}}})
    with traced.run() as run:
        result = await runner([make_tool(body)], cfg, clock, sleeps).run(call(), run=run)
    assert body.calls == 1
    assert sleeps.waits == []
    assert result.status == "error"  # type: ignore[union-attr]
    assert result.metadata["error"] == {
        "type": "error",
        "message": "'order_id'",
        "retryable": False,
    }  # type: ignore[union-attr]
    span = traced.one("execute_tool lookup_order")
    assert span.attributes[semconv.TL_TOOL_STATUS] == "error"
    assert span.attributes[semconv.ERROR_TYPE] == "error"
    assert span.attributes[semconv.TL_TOOL_RETRYABLE] is False


async def test_retry_on_from_config_decides_what_is_retried(
    clock: FakeClock, sleeps: Sleeps
) -> None:
    body = Flaky(ToolTransientError("429", kind="rate_limit", retry_after_s=4.0))
    cfg = config({"lookup_order": {"retry": {"max_attempts": 3, "retry_on": ["timeout"]}}})
    result = await runner([make_tool(body)], cfg, clock, sleeps).run(call())
    assert body.calls == 1
    assert result.error_kind == "rate_limit"  # type: ignore[union-attr]
    # The same failure with rate_limit listed is retried, after the Retry-After.
    body = Flaky(ToolTransientError("429", kind="rate_limit", retry_after_s=4.0))
    cfg = config({"lookup_order": {"retry": {"max_attempts": 3, "retry_on": ["rate_limit"]}}})
    result = await runner([make_tool(body)], cfg, clock, sleeps).run(call())
    assert result.status == "success"  # type: ignore[union-attr]
    assert sleeps.waits == [4.0]


async def test_a_hanging_tool_times_out_at_the_configured_limit(
    clock: FakeClock, sleeps: Sleeps
) -> None:
    calls = 0

    async def hang(order_id: str) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(30)
        return {}

    cfg = config(
        {"lookup_order": {"timeout_ms": 50, "retry": {"max_attempts": 2, "backoff_ms": 0}}}
    )
    started = time.monotonic()
    result = await runner([make_tool(hang)], cfg, clock, sleeps).run(call())
    elapsed = time.monotonic() - started
    assert calls == 2
    assert result.error_kind == "timeout"  # type: ignore[union-attr]
    assert "tools.lookup_order.timeout_ms = 50" in result.error_message  # type: ignore[union-attr, operator]
    assert "after 2 attempts" in result.error_message  # type: ignore[union-attr, operator]
    assert elapsed < 5


async def test_a_bundle_raising_the_timeout_changes_the_outcome(
    clock: FakeClock, sleeps: Sleeps
) -> None:
    async def slow(order_id: str) -> dict[str, Any]:
        clock.advance(3_500)  # simulated latency past a 3 s timeout
        return {"order_id": order_id}

    tight = config({"lookup_order": {"timeout_ms": 3000}})
    loose = tight.model_copy(
        update={
            "tools": {
                "lookup_order": tight.tools["lookup_order"].model_copy(update={"timeout_ms": 5000})
            }
        }
    )
    tools = [make_tool(slow)]
    assert (await runner(tools, tight, clock, sleeps).run(call())).error_kind == "timeout"  # type: ignore[union-attr]
    assert (await runner(tools, loose, clock, sleeps).run(call())).status == "success"  # type: ignore[union-attr]


async def test_a_sync_tool_that_blocks_still_times_out(clock: FakeClock, sleeps: Sleeps) -> None:
    def blocking(order_id: str) -> dict[str, Any]:
        time.sleep(0.5)
        return {}

    cfg = config({"blocking": {"timeout_ms": 50}})
    started = time.monotonic()
    result = await runner([Tool(blocking)], cfg, clock, sleeps).run(call("blocking"))
    assert result.error_kind == "timeout"  # type: ignore[union-attr]
    assert time.monotonic() - started < 0.45


async def test_wrong_output_shape_is_an_invalid_output_error(
    clock: FakeClock, sleeps: Sleeps, traced: Traced
) -> None:
    @tool
    async def totals(order_id: str) -> list[int]:
        """Totals."""
        return {"total": "lots"}  # type: ignore[return-value]

    with traced.run() as run:
        result = await runner([totals], config({}), clock, sleeps).run(call("totals"), run=run)
    assert result.error_kind == "invalid_output"  # type: ignore[union-attr]
    assert "wrong shape" in result.error_message  # type: ignore[union-attr, operator]
    assert traced.one("execute_tool totals").attributes[semconv.ERROR_TYPE] == "invalid_output"


async def test_unknown_and_disabled_tools_are_refused_and_traced(
    clock: FakeClock, sleeps: Sleeps, traced: Traced
) -> None:
    body = Flaky()
    cfg = config({"lookup_order": {}, "cancel_order": {"enabled": False}})
    tools = [make_tool(body), make_tool(Flaky(), name="cancel_order")]
    run_tools = runner(tools, cfg, clock, sleeps)
    assert [spec.name for spec in run_tools.specs()] == ["lookup_order"]
    with traced.run() as run:
        unknown = await run_tools.run(call("delete_everything"), run=run)
        disabled = await run_tools.run(call("cancel_order"), run=run)
    for result in (unknown, disabled):
        assert result.error_kind == "unknown_tool"  # type: ignore[union-attr]
        assert "available tools: lookup_order" in result.error_message  # type: ignore[union-attr, operator]
    span = traced.one("execute_tool delete_everything")
    assert span.attributes[semconv.ERROR_TYPE] == "unknown_tool"
    assert semconv.GEN_AI_TOOL_CALL_ARGUMENTS not in span.attributes


async def test_invalid_json_arguments_get_a_structured_error_back(
    clock: FakeClock, sleeps: Sleeps, traced: Traced
) -> None:
    body = Flaky()
    with traced.run() as run:
        result = await runner([make_tool(body)], config({}), clock, sleeps).run(
            call(arguments='{"order_id": "A-1",,}'), run=run
        )
    assert body.calls == 0
    assert isinstance(result, ToolResult)
    error = json.loads(result.to_content())["error"]
    assert error["type"] == "invalid_arguments"
    assert error["details"][0]["type"] == "json_invalid"
    assert "Call it again with arguments that match its schema" in error["message"]
    span = traced.one("execute_tool lookup_order")
    assert span.attributes[semconv.ERROR_TYPE] == "invalid_arguments"


async def test_static_fallback_answers_partial(
    clock: FakeClock, sleeps: Sleeps, traced: Traced
) -> None:
    body = Flaky(ToolTransientError("down", kind="server_error"))
    cfg = config({"lookup_order": {"fallback": {"kind": "static", "value": {"status": "unknown"}}}})
    with traced.run() as run:
        result = await runner([make_tool(body)], cfg, clock, sleeps).run(call(), run=run)
    assert result == ToolResult(
        "partial",
        {"status": "unknown"},
        {
            "fallback": "static",
            "cause": {"type": "server_error", "message": "down", "retryable": True},
            "attempts": 1,
        },
    )
    span = traced.one("execute_tool lookup_order")
    assert span.attributes[semconv.TL_TOOL_STATUS] == "partial"
    assert span.attributes[semconv.TL_TOOL_FALLBACK] == "static"


async def test_cache_fallback_serves_the_last_good_result_within_max_age(
    clock: FakeClock, sleeps: Sleeps
) -> None:
    body = Flaky(answer={"status": "shipped"})
    cfg = config({"lookup_order": {"fallback": {"kind": "cache", "max_age_s": 600}}})
    tools = runner([make_tool(body)], cfg, clock, sleeps)
    assert (await tools.run(call())).status == "success"  # type: ignore[union-attr]
    body.errors = [ToolTransientError("down", kind="server_error")] * 2
    clock.advance(120_000)
    stale = await tools.run(call())
    assert stale.status == "partial"  # type: ignore[union-attr]
    assert stale.data == {"status": "shipped", "order_id": "A-1"}  # type: ignore[union-attr]
    assert stale.metadata["cache_age_s"] == 120.0  # type: ignore[union-attr]
    clock.advance(600_000)
    too_old = await tools.run(call())
    assert too_old.error_kind == "server_error"  # type: ignore[union-attr]
    # Another order has no last good result to fall back on.
    body.errors = [ToolTransientError("down", kind="server_error")]
    assert (await tools.run(call(arguments='{"order_id": "B-2"}'))).status == "error"  # type: ignore[union-attr]


async def test_tool_fallback_calls_the_other_tool(
    clock: FakeClock, sleeps: Sleeps, traced: Traced
) -> None:
    primary = Flaky(ToolTransientError("down", kind="connection"))
    replica = Flaky(answer={"status": "shipped (replica)"})
    cfg = config(
        {
            "lookup_order": {"fallback": {"kind": "tool", "tool": "lookup_replica"}},
            "lookup_replica": {},
        }
    )
    tools = [make_tool(primary), make_tool(replica, name="lookup_replica")]
    with traced.run() as run:
        result = await runner(tools, cfg, clock, sleeps).run(call(), run=run)
    assert result.status == "partial"  # type: ignore[union-attr]
    assert result.data == {"status": "shipped (replica)", "order_id": "A-1"}  # type: ignore[union-attr]
    assert result.metadata["fallback_tool"] == "lookup_replica"  # type: ignore[union-attr]
    outer = traced.one("execute_tool lookup_order")
    inner = traced.one("execute_tool lookup_replica")
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert inner.attributes[semconv.TL_TOOL_STATUS] == "success"


async def test_tool_results_are_cached_for_their_ttl(
    clock: FakeClock, sleeps: Sleeps, traced: Traced
) -> None:
    body = Flaky()
    cfg = config({"lookup_order": {"cache_ttl_s": 30}})
    tools = runner([make_tool(body)], cfg, clock, sleeps)
    with traced.run() as run:
        first = await tools.run(call(), run=run)
        second = await tools.run(call(call_id="call_2"), run=run)
    assert body.calls == 1
    assert second.data == first.data  # type: ignore[union-attr]
    assert second.metadata == {"cache_hit": True}  # type: ignore[union-attr]
    hits = [
        span.attributes[semconv.TL_CACHE_HIT] for span in traced.named("execute_tool lookup_order")
    ]
    assert hits == [False, True]
    clock.advance(31_000)
    await tools.run(call())
    assert body.calls == 2


async def test_requires_approval_parks_until_approved(clock: FakeClock, sleeps: Sleeps) -> None:
    body = Flaky()
    cfg = config({"lookup_order": {"requires_approval": True}})
    tools = runner([make_tool(body)], cfg, clock, sleeps)
    parked = await tools.run(call())
    assert isinstance(parked, ApprovalRequired)
    assert parked.source == "tool_settings"
    assert parked.arguments == {"order_id": "A-1"}
    assert "tools.lookup_order.requires_approval" in parked.reason
    assert body.calls == 0
    done = await tools.run(call(), approved=True)
    assert done.status == "success"  # type: ignore[union-attr]
    assert body.calls == 1


async def test_config_cannot_loosen_what_the_code_declares(
    clock: FakeClock, sleeps: Sleeps
) -> None:
    body = Flaky()
    refund = make_tool(body, name="issue_refund", side_effect="write", requires_approval=True)
    cfg = config({"issue_refund": {"side_effect": "read", "requires_approval": False}})
    tools = runner([refund], cfg, clock, sleeps)
    assert isinstance(await tools.run(call("issue_refund")), ApprovalRequired)
    with pytest.raises(ConfigError, match="cannot be cached"):
        runner([refund], config({"issue_refund": {"cache_ttl_s": 60}}), clock, sleeps)


def test_settings_for_missing_tools_are_config_errors(clock: FakeClock, sleeps: Sleeps) -> None:
    with pytest.raises(ConfigError, match=r"no Tool provides: \['lookup_ordr'\]"):
        runner([make_tool(Flaky())], config({"lookup_ordr": {}}), clock, sleeps)
    with pytest.raises(ConfigError, match="unique"):
        runner([make_tool(Flaky()), make_tool(Flaky())], config({}), clock, sleeps)


def test_run_sync_for_scripts(clock: FakeClock, sleeps: Sleeps) -> None:
    result = runner([make_tool(Flaky())], config({}), clock, sleeps).run_sync(call())
    assert result.status == "success"  # type: ignore[union-attr]


async def test_an_error_envelope_from_the_tool_is_a_failure_of_its_kind(
    clock: FakeClock, sleeps: Sleeps
) -> None:
    answers = [ToolResult.error("rate_limit", "quota exhausted", retryable=True)]

    @tool
    async def quota(order_id: str) -> ToolResult:
        """Reports its own failures."""
        return answers.pop(0) if answers else ToolResult.success({"left": 3})

    cfg = config({"quota": {"retry": {"max_attempts": 2, "backoff_ms": 10}}})
    result = await runner([quota], cfg, clock, sleeps).run(call("quota"))
    assert result == ToolResult("success", {"left": 3}, {"attempts": 2})
    assert len(sleeps.waits) == 1

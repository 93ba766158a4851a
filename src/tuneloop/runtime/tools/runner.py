"""`ToolRunner`: executes the model's tool calls under the config's contract.

For each call: refuse unknown or disabled tools; validate the arguments (a malformed
call gets a structured error back, not an exception); run the ``tool_args``
guardrails; stop for approval when required; answer a repeated write from the
idempotency ledger and a read from the cache; otherwise call the tool under its
timeout, retrying transient failures with backoff while its circuit breaker allows;
fall back (last good result, a static answer, another tool) when it still fails; run
the ``tool_output`` guardrails. Every setting is read from the config's ``tools``
section at call time, so a bundle changing a timeout changes the next call.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tuneloop import semconv
from tuneloop.clock import Clock
from tuneloop.config.model import AgentConfig, ToolSettings
from tuneloop.errors import ConfigError
from tuneloop.runtime.cache import Cache, InMemoryCache, tool_key
from tuneloop.runtime.guardrails.base import GuardrailPipeline
from tuneloop.runtime.guardrails.registry import GuardrailFactory, build_pipeline
from tuneloop.runtime.providers.base import ToolCallRequest, ToolSpec
from tuneloop.runtime.timing import Sleep, real_sleep
from tuneloop.runtime.tools.contract import Tool, ToolContext, ToolResult
from tuneloop.runtime.tools.execution import (
    ApprovalRequired,
    KeyLocks,
    ToolOutcome,
    attempt_once,
    blocked,
    invalid_arguments,
)
from tuneloop.runtime.tools.idempotency import (
    IdempotencyLedger,
    InMemoryLedger,
    LedgerEntry,
    idempotency_key,
)
from tuneloop.runtime.tools.plan import ToolPlan, check_settings, plan_for
from tuneloop.runtime.tools.resilience import BreakerBoard, CircuitBreaker, Failure, RetrySchedule
from tuneloop.runtime.tools.tracing import ToolSpan, close_span, open_span, refuse
from tuneloop.sdk.spans import Run


@dataclass(frozen=True, slots=True)
class _Call:
    request: ToolCallRequest
    run: Run | None
    scope: str


class ToolRunner:
    """Runs tool calls with the contract an `AgentConfig`'s ``tools`` section sets.

    Args:
        tools: the tools the agent's code provides.
        settings: per-tool settings by name (a config's ``tools``); tools not listed
            run with the defaults.
        clock: time for breakers, caches and the ledger.
        rng: backoff jitter.
        sleep: how backoff waits (`simulated_sleep` in simulations).
        cache: tool-result cache and last-good results (default: in process).
        ledger: results of side-effecting calls (default: in process).
        breakers: circuit breakers, shared across runners (default: this runner's own).
        guardrails: the ``tool_args`` and ``tool_output`` guardrails.

    Raises:
        ConfigError: settings for a tool no `Tool` provides, two tools with one name,
            or settings unsafe for a tool's side effect (caching a write).
    """

    def __init__(
        self,
        tools: Iterable[Tool],
        settings: Mapping[str, ToolSettings] | None = None,
        *,
        clock: Clock,
        rng: random.Random,
        sleep: Sleep = real_sleep,
        cache: Cache | None = None,
        ledger: IdempotencyLedger | None = None,
        breakers: BreakerBoard | None = None,
        guardrails: GuardrailPipeline | None = None,
    ) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            if item.name in self._tools:
                raise ConfigError(f"two tools are named {item.name!r}; tool names must be unique")
            self._tools[item.name] = item
        self._settings = dict(settings or {})
        self._clock = clock
        self._rng = rng
        self._sleep = sleep
        self._cache: Cache = cache if cache is not None else InMemoryCache(clock=clock)
        self._ledger: IdempotencyLedger = ledger if ledger is not None else InMemoryLedger()
        self._breakers = breakers if breakers is not None else BreakerBoard(clock=clock)
        self._guardrails = guardrails or GuardrailPipeline()
        self._locks = KeyLocks()
        check_settings(self._tools, self._settings)

    @classmethod
    def from_config(
        cls,
        tools: Iterable[Tool],
        config: AgentConfig,
        *,
        clock: Clock,
        rng: random.Random,
        sleep: Sleep = real_sleep,
        cache: Cache | None = None,
        ledger: IdempotencyLedger | None = None,
        breakers: BreakerBoard | None = None,
        custom_guardrails: Mapping[str, GuardrailFactory] | None = None,
    ) -> ToolRunner:
        """A runner with the config's tool settings and its guardrails.

        Args are as for `ToolRunner`; ``custom_guardrails`` builds ``kind: custom`` specs.
        """
        return cls(
            tools,
            config.tools,
            clock=clock,
            rng=rng,
            sleep=sleep,
            cache=cache,
            ledger=ledger,
            breakers=breakers,
            guardrails=build_pipeline(config, custom=custom_guardrails),
        )

    def settings_for(self, name: str) -> ToolSettings:
        """The settings tool ``name`` runs with."""
        return self._settings.get(name) or ToolSettings()

    def specs(self) -> list[ToolSpec]:
        """The enabled tools as the model should see them (config descriptions win)."""
        return [
            item.spec(self.settings_for(name).description)
            for name, item in self._tools.items()
            if self.settings_for(name).enabled
        ]

    async def run(
        self,
        call: ToolCallRequest,
        *,
        run: Run | None = None,
        scope: str | None = None,
        approved: bool = False,
    ) -> ToolOutcome:
        """Execute one tool call; never raises for a tool's failure (the envelope says it).

        Args:
            call: the model's tool call.
            run: trace the call (and its guardrails) in this run.
            scope: what distinguishes this call from an identical one (default: the
                call id); the state machine passes its run and step.
            approved: a human approved it: skip approval gates.
        """
        plan = self._plan(call.name)
        if plan is None:
            available = ", ".join(item.name for item in self.specs()) or "none"
            return refuse(
                run,
                call,
                ToolResult.error(
                    "unknown_tool",
                    f"there is no tool named {call.name!r}; available tools: {available}",
                ),
            )
        check = plan.tool.check_arguments(call.arguments)
        if check.values is None:
            return refuse(run, call, invalid_arguments(plan.name, check.problems))
        values, arguments = check.values, check.data
        verdict = await self._guardrails.run("tool_args", arguments, tool=plan.name, run=run)
        if verdict.blocked:
            return refuse(run, call, blocked(plan.name, verdict.reason))
        if verdict.verdict == "redact":
            check = plan.tool.check_arguments(verdict.content)
            if check.values is None:
                return refuse(run, call, invalid_arguments(plan.name, check.problems))
            values, arguments = check.values, check.data
        key = idempotency_key(plan.name, arguments, scope=scope or call.id)
        if not approved and (verdict.needs_approval or plan.requires_approval):
            by_guardrail = verdict.needs_approval
            return ApprovalRequired(
                plan.name,
                call.id,
                arguments,
                key,
                verdict.reason
                if by_guardrail
                else f"tool {plan.name!r} requires approval (tools.{plan.name}.requires_approval)",
                "guardrail" if by_guardrail else "tool_settings",
            )
        current = _Call(call, run, scope or call.id)
        with open_span(run, plan.name, arguments, call.id, plan.side_effect) as span:
            result = await self._execute(plan, values, arguments, key, current, span, depth=0)
            outcome = await self._guard_output(plan, result, arguments, key, current, approved)
            close_span(span, outcome if isinstance(outcome, ToolResult) else result)
            return outcome

    def run_sync(
        self,
        call: ToolCallRequest,
        *,
        run: Run | None = None,
        scope: str | None = None,
        approved: bool = False,
    ) -> ToolOutcome:
        """`run` for scripts without an event loop."""
        return asyncio.run(self.run(call, run=run, scope=scope, approved=approved))

    def _plan(self, name: str) -> ToolPlan | None:
        item = self._tools.get(name)
        return None if item is None else plan_for(item, self.settings_for(name))

    async def _execute(
        self,
        plan: ToolPlan,
        values: BaseModel,
        arguments: Mapping[str, Any],
        key: str,
        call: _Call,
        span: ToolSpan,
        *,
        depth: int,
    ) -> ToolResult:
        if plan.side_effect != "read":
            async with self._locks.hold(key):
                entry = await self._ledger.get(key)
                if entry is not None:
                    span.span.set_attribute(semconv.TL_TOOL_IDEMPOTENT_REPLAY, True)
                    return ToolResult.from_dict(entry.result).with_metadata(
                        idempotent_replay=True, recorded_at_ms=entry.recorded_at_ms
                    )
                result = await self._resilient(plan, values, arguments, key, call, span, depth)
                if result.status != "error" and "fallback" not in result.metadata:
                    record = {"status": result.status, "data": result.data}
                    await self._ledger.record(
                        LedgerEntry(key, plan.name, record, self._clock.now_ms())
                    )
                return result
        settings = plan.settings
        cache_key = tool_key(plan.name, arguments)
        if settings.cache_ttl_s:
            hit = await self._cache.get(cache_key)
            span.span.set_attribute(semconv.TL_CACHE_HIT, hit is not None)
            span.span.set_attribute(semconv.TL_CACHE_KIND, semconv.CACHE_KIND_TOOL)
            if hit is not None:
                return ToolResult.from_dict(hit.value).with_metadata(cache_hit=True)
        result = await self._resilient(plan, values, arguments, key, call, span, depth)
        if result.status != "error" and "fallback" not in result.metadata:
            stored = {"status": result.status, "data": result.data}
            if settings.cache_ttl_s:
                await self._cache.set(cache_key, stored, ttl_s=settings.cache_ttl_s)
            if settings.fallback is not None and settings.fallback.kind == "cache":
                await self._cache.set("last-good:" + cache_key, stored)
        return result

    async def _resilient(
        self,
        plan: ToolPlan,
        values: BaseModel,
        arguments: Mapping[str, Any],
        key: str,
        call: _Call,
        span: ToolSpan,
        depth: int,
    ) -> ToolResult:
        schedule = RetrySchedule.from_settings(plan.settings.retry)
        breaker = self._breakers.breaker(plan.name, plan.settings.circuit_breaker)
        attempt, failure = 0, None
        while True:
            permit = breaker.acquire() if breaker is not None else "call"
            if permit is None:
                failure = failure or Failure(
                    "circuit_open",
                    f"tool {plan.name!r} is failing: its circuit breaker is open and it was "
                    "not called; try again later or do without it",
                    "CircuitOpen",
                )
                break
            attempt += 1
            context = ToolContext(plan.name, call.request.id, key, attempt)
            try:
                outcome = await attempt_once(
                    plan.tool, plan.settings, values, context, clock=self._clock
                )
            except BaseException:
                if breaker is not None:
                    breaker.release(permit)
                raise
            if isinstance(outcome, ToolResult):
                if breaker is not None:
                    breaker.record_success(permit)
                return _tag(outcome.with_metadata(attempts=attempt), breaker, span)
            failure = outcome
            if breaker is not None:
                breaker.record_failure(permit)
            span.span.add_event(
                semconv.TL_TOOL_ATTEMPT_FAILED_EVENT,
                {
                    semconv.TL_TOOL_ATTEMPT: attempt,
                    semconv.ERROR_TYPE: failure.kind,
                    semconv.TL_TOOL_ERROR_MESSAGE: failure.message,
                },
                timestamp=self._clock.now_ns(),
            )
            if not schedule.should_retry(failure, attempt):
                break
            await self._sleep(schedule.delay_s(attempt, self._rng, failure.retry_after_s))
        fallback = await self._fallback(plan, arguments, failure, call, depth)
        if fallback is not None:
            span.span.set_attribute(semconv.TL_TOOL_FALLBACK, plan.settings.fallback.kind)  # type: ignore[union-attr]
            return _tag(fallback.with_metadata(attempts=attempt), breaker, span)
        tries = f" after {attempt} attempt{'s' if attempt != 1 else ''}" if attempt > 1 else ""
        error = ToolResult.error(
            failure.kind,
            f"{failure.message}{tries}",
            retryable=failure.retryable,
            attempts=attempt,
            error_type=failure.error_type,
        )
        return _tag(error, breaker, span)

    async def _fallback(
        self,
        plan: ToolPlan,
        arguments: Mapping[str, Any],
        failure: Failure,
        call: _Call,
        depth: int,
    ) -> ToolResult | None:
        fallback = plan.settings.fallback
        if fallback is None or depth > 0:
            return None
        cause = {"type": failure.kind, "message": failure.message, "retryable": failure.retryable}
        if fallback.kind == "static":
            return ToolResult.partial(fallback.value, fallback="static", cause=cause)
        if fallback.kind == "cache":
            entry = await self._cache.get("last-good:" + tool_key(plan.name, arguments))
            if entry is None:
                return None
            age_s = entry.age_s(self._clock.now_ms())
            if fallback.max_age_s is not None and age_s > fallback.max_age_s:
                return None
            data = entry.value.get("data")
            return ToolResult.partial(data, fallback="cache", cache_age_s=age_s, cause=cause)
        other = self._plan(fallback.tool or "")
        if other is None:
            return None
        check = other.tool.check_arguments(dict(arguments))
        if check.values is None:
            return None
        key = idempotency_key(other.name, check.data, scope=call.scope)
        with open_span(
            call.run, other.name, check.data, call.request.id, other.side_effect
        ) as span:
            result = await self._execute(other, check.values, check.data, key, call, span, depth=1)
            close_span(span, result)
        if result.status == "error":
            return None
        return ToolResult.partial(
            result.data, fallback="tool", fallback_tool=other.name, cause=cause
        )

    async def _guard_output(
        self,
        plan: ToolPlan,
        result: ToolResult,
        arguments: Mapping[str, Any],
        key: str,
        call: _Call,
        approved: bool,
    ) -> ToolOutcome:
        if result.status == "error" or not self._guardrails.at("tool_output"):
            return result
        verdict = await self._guardrails.run(
            "tool_output", result.data, tool=plan.name, run=call.run
        )
        if verdict.blocked:
            return blocked(plan.name, verdict.reason)
        if verdict.verdict == "redact":
            result = ToolResult(
                result.status, verdict.content, {**result.metadata, "redacted": True}
            )
        if verdict.needs_approval and not approved:
            return ApprovalRequired(
                plan.name,
                call.request.id,
                arguments,
                key,
                verdict.reason,
                "guardrail",
                hop="tool_output",
                pending=result,
            )
        return result


def _tag(result: ToolResult, breaker: CircuitBreaker | None, span: ToolSpan) -> ToolResult:
    if breaker is not None:
        span.span.set_attribute(semconv.TL_TOOL_CIRCUIT_STATE, breaker.state)
    return result

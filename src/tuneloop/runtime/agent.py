"""`Agent`: the model-tool loop with a durable state machine, review, budgets and routing.

Example:
    ```python
    agent = Agent((client, "support"), [lookup_order, refund], provider, store="runs.db")
    result = await agent.run("Where is order A-1001?", unit_id="user-42")
    if result.waiting:                        # parked for a human: approve it, then
        result = await agent.resume(result.run_id)
    ```

Each run reads its config through the config source (``client.config(...)``, so
experiments and rollouts apply), traces itself through the SDK, and saves a
checkpoint after every step, so a new process resumes it from there.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.util.types import AttributeValue

from tuneloop import semconv
from tuneloop.clock import Clock, SystemClock
from tuneloop.config.model import AgentConfig, CircuitBreakerSettings
from tuneloop.errors import ConfigError, NotFoundError
from tuneloop.runtime import sources
from tuneloop.runtime.cache import ResponseCache
from tuneloop.runtime.checkpoints import StoreLike, open_checkpoint_store
from tuneloop.runtime.driver import RunDriver
from tuneloop.runtime.failover import Caller, ProviderSet
from tuneloop.runtime.guardrails.registry import GuardrailFactory, build_pipeline
from tuneloop.runtime.handoff import Handoff
from tuneloop.runtime.machine import state_timeouts
from tuneloop.runtime.prepared import Prepared, PreparedCache
from tuneloop.runtime.providers.base import ChatResponse, Provider
from tuneloop.runtime.record import RunRecord, config_entry
from tuneloop.runtime.result import Listener, RunResult
from tuneloop.runtime.review import Decision, ReviewItem, ReviewStatus
from tuneloop.runtime.routing import Route
from tuneloop.runtime.sources import ConfigSource
from tuneloop.runtime.timing import Sleep, real_sleep
from tuneloop.runtime.tools.contract import Tool
from tuneloop.runtime.tools.resilience import BreakerBoard, RetrySchedule
from tuneloop.runtime.tools.runner import ToolRunner
from tuneloop.sdk.config import ResolvedConfig
from tuneloop.sdk.spans import Run, run_attributes
from tuneloop.settings import load_settings
from tuneloop.telemetry.pricing import Price, PriceTable

Confidence = Callable[[ChatResponse], float | None]
"""Scores the model's final answer in [0, 1]; under ``review.min_confidence`` it goes to review."""
Intent = Callable[[str], str | None]
"""Classifies the user's input for routing rules (``intents``)."""
DECISION_ROUTING = "routing"
"""``tuneloop.decision.step`` of the tier an agent's routing rules chose (on its agent span)."""


class Agent:
    """An agent: a config source, tools, and models, run durably.

    Args:
        config_source: ``(client, "agent name")`` (configs through the SDK), an
            `AgentConfig` or a config file path (offline; pass ``name``), or a
            `ConfigSource`.
        tools: the tools its model may call.
        provider: the model provider; or several, by name (``{"openai": ..., "anthropic":
            ...}``), which the config's ``model`` and ``routing.tiers`` name.
        store: where runs are checkpointed: ``None`` (memory), a SQLite path, a
            database URL, a tuneloop ``Store`` or a `CheckpointStore`.
        clock: time for the state machine, timeouts, caches and spans.
        name: the agent's name (for a static config).
        description: what it handles, for a router that hands over to it.
        handoffs: specialists its model may hand the conversation to.
        tracing: where spans go: a ``Client`` or an OpenTelemetry ``TracerProvider``;
            default: the config source's client, else the global provider.
        project_id: the project of stored rows (review items show up there).
        sleep: how retries wait (`simulated_sleep` in simulations).
        rng: retry jitter.
        breakers: circuit breakers shared with other agents of the process.
        prices: model prices for USD budgets (default: the settings' table).
        system_prompt: the name of the config prompt used as the system message.
        intent: classifies inputs for routing rules.
        confidence: scores final answers for ``review.min_confidence``.
        response_cache_ttl_s: answer identical model requests from the store's cache.
        provider_retry: retries of one model before failing over.
        provider_breaker: the circuit breaker of each provider.
        custom_guardrails: factories for ``kind: custom`` guardrails.
        listeners: told every `RunEvent`.

    Raises:
        ConfigError: an invalid source, tools or providers.
    """

    def __init__(
        self,
        config_source: Any,
        tools: Iterable[Tool],
        provider: Provider | Mapping[str, Provider] | Sequence[Provider],
        *,
        store: StoreLike | None = None,
        clock: Clock | None = None,
        name: str | None = None,
        description: str = "",
        handoffs: Sequence[Agent] = (),
        tracing: Any = None,
        project_id: str = "default",
        sleep: Sleep = real_sleep,
        rng: random.Random | None = None,
        breakers: BreakerBoard | None = None,
        prices: Mapping[str, Price] | PriceTable | None = None,
        system_prompt: str = "system",
        intent: Intent | None = None,
        confidence: Confidence | None = None,
        response_cache_ttl_s: float | None = None,
        provider_retry: RetrySchedule | None = None,
        provider_breaker: CircuitBreakerSettings | None = None,
        custom_guardrails: Mapping[str, GuardrailFactory] | None = None,
        listeners: Sequence[Listener] = (),
    ) -> None:
        self.source: ConfigSource = sources.config_source(config_source, name=name)
        self.name = self.source.agent
        self.description = description or self.name
        self.tools = tuple(tools)
        self.clock: Clock = clock or SystemClock()
        self.store = open_checkpoint_store(store, clock=self.clock, project_id=project_id)
        self.specialists = {agent.name: agent for agent in handoffs}
        self.handoffs = tuple(Handoff(a.name, a.description) for a in handoffs)
        self.system_prompt = system_prompt
        self.intent = intent
        self.confidence = confidence
        self.custom_guardrails = custom_guardrails
        self.listeners = tuple(listeners)
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.breakers = breakers or BreakerBoard(clock=self.clock)
        self.prices = (
            prices
            if isinstance(prices, PriceTable)
            else PriceTable(prices if prices is not None else load_settings().prices())
        )
        self._providers = ProviderSet(provider)
        cache = None
        if response_cache_ttl_s is not None:
            cache = ResponseCache(self.store.cache, ttl_s=response_cache_ttl_s)
        self.caller = Caller(
            self._providers,
            self.breakers,
            provider_breaker or CircuitBreakerSettings(),
            provider_retry or RetrySchedule(max_attempts=2, backoff_ms=200, max_backoff_ms=2000),
            sleep,
            self.rng,
            self.clock,
            cache,
        )
        client = tracing if tracing is not None and hasattr(tracing, "run") else self.source.client
        if tracing is not None and not hasattr(tracing, "run"):
            self.tracer = tracing.get_tracer("tuneloop.runtime")
        elif client is not None:
            self.tracer = client.tracer
        else:
            self.tracer = trace.get_tracer("tuneloop.runtime")
        self.span_clock: Clock | None = self.clock
        self._prepared = PreparedCache()
        names = [tool.name for tool in self.tools] + [h.tool_name for h in self.handoffs]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ConfigError(f"agent {self.name!r}: two tools (or handoffs) named {clashes}")

    # --- running --------------------------------------------------------------------

    async def run(
        self,
        input: Any,
        *,
        unit_id: str | None = None,
        session_id: str | None = None,
        run_id: str | None = None,
        intent: str | None = None,
        tier: str | None = None,
    ) -> RunResult:
        """Run the agent on ``input`` (text; other JSON data is sent as its JSON text).

        Args:
            input: what the user said.
            unit_id: the user (or account) experiments assign.
            session_id: the conversation; session budgets add up over its runs.
            run_id: the run's id (default: a random one); `resume` takes it.
            intent: the request's intent for routing rules (default: the ``intent``
                classifier, if the agent has one).
            tier: a routing tier to use, whatever the rules say.

        Returns:
            How the run ended, or that it waits for a reviewer (``result.waiting``).
        """
        text = input if isinstance(input, str) else json.dumps(input, ensure_ascii=False)
        resolved = self.source.resolve(unit_id=unit_id, session_id=session_id)
        if intent is None and self.intent is not None:
            intent = self.intent(text)
        record = RunRecord(
            run_id=run_id or uuid.uuid4().hex,
            root=self.name,
            input_text=text,
            created_ms=self.clock.now_ms(),
            unit_id=unit_id,
            session_id=session_id,
            intent=intent,
            tier=tier,
        )
        prep = self._prepared.get(
            self.name, resolved.version, lambda: self._build(self, resolved, None)
        )
        record.configs[self.name] = config_entry(resolved, prep.data)
        return await self._drive(record, resumed=False)

    def run_sync(self, input: Any, **kwargs: Any) -> RunResult:
        """`run` for scripts without an event loop."""
        return asyncio.run(self.run(input, **kwargs))

    async def resume(self, run_id: str) -> RunResult:
        """Continue a run from its last checkpoint (after a crash, or a review decision).

        A finished run, or one whose review is still pending, is returned as it stands.

        Raises:
            NotFoundError: no such run in the store.
            ConflictError: another process continued the run meanwhile.
        """
        checkpoint = await self.store.load(run_id)
        if checkpoint is None:
            raise NotFoundError(f"no run {run_id!r} in the store; was it started with this store?")
        record = RunRecord.from_checkpoint(checkpoint)
        if record.root != self.name:
            raise ConfigError(f"run {run_id!r} belongs to agent {record.root!r}, not {self.name!r}")
        if record.machine.terminal:
            return record.result()
        if record.machine.state == "waiting_approval":
            pending = await self.store.review(str((record.pending or {}).get("review_id")))
            limit = self.prepared_for(record, self.name).timeouts.get("waiting_approval")
            overdue = limit is not None and (
                self.clock.now_ms() - record.machine.entered_ms > limit
            )
            if pending is not None and not pending.decided and not overdue:
                return record.result(review=pending)
        record.machine = record.machine.resumed(self.clock.now_ms())
        return await self._drive(record, resumed=True)

    def resume_sync(self, run_id: str) -> RunResult:
        """`resume` for scripts without an event loop."""
        return asyncio.run(self.resume(run_id))

    async def decide(
        self, review_id: str, decision: Decision, *, reviewer: str, reason: str = ""
    ) -> ReviewItem:
        """Record a reviewer's decision (as the server's review endpoints do); then `resume`."""
        return await self.store.decide(
            review_id, decision, reviewer=reviewer, reason=reason, now_ms=self.clock.now_ms()
        )

    async def reviews(self, status: ReviewStatus | None = "pending") -> list[ReviewItem]:
        """This project's review items (default: the pending ones), oldest first."""
        return [item for item in await self.store.reviews(status=status) if item.agent == self.name]

    async def resume_decided(self) -> list[RunResult]:
        """Resume every parked run of this agent whose review is decided (or timed out)."""
        results = []
        for checkpoint in await self.store.runs(agent=self.name, states=["waiting_approval"]):
            result = await self.resume(checkpoint.run_id)
            if not result.waiting:
                results.append(result)
        return results

    # --- internals used by RunDriver --------------------------------------------------

    def prepared_for(self, record: RunRecord, name: str) -> Prepared:
        """The prepared config of agent ``name`` in ``record``'s run (resolved on first use)."""
        agent = self._find(name)
        entry = record.configs.get(name)
        if entry is None:
            resolved = agent.source.resolve(unit_id=record.unit_id, session_id=record.session_id)
            prep = self._prepared.get(
                name, resolved.version, lambda: self._build(agent, resolved, None)
            )
            record.configs[name] = config_entry(resolved, prep.data)
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attributes(resolved.span_attributes)
            return prep
        return self._prepared.get(name, entry["version"], lambda: self._from_entry(agent, entry))

    def record_route(self, decision: Route) -> None:
        """Record a routing decision on the current agent span."""
        span = trace.get_current_span()
        if decision.tier is not None:
            span.set_attribute(semconv.TL_ROUTING_TIER, decision.tier)
            span.set_attribute(semconv.TL_DECISION_STEP, DECISION_ROUTING)
            span.set_attribute(semconv.TL_DECISION_VALUE, decision.tier)
        span.set_attribute(semconv.TL_ROUTING_REASON, decision.reason)
        if decision.intent is not None:
            span.set_attribute(semconv.TL_ROUTING_INTENT, decision.intent)

    def _find(self, name: str) -> Agent:
        if name == self.name:
            return self
        for specialist in self.specialists.values():
            try:
                return specialist._find(name)
            except NotFoundError:
                continue
        raise NotFoundError(
            f"agent {self.name!r} has no specialist {name!r}; handoffs: {sorted(self.specialists)}"
        )

    def _from_entry(self, agent: Agent, entry: Mapping[str, Any]) -> Prepared:
        config = AgentConfig.from_data(
            entry["config"], source=f"the config pinned by a run of {agent.name!r}"
        )
        resolved = ResolvedConfig(
            agent.name,
            config,
            entry["version"],
            entry.get("label"),
            entry.get("variant"),
            entry.get("key"),
            entry.get("kind"),
            entry.get("source", "server"),
        )
        return self._build(agent, resolved, entry["config"])

    def _build(
        self, agent: Agent, resolved: ResolvedConfig, data: Mapping[str, Any] | None
    ) -> Prepared:
        config = resolved.config
        reachable = list(config.routing.tiers.values())
        if config.routing.default_tier is None:
            reachable.append(config.model)
        for ref in reachable:
            agent._providers.get(ref.provider)  # refuse a config naming a missing provider
        runner = ToolRunner.from_config(
            agent.tools,
            config,
            clock=self.clock,
            rng=self.rng,
            sleep=self.sleep,
            cache=self.store.cache,
            ledger=self.store.ledger,
            breakers=self.breakers,
            custom_guardrails=agent.custom_guardrails,
        )
        handoffs = {handoff.tool_name: handoff for handoff in agent.handoffs}
        return Prepared(
            agent=agent.name,
            resolved=resolved,
            config=config,
            data=data if data is not None else config.to_data(),
            runner=runner,
            guardrails=build_pipeline(config, custom=agent.custom_guardrails),
            timeouts=state_timeouts(config.limits),
            specs=(*runner.specs(), *(h.spec() for h in handoffs.values())),
            handoffs=handoffs,
            system_prompt=config.prompts.get(agent.system_prompt),
            caller=agent.caller,
            prompt_name=agent.system_prompt if agent.system_prompt in config.prompts else None,
        )

    async def _drive(self, record: RunRecord, *, resumed: bool) -> RunResult:
        with _after(record.segments), self._open_run(record) as run:
            context = run.span.get_span_context()
            record.segments.append(
                {"trace_id": run.trace_id, "span_id": format(context.span_id, "016x")}
            )
            driver = RunDriver(self, record, run)
            if resumed:
                await driver.claim()
            result = await driver.drive()
            run.set_attribute(semconv.TL_RUN_STATE, record.machine.state)
            run.set_attribute(semconv.TL_RUN_STEPS, record.step)
            if record.stop_reason is not None:
                run.set_attribute(semconv.TL_RUN_STOP_REASON, record.stop_reason)
            # A run parked for a human is escalated, as far as this segment goes.
            run.outcome(record.outcome or "escalated")
            return result

    def _open_run(self, record: RunRecord) -> Run:
        entry = record.configs[record.root]
        variant = entry.get("variant")
        attributes: dict[str, AttributeValue] = {
            semconv.TL_RUN_ID: record.run_id,
            semconv.TL_RUN_SEGMENT: len(record.segments) + 1,
        }
        return Run(
            self.tracer,
            self.name,
            run_attributes(
                self.name,
                unit_id=record.unit_id,
                session_id=record.session_id,
                config_version=entry["version"],
                variant=variant,
                experiment=entry.get("key") if variant is not None else None,
                extra=attributes,
            ),
            clock=self.span_clock,
        )


@contextmanager
def _after(segments: Sequence[dict[str, str]]) -> Iterator[None]:
    """Make the previous segment's span current, so the new run span links to it."""
    if not segments:
        yield
        return
    last = segments[-1]
    previous = SpanContext(
        trace_id=int(last["trace_id"], 16),
        span_id=int(last["span_id"], 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with trace.use_span(NonRecordingSpan(previous), end_on_exit=False):
        yield

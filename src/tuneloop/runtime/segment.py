"""The plumbing of a run segment: transitions, checkpoints, timeouts, spans, reviews asked for.

`RunDriver` (``driver.py``) decides what a run does in each state; `Segment` holds what
every state needs: the run's record and span, the prepared configs, the current
state's deadline, saving a checkpoint, telling listeners, parking for a reviewer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, TypeVar

from tuneloop import semconv
from tuneloop.runtime.budget import Spend
from tuneloop.runtime.handoff import agent_span
from tuneloop.runtime.machine import RunState
from tuneloop.runtime.prepared import Prepared
from tuneloop.runtime.providers.base import ChatRequest, ChatResponse, ToolCallRequest
from tuneloop.runtime.record import RunRecord
from tuneloop.runtime.result import OUTCOME_OF, STATE_OF, EventKind, RunEvent, StopReason
from tuneloop.runtime.review import ReviewItem, ReviewKind, ReviewSource, review_id
from tuneloop.runtime.routing import Candidate, Route, RouteRequest, route
from tuneloop.runtime.tools.execution import ApprovalRequired
from tuneloop.sdk.spans import LlmCall, Run

if TYPE_CHECKING:
    from tuneloop.runtime.agent import Agent

T = TypeVar("T")
_MS_PER_S = 1000.0
DECISION_HANDOFF = "handoff"
"""``tuneloop.decision.step`` of a router's choice of specialist (on the chat span that chose)."""


class StateTimeout(Exception):
    """A state outlived its ``limits.state_timeouts_ms`` (ends the run as ``state_timeout``)."""

    def __init__(self, state: RunState, limit_ms: int) -> None:
        super().__init__(
            f"the run spent more than {limit_ms} ms in {state!r} (limits.state_timeouts_ms.{state})"
        )


class Segment:
    """One segment of a run: its record, its span, and what every state needs."""

    def __init__(self, agent: Agent, record: RunRecord, run: Run) -> None:
        self._agent = agent
        self._record = record
        self._run = run
        self._clock = agent.clock
        self._store = agent.store
        self._spans = ExitStack()
        self._span_agent = record.root
        self._session_base: Spend | None = None
        self._segment_start = record.spend
        self._decision: ReviewItem | None = None
        self._review: ReviewItem | None = None
        self._preps: dict[str, Prepared] = {}
        self._routed: tuple[str, Route] | None = None

    async def _finish(self, stop: StopReason, *, error: str | None = None) -> None:
        record = self._record
        if record.machine.terminal:
            return
        record.stop_reason = stop
        record.outcome = OUTCOME_OF[stop]
        record.error = error
        await self._to(STATE_OF[stop], reason=stop)
        await self._save()

    async def _session_spend(self) -> Spend:
        record = self._record
        if record.session_id is None:
            return Spend()
        if self._session_base is None:
            self._session_base = await self._store.session_spend(record.root, record.session_id)
        return self._session_base + (record.spend - self._segment_start)

    # --- plumbing ---------------------------------------------------------------------

    def _prep(self) -> Prepared:
        return self._prepared(self._record.active)

    def _root_prep(self) -> Prepared:
        return self._prepared(self._record.root)

    def _prepared(self, name: str) -> Prepared:
        prep = self._preps.get(name)
        if prep is None:
            prep = self._preps[name] = self._agent.prepared_for(self._record, name)
        return prep

    def _start_conversation(self, prep: Prepared) -> None:
        self._record.restart_conversation(prep.opening(self._record.input))
        self._route(prep)

    def _route(self, prep: Prepared) -> Route:
        record = self._record
        request = RouteRequest(len(record.input), record.intent, record.tier)
        decision = route(prep.config.routing, prep.config.model, request)
        record.route = decision.to_data()
        self._agent.record_route(decision)
        self._routed = (record.active, decision)
        return decision

    def _current_route(self, prep: Prepared) -> Route:
        """The active agent's routing decision (made once per agent, kept in the checkpoint)."""
        record = self._record
        if self._routed is not None and self._routed[0] == record.active:
            return self._routed[1]
        if record.route is None:
            return self._route(prep)
        decision = Route.from_data(record.route)
        self._routed = (record.active, decision)
        return decision

    def _request(self, prep: Prepared, candidate: Candidate) -> ChatRequest:
        return ChatRequest.from_config(
            prep.config, self._record.messages, prep.specs, model=candidate.model.name
        )

    def _sync_agent_span(self) -> None:
        record = self._record
        if record.active == self._span_agent:
            return
        self._spans.close()
        self._spans = ExitStack()
        if record.active != record.root:
            source = record.path[-2] if len(record.path) > 1 else record.root
            self._spans.enter_context(
                agent_span(
                    self._agent.tracer,
                    record.active,
                    {semconv.TL_RUN_HANDOFF_FROM: source, semconv.TL_RUN_ID: record.run_id},
                    clock=self._agent.span_clock,
                )
            )
        self._span_agent = record.active

    def _check_overdue(self) -> None:
        record = self._record
        timeouts = self._prep().timeouts
        if not timeouts:
            return
        limit = record.machine.overdue(timeouts, self._clock.now_ms())
        if limit is not None:
            raise StateTimeout(record.machine.state, limit)

    async def _guarded(self, work: Awaitable[T], *, settle: bool = True) -> T:
        """Await ``work`` within what is left of the current state's timeout.

        With ``settle``, time spent past the deadline on the clock (simulated time does
        not move the event loop's) fails the state too; without, the caller checks.
        """
        record = self._record
        timeouts = self._prep().timeouts
        remaining = record.machine.remaining_ms(timeouts, self._clock.now_ms())
        if remaining is None:
            return await work
        try:
            async with asyncio.timeout(remaining / _MS_PER_S) as deadline:
                done = await work
        except TimeoutError:
            if deadline.expired():
                state = record.machine.state
                raise StateTimeout(state, timeouts[state]) from None
            raise
        if settle:
            self._check_overdue()
        return done

    async def _to(self, target: RunState, *, reason: str = "") -> None:
        record = self._record
        source = record.machine.state
        record.machine = record.machine.to(target, now_ms=self._clock.now_ms(), reason=reason)
        self._run.span.add_event(
            semconv.TL_RUN_TRANSITION_EVENT,
            {
                semconv.TL_RUN_STATE_FROM: source,
                semconv.TL_RUN_STATE_TO: target,
                semconv.TL_RUN_TRANSITION_REASON: reason,
                semconv.TL_RUN_STEPS: record.step,
            },
            timestamp=self._clock.now_ns(),
        )
        self._emit("transition", source=source, target=target, reason=reason)

    async def _save(self) -> None:
        record = self._record
        checkpoint = record.checkpoint(self._clock.now_ms())
        saved = await self._store.save(
            checkpoint,
            expected_version=record.version,
            session_spend=record.take_unsaved_spend(),
        )
        record.version = saved.version
        record.configs_saved = len(record.configs)
        self._emit("checkpoint", version=saved.version)

    def _emit(self, kind: EventKind, **detail: Any) -> None:
        listeners = self._agent.listeners
        if not listeners:
            return
        record = self._record
        event = RunEvent(kind, record.run_id, record.machine.state, record.step, detail)
        for listener in listeners:
            listener(event)

    async def _ask(
        self,
        kind: ReviewKind,
        reason: str,
        source: ReviewSource,
        *,
        call: ApprovalRequired | None = None,
        content: Any = None,
    ) -> ReviewItem | None:
        """The decided review, or ``None`` once the run is parked waiting for it."""
        record = self._record
        subject = call.call_id if call is not None else kind
        item = ReviewItem(
            review_id=review_id(record.run_id, record.step, subject),
            run_id=record.run_id,
            agent=record.root,
            kind=kind,
            reason=reason,
            source=source,
            created_ms=self._clock.now_ms(),
            tool=None if call is None else call.tool,
            call_id=None if call is None else call.call_id,
            arguments=None if call is None else dict(call.arguments),
            content=content,
            hop=None if call is None else call.hop,
            trace_id=self._run.trace_id,
            session_id=record.session_id,
            metadata={"agent": record.active, "step": record.step},
        )
        standing = await self._store.add_review(item)
        if standing.decided:
            return standing
        self._review = standing
        record.pending = {"review_id": standing.review_id, "kind": kind, "call_id": item.call_id}
        self._run.span.add_event(
            semconv.TL_REVIEW_REQUESTED_EVENT,
            {
                semconv.TL_REVIEW_ID: standing.review_id,
                semconv.TL_REVIEW_KIND: kind,
                semconv.TL_REVIEW_SOURCE: source,
                semconv.TL_REVIEW_REASON: reason,
            },
            timestamp=self._clock.now_ns(),
        )
        self._emit("review_requested", review_id=standing.review_id, review_kind=kind)
        await self._to("waiting_approval", reason=reason)
        await self._save()
        return None

    def _decision_for(self, kind: ReviewKind, call_id: str | None) -> ReviewItem | None:
        decision = self._decision
        if decision is None or decision.kind != kind or decision.call_id != call_id:
            return None
        self._decision = None
        return decision


def annotator(prep: Prepared) -> Callable[[LlmCall, ChatResponse], None]:
    """Marks a chat span with its prompt, and a router's handoff as its decision."""

    def annotate(call: LlmCall, response: ChatResponse) -> None:
        if prep.prompt_name is not None:
            call.span.set_attribute(semconv.TL_PROMPT_NAME, prep.prompt_name)
        for request in response.message.tool_calls:
            handoff = prep.handoffs.get(request.name)
            if handoff is not None:
                call.span.set_attribute(semconv.TL_DECISION_STEP, DECISION_HANDOFF)
                call.span.set_attribute(semconv.TL_DECISION_VALUE, handoff.agent)
                break

    return annotate


def call_arguments(call: ToolCallRequest) -> Any:
    """The call's arguments as data (as text under ``_raw`` when they are not JSON)."""
    try:
        return json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return {"_raw": call.arguments}


def progress(record: RunRecord) -> str:
    """What the run has done so far, for a message ending it early."""
    done = [f"{call['name']} ({call['status']})" for call in record.tool_calls]
    return "tool calls so far: " + ", ".join(done) if done else "no tool calls were made"


def stopped(reason: str, record: RunRecord) -> str:
    """The default message of a run ended early (a budget, the step limit)."""
    return f"I have to stop here: {reason}. So far: {progress(record)}."

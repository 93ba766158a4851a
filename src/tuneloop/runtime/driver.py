"""`RunDriver`: drives one segment of a run through its state machine, checkpointing each step.

A segment is what one process does with a run between starting (or resuming) it and
the run ending or parking for review. Every state change is a transition of the
`Machine` and an event on the run's span; every step (a model call, a tool result, a
transition) is saved before the next one starts.
"""

from __future__ import annotations

from tuneloop import semconv
from tuneloop.errors import ProviderError, StoreError
from tuneloop.runtime import budget
from tuneloop.runtime.budget import Exhaustion, Spend
from tuneloop.runtime.handoff import Handoff, reason_of
from tuneloop.runtime.prepared import DEFAULT_ESCALATION, DEFAULT_REFUSAL, Prepared
from tuneloop.runtime.providers.base import ToolCallRequest
from tuneloop.runtime.result import RunResult
from tuneloop.runtime.review import ReviewItem, ReviewSource, below_confidence, in_sample
from tuneloop.runtime.segment import (
    Segment,
    StateTimeout,
    annotator,
    call_arguments,
    progress,
    stopped,
)
from tuneloop.runtime.tools.contract import ToolResult
from tuneloop.runtime.tools.execution import ApprovalRequired
from tuneloop.runtime.tools.tracing import close_span, open_span, refuse


class RunDriver(Segment):
    """Drives one run segment; `drive` returns when the run ends or parks."""

    async def claim(self) -> None:
        """Save at once, so that a second process resuming the same run stops here."""
        await self._save()

    async def drive(self) -> RunResult:
        """Advance until the run ends or waits for a reviewer."""
        try:
            while await self._advance():
                pass
        except ProviderError as exc:
            await self._finish("provider_failed", error=f"{type(exc).__name__}: {exc}")
        except StateTimeout as exc:
            await self._finish("state_timeout", error=str(exc))
        finally:
            self._spans.close()
        return self._record.result(trace_id=self._run.trace_id, review=self._review)

    async def _advance(self) -> bool:
        record = self._record
        self._sync_agent_span()
        state = record.machine.state
        if state != "waiting_approval":
            self._check_overdue()
        match state:
            case "init":
                # Preparing is redone after a crash: the first save is on entering executing.
                await self._to("preparing")
                return True
            case "preparing":
                await self._prepare()
                return True
            case "executing":
                return await self._execute()
            case "reviewing":
                return await self._review_output()
            case "waiting_approval":
                return await self._apply_decision()
            case _:
                return False

    # --- states ---------------------------------------------------------------------

    async def _prepare(self) -> None:
        record, prep = self._record, self._prep()
        verdict = await self._guarded(prep.guardrails.run("input", record.input, run=self._run))
        if verdict.blocked:
            record.output = prep.text("refusal", DEFAULT_REFUSAL, reason=verdict.reason)
            await self._finish("guardrail_blocked", error=verdict.reason)
            return
        if verdict.verdict == "redact":
            record.input = str(verdict.content)
        if verdict.needs_approval:
            record.input_review = verdict.reason
        record.sampled = in_sample(record.run_id, prep.config.review.sample_rate)
        self._start_conversation(prep)
        await self._to("executing")
        await self._save()

    async def _execute(self) -> bool:
        record, prep = self._record, self._prep()
        if not record.messages:  # a specialist taking over starts its own conversation
            self._start_conversation(prep)
        if record.input_review is not None:
            decided = await self._ask(
                "input", record.input_review, "guardrail", content=record.input
            )
            if decided is None:
                return False
            if decided.status == "rejected":
                return await self._rejected(prep, decided)
            record.input_review = None
        calls = record.unanswered_calls()
        if calls:
            for call in calls:
                if not await self._tool(prep, call):
                    return False
                if record.active != prep.agent:
                    break
            return True
        if record.agent_steps >= prep.config.limits.max_steps:
            limit = prep.config.limits.max_steps
            reason = f"the run reached limits.max_steps ({limit}) without a final answer"
            record.output = prep.text(
                "max_steps", stopped(reason, record), reason=reason, progress=progress(record)
            )
            await self._finish("max_steps", error=reason)
            return True
        return await self._model_step(prep)

    async def _model_step(self, prep: Prepared) -> bool:
        record, agent = self._record, self._agent
        chain = self._current_route(prep)
        limits = self._root_prep().config.budget
        first = self._request(prep, chain.chain[0])
        guess = budget.estimate(
            first, prices=agent.prices, expected_output_tokens=record.longest_output
        )
        session = await self._session_spend()
        exhaustion = budget.check(limits, run=record.spend, session=session, next_call=guess)
        if exhaustion is not None:
            return await self._exhausted(prep, exhaustion)
        call = await self._guarded(
            prep.caller.call(chain, lambda c: self._request(prep, c), self._run, annotator(prep)),
            settle=False,
        )
        response = call.response
        spend = Spend.of(response.usage, response.model or call.request.model, agent.prices)
        record.add_spend(spend, response.usage.output_tokens)
        record.step += 1
        record.agent_steps += 1
        record.append(response.message)
        self._check_overdue()  # an answer that came too late is paid for, then the run fails
        self._emit("model_response", tier=call.candidate.tier, model=call.request.model)
        session = await self._session_spend()
        exhaustion = budget.check(limits, run=record.spend, session=session)
        if exhaustion is not None:
            return await self._exhausted(prep, exhaustion)
        if not response.message.tool_calls:
            record.output = response.message.text
            if agent.confidence is not None:
                record.confidence = agent.confidence(response)
            await self._to("reviewing")
        await self._save()
        return True

    async def _tool(self, prep: Prepared, call: ToolCallRequest) -> bool:
        record = self._record
        handoff = prep.handoffs.get(call.name)
        if handoff is not None:
            await self._handoff(prep, handoff, call)
            return True
        scope = f"{record.run_id}:{record.step}"
        decision = self._decision_for("tool_call", call.id)
        if decision is None:
            outcome = await self._guarded(prep.runner.run(call, run=self._run, scope=scope))
            if isinstance(outcome, ApprovalRequired):
                decision = await self._ask(
                    "tool_call",
                    outcome.reason,
                    outcome.source,
                    call=outcome,
                    content=None if outcome.pending is None else outcome.pending.to_dict(),
                )
                if decision is None:
                    return False
            else:
                return await self._record_tool(prep, call, outcome)
        if decision.status == "rejected":
            result = refuse(
                self._run,
                call,
                ToolResult.error(
                    "rejected_by_reviewer",
                    f"a reviewer rejected the call to tool {call.name!r}: "
                    f"{decision.decision_reason or 'no reason given'}. Do not call it again "
                    "for this request; tell the user.",
                ),
            )
        elif decision.hop == "tool_output" and isinstance(decision.content, dict):
            result = ToolResult.from_dict(decision.content)
        else:
            approved = await self._guarded(
                prep.runner.run(call, run=self._run, scope=scope, approved=True)
            )
            assert isinstance(approved, ToolResult)  # an approved call is never sent back
            result = approved
        return await self._record_tool(prep, call, result)

    async def _record_tool(self, prep: Prepared, call: ToolCallRequest, result: ToolResult) -> bool:
        record = self._record
        self._emit("tool_result", tool=call.name, call_id=call.id, status=result.status)
        record.append(result.to_message(call.id, name=call.name))
        record.tool_calls.append(
            {
                "name": call.name,
                "arguments": call_arguments(call),
                "status": result.status,
                "call_id": call.id,
                "agent": prep.agent,
            }
        )
        await self._save()
        return True

    async def _handoff(self, prep: Prepared, handoff: Handoff, call: ToolCallRequest) -> None:
        record = self._record
        reason = reason_of(call)
        result = ToolResult.success({"transferred_to": handoff.agent})
        with open_span(self._run, call.name, call_arguments(call), call.id) as span:
            span.span.set_attribute(semconv.GEN_AI_AGENT_NAME, handoff.agent)
            close_span(span, result)
        record.append(result.to_message(call.id, name=call.name))
        record.tool_calls.append(
            {
                "name": call.name,
                "arguments": call_arguments(call),
                "status": "success",
                "call_id": call.id,
                "agent": prep.agent,
            }
        )
        record.path.append(handoff.agent)
        record.active = handoff.agent
        record.agent_steps = 0
        record.route = None
        record.restart_conversation([])
        self._run.span.add_event(
            semconv.TL_RUN_HANDOFF_EVENT,
            {
                semconv.GEN_AI_AGENT_NAME: handoff.agent,
                semconv.TL_RUN_HANDOFF_FROM: prep.agent,
                semconv.TL_RUN_TRANSITION_REASON: reason,
            },
            timestamp=self._clock.now_ns(),
        )
        self._emit("handoff", source=prep.agent, target=handoff.agent, reason=reason)
        await self._save()

    async def _review_output(self) -> bool:
        record, prep = self._record, self._prep()
        verdict = await self._guarded(
            prep.guardrails.run("output", record.output or "", run=self._run)
        )
        if verdict.blocked:
            record.output = prep.text("refusal", DEFAULT_REFUSAL, reason=verdict.reason)
            await self._finish("guardrail_blocked", error=verdict.reason)
            return True
        if verdict.verdict == "redact":
            record.output = str(verdict.content)
        minimum = prep.config.review.min_confidence
        reason = ""
        source: ReviewSource | None = None
        if verdict.needs_approval:
            reason, source = verdict.reason, "guardrail"
        elif below_confidence(record.confidence, minimum):
            reason = (
                f"model confidence {record.confidence:.2f} is below review.min_confidence {minimum}"
            )
            source = "confidence"
        elif record.sampled:
            rate = prep.config.review.sample_rate
            reason, source = f"sampled for review (review.sample_rate {rate})", "sample"
        if record.confidence is not None:
            self._run.span.set_attribute(semconv.TL_RUN_CONFIDENCE, record.confidence)
        if source is not None:
            decided = self._decision_for("output", None) or await self._ask(
                "output", reason, source, content=record.output
            )
            if decided is None:
                return False
            if decided.status == "rejected":
                return await self._rejected(prep, decided)
        await self._finish("final_answer")
        return True

    async def _apply_decision(self) -> bool:
        record = self._record
        pending = record.pending or {}
        item = await self._store.review(str(pending.get("review_id")))
        if item is None:
            raise StoreError(
                f"run {record.run_id!r} waits for review {pending.get('review_id')!r}, which "
                "the store does not have"
            )
        limit = self._prep().timeouts.get("waiting_approval")
        decided_at = item.decided_ms if item.decided_ms is not None else self._clock.now_ms()
        if limit is not None and decided_at - record.machine.entered_ms > limit:
            raise StateTimeout("waiting_approval", limit)
        if not item.decided:
            self._review = item
            return False
        self._decision = item
        record.pending = None
        self._run.span.set_attribute(semconv.TL_REVIEW_ID, item.review_id)
        self._run.span.set_attribute(semconv.TL_REVIEW_DECISION, item.status)
        back = record.machine.parked_from
        assert back is not None  # waiting_approval always records where it came from
        await self._to(back, reason=f"review {item.review_id} {item.status} by {item.reviewer}")
        await self._save()
        return True

    # --- reviews, budgets, endings ---------------------------------------------------

    async def _rejected(self, prep: Prepared, item: ReviewItem) -> bool:
        reason = item.decision_reason or ""
        self._record.output = prep.text("escalation", DEFAULT_ESCALATION, reason=reason)
        await self._finish("review_rejected", error=f"rejected by {item.reviewer}: {reason}")
        return True

    async def _exhausted(self, prep: Prepared, exhaustion: Exhaustion) -> bool:
        record = self._record
        reason = exhaustion.describe()
        record.output = prep.text(
            "budget_exhausted", stopped(reason, record), reason=reason, progress=progress(record)
        )
        self._run.span.add_event(
            semconv.TL_BUDGET_EXHAUSTED_EVENT,
            {
                semconv.TL_BUDGET_SCOPE: exhaustion.scope,
                semconv.TL_BUDGET_KIND: exhaustion.kind,
                semconv.TL_BUDGET_LIMIT: exhaustion.limit,
                semconv.TL_BUDGET_USED: exhaustion.used,
                semconv.TL_BUDGET_PHASE: exhaustion.phase,
            },
            timestamp=self._clock.now_ns(),
        )
        self._emit("budget_exhausted", reason=reason)
        await self._finish("budget_exhausted", error=reason)
        return True

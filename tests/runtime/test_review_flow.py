"""Human review: what parks a run, how a decision resumes it, and what is traced."""

from __future__ import annotations

from typing import Any

import pytest

from tests.runtime.agent_fixtures import (
    Calls,
    agent,
    answer,
    call,
    config,
    content,
    echo_last_tool,
    lookup_tool,
    model,
    refund_tool,
    roots,
    transitions,
)
from tests.runtime.conftest import Traced
from tuneloop import semconv
from tuneloop.clock import FakeClock
from tuneloop.errors import ConflictError, NotFoundError
from tuneloop.runtime import Agent, ChatRequest, Message
from tuneloop.runtime.review import in_sample, review_id

pytestmark = pytest.mark.anyio

REFUND = call("refund", {"order_id": "A-1", "amount_cents": 500}, "r1")


def refunder(clock: FakeClock, calls: Calls, traced: Traced | None = None, **options: Any) -> Agent:
    """An agent whose model asks for a refund, then quotes the tool's answer."""
    provider = model(clock, [REFUND, echo_last_tool])
    return agent(config(), [refund_tool(calls)], provider, clock, traced, **options)


async def test_an_approved_tool_call_runs_once_when_the_run_resumes(
    clock: FakeClock, traced: Traced
) -> None:
    calls = Calls()
    support = refunder(clock, calls, traced)
    parked = await support.run("refund A-1", run_id="run-1", session_id="s")
    assert (parked.state, parked.outcome, parked.output, calls.count) == (
        "waiting_approval",
        None,
        None,
        0,
    )
    review = parked.review
    assert review is not None
    assert review.review_id == review_id("run-1", 1, "r1")
    assert (review.kind, review.tool, review.source, review.status) == (
        "tool_call",
        "refund",
        "tool_settings",
        "pending",
    )
    assert review.arguments == {"order_id": "A-1", "amount_cents": 500}
    assert review.trace_id == parked.trace_id
    assert [item.review_id for item in await support.reviews()] == [review.review_id]

    clock.advance(60_000)
    decided = await support.decide(review.review_id, "approve", reviewer="ana", reason="ok")
    assert (decided.status, decided.reviewer, decided.decided_ms) == (
        "approved",
        "ana",
        clock.now_ms(),
    )
    done = await support.resume("run-1")
    assert (done.state, done.outcome, done.stop_reason) == ("completed", "success", "final_answer")
    assert calls.count == 1
    assert done.output is not None and '"refunded_cents": 500' in done.output
    assert await support.reviews() == []

    first, second = roots(traced)
    assert (first.attributes or {})[semconv.TL_RUN_OUTCOME] == "escalated"
    assert (first.attributes or {})[semconv.TL_RUN_STATE] == "waiting_approval"
    requested = [e for e in first.events if e.name == semconv.TL_REVIEW_REQUESTED_EVENT]
    assert (requested[0].attributes or {})[semconv.TL_REVIEW_ID] == review.review_id
    assert (second.attributes or {})[semconv.TL_REVIEW_DECISION] == "approved"
    assert (second.attributes or {})[semconv.TL_RUN_SEGMENT] == 2
    assert [link.context.span_id for link in second.links] == [first.context.span_id]
    assert transitions(second) == [
        ("waiting_approval", "executing"),
        ("executing", "reviewing"),
        ("reviewing", "completed"),
    ]


async def test_a_rejected_tool_call_never_runs_and_the_model_is_told_why(
    clock: FakeClock, traced: Traced
) -> None:
    calls = Calls()
    support = refunder(clock, calls, traced)
    parked = await support.run("refund A-1", run_id="run-2")
    assert parked.review is not None
    await support.decide(parked.review.review_id, "reject", reviewer="bo", reason="no receipt")
    done = await support.resume("run-2")
    assert (done.outcome, calls.count) == ("success", 0)
    tool_message = done.messages[-2]
    assert content(tool_message)["error"] == {
        "type": "rejected_by_reviewer",
        "message": "a reviewer rejected the call to tool 'refund': no receipt. Do not call it "
        "again for this request; tell the user.",
        "retryable": False,
    }
    assert [c.status for c in done.tool_calls] == ["error"]
    refused = traced.one("execute_tool refund").attributes or {}
    assert (refused[semconv.TL_TOOL_STATUS], refused[semconv.ERROR_TYPE]) == (
        "error",
        "rejected_by_reviewer",
    )


async def test_resuming_while_the_review_is_pending_changes_nothing(
    clock: FakeClock, traced: Traced
) -> None:
    support = refunder(clock, Calls(), traced)
    parked = await support.run("refund A-1", run_id="run-3")
    again = await support.resume("run-3")
    assert (again.state, again.review) == ("waiting_approval", parked.review)
    assert len(roots(traced)) == 1
    stored = await support.store.load("run-3")
    assert stored is not None and stored.version == 3


async def test_a_decision_is_final_and_must_name_a_known_review(clock: FakeClock) -> None:
    support = refunder(clock, Calls())
    parked = await support.run("refund A-1")
    assert parked.review is not None
    await support.decide(parked.review.review_id, "reject", reviewer="bo")
    with pytest.raises(ConflictError, match="was already rejected by 'bo'"):
        await support.decide(parked.review.review_id, "approve", reviewer="cy")
    with pytest.raises(NotFoundError, match="no review 'rv_nope'"):
        await support.decide("rv_nope", "approve", reviewer="cy")
    with pytest.raises(NotFoundError, match="no run 'ghost'"):
        await support.resume("ghost")


async def test_two_processes_cannot_both_continue_a_run(clock: FakeClock) -> None:
    support = refunder(clock, Calls())
    parked = await support.run("refund A-1", run_id="run-4")
    assert parked.review is not None
    await support.decide(parked.review.review_id, "approve", reviewer="ana")
    stale = await support.store.load("run-4")
    assert stale is not None
    await support.resume("run-4")
    with pytest.raises(ConflictError, match="another process is continuing it"):
        await support.store.save(stale, expected_version=stale.version)


def confident(score: float) -> Any:
    return lambda response: score


async def test_a_low_confidence_answer_waits_for_a_reviewer(clock: FakeClock) -> None:
    cfg = config(review={"min_confidence": 0.6}, prompts={"system": "s",
                 "escalation": "A person will call you back."})  # fmt: skip

    def make(score: float) -> Agent:
        provider = model(clock, [answer("Probably shipped?")])
        return agent(cfg, [], provider, clock, confidence=confident(score))

    sure = await make(0.9).run("status?")
    assert sure.outcome == "success"

    unsure_agent = make(0.3)
    parked = await unsure_agent.run("status?", run_id="run-5")
    assert parked.review is not None
    assert (parked.review.kind, parked.review.source) == ("output", "confidence")
    assert parked.review.content == "Probably shipped?"
    assert parked.review.reason == "model confidence 0.30 is below review.min_confidence 0.6"
    await unsure_agent.decide(parked.review.review_id, "reject", reviewer="qa", reason="unsure")
    rejected = await unsure_agent.resume("run-5")
    assert (rejected.state, rejected.outcome, rejected.stop_reason) == (
        "failed",
        "escalated",
        "review_rejected",
    )
    assert rejected.output == "A person will call you back."
    assert rejected.error == "rejected by qa: unsure"


async def test_a_sampled_run_is_reviewed_and_an_approved_answer_goes_out(
    clock: FakeClock,
) -> None:
    cfg = config(review={"sample_rate": 0.5})
    ids = [f"run-{n}" for n in range(40)]
    sampled = [run_id for run_id in ids if in_sample(run_id, 0.5)]
    assert 10 < len(sampled) < 30  # the sample is a fraction of runs, fixed per run id
    support = agent(cfg, [], model(clock, policy=lambda r, rng: answer("fine")), clock)
    results = {run_id: await support.run("hi", run_id=run_id) for run_id in ids}
    assert [run_id for run_id, r in results.items() if r.waiting] == sampled
    parked = results[sampled[0]]
    assert parked.review is not None and parked.review.source == "sample"
    await support.decide(parked.review.review_id, "approve", reviewer="qa")
    done = await support.resume(sampled[0])
    assert (done.outcome, done.output) == ("success", "fine")


async def test_tool_output_held_for_review_is_used_as_reviewed_without_running_again(
    clock: FakeClock,
) -> None:
    calls = Calls()
    cfg = config(
        guardrails=[
            {"name": "pii", "kind": "pii", "hops": ["tool_output"], "action": "require_approval"}
        ]
    )

    async def leaky(order_id: str) -> dict[str, Any]:
        """Look up an order with its contact."""
        calls.seen.append({"order_id": order_id})
        return {"order_id": order_id, "email": "jane@example.com"}

    from tuneloop.runtime import Tool

    provider = model(clock, [call("leaky", {"order_id": "A-1"}, "c1"), echo_last_tool])
    support = agent(cfg, [Tool(leaky)], provider, clock)
    parked = await support.run("who ordered A-1?", run_id="run-6")
    assert parked.review is not None
    assert (parked.review.hop, parked.review.source) == ("tool_output", "guardrail")
    assert parked.review.content == {
        "status": "success",
        "data": {"order_id": "A-1", "email": "jane@example.com"},
        "metadata": {"attempts": 1},
    }
    await support.decide(parked.review.review_id, "approve", reviewer="dpo")
    done = await support.resume("run-6")
    assert calls.count == 1
    assert done.output == (
        'tool said: {"status": "success", "data": {"order_id": "A-1", "email": "jane@example.com"}}'
    )


async def test_an_input_a_guardrail_holds_waits_before_the_model_sees_it(
    clock: FakeClock,
) -> None:
    cfg = config(
        guardrails=[{"name": "topics", "kind": "denied_topics", "hops": ["input"],
                     "action": "require_approval", "params": {"topics": {"legal": ["lawsuit"]}}}]
    )  # fmt: skip
    provider = model(clock, [answer("Let me help.")])
    support = agent(cfg, [], provider, clock)
    parked = await support.run("I will file a lawsuit", run_id="run-7")
    assert parked.review is not None
    assert (parked.review.kind, parked.review.content) == ("input", "I will file a lawsuit")
    assert provider.calls == 0
    await support.decide(parked.review.review_id, "approve", reviewer="legal")
    assert (await support.resume("run-7")).output == "Let me help."


async def test_a_review_not_decided_in_time_fails_the_run(clock: FakeClock) -> None:
    calls = Calls()
    cfg = config(limits={"state_timeouts_ms": {"WAITING_APPROVAL": 3_600_000}})
    provider = model(clock, [REFUND, echo_last_tool])
    support = agent(cfg, [refund_tool(calls)], provider, clock)
    parked = await support.run("refund A-1", run_id="run-8")
    clock.advance(3_600_001)
    expired = await support.resume("run-8")
    assert (expired.state, expired.outcome, expired.stop_reason) == (
        "failed",
        "failure",
        "state_timeout",
    )
    assert calls.count == 0
    # A decision after the deadline changes nothing: the run has ended.
    assert parked.review is not None
    await support.decide(parked.review.review_id, "approve", reviewer="late")
    assert (await support.resume("run-8")).stop_reason == "state_timeout"


async def test_resume_decided_picks_up_only_the_runs_a_reviewer_decided(clock: FakeClock) -> None:
    calls = Calls()

    def policy(request: ChatRequest, rng: object) -> Message:
        if request.messages[-1].role == "user":
            return REFUND
        return answer("done")

    support = agent(config(), [refund_tool(calls)], model(clock, policy=policy), clock)
    first = await support.run("refund", run_id="a")
    await support.run("refund", run_id="b")
    assert first.review is not None
    await support.decide(first.review.review_id, "approve", reviewer="ana")
    resumed = await support.resume_decided()
    assert [(r.run_id, r.outcome) for r in resumed] == [("a", "success")]
    assert calls.count == 1
    stats = support.store.backend.review_stats("default")  # type: ignore[attr-defined]
    assert (stats.pending, stats.approved, stats.override_rate) == (1, 1, 0.0)


async def test_a_read_tool_needs_no_review_unless_configured(clock: FakeClock) -> None:
    cfg = config(tools={"lookup_order": {"requires_approval": True}})
    provider = model(clock, [call("lookup_order", {"order_id": "A-1"}, "c1"), answer("ok")])
    parked = await agent(cfg, [lookup_tool(Calls())], provider, clock).run("status")
    assert parked.review is not None
    assert parked.review.reason == (
        "tool 'lookup_order' requires approval (tools.lookup_order.requires_approval)"
    )

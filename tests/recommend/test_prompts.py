"""Prompt optimization: failure clusters sent to a (simulated) optimizer model, answers checked."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.recommend.conftest import OPTIONS, World
from tests.recommend.traffic import ROUTER_PROMPT, SYSTEM_PROMPT
from tuneloop.analysis.recommend import analyze_all
from tuneloop.analysis.recommend.prompts import validate_rewrite
from tuneloop.clock import FakeClock
from tuneloop.config.bundle import Bundle, apply_bundle
from tuneloop.runtime.providers import (
    ChatRequest,
    FailureModel,
    LatencyModel,
    Message,
    SimulatedProvider,
)
from tuneloop.runtime.timing import simulated_sleep
from tuneloop.server.routers.recommendations import provider_optimizer

REVISED = (
    "Classify the customer's message into exactly one intent: order_status (where is an "
    "order), refund (money back), shipping_policy (rules, times, countries) or account "
    "(login, email, address). Answer with the intent only."
)


def _provider(
    reply: str, *, failures: FailureModel | None = None
) -> tuple[SimulatedProvider, list[ChatRequest]]:
    seen: list[ChatRequest] = []

    def policy(request: ChatRequest, rng: random.Random) -> Message:
        seen.append(request)
        return Message.assistant(reply)

    clock = FakeClock()
    provider = SimulatedProvider(
        policy,
        rng=random.Random(0),
        clock=clock,
        sleep=simulated_sleep(clock),
        latency=LatencyModel(0.0, 0.0, 0.0, 0.0),
        failures=failures,
    )
    return provider, seen


def _run(
    world: World, reply: str, **kwargs: object
) -> tuple[object, list[ChatRequest], SimulatedProvider]:
    provider, seen = _provider(reply, failures=kwargs.pop("failures", None))  # type: ignore[arg-type]
    optimizer = provider_optimizer(provider, "gpt-4o")
    report = asyncio.run(
        analyze_all(
            world.window,
            world.traffic.config,
            options=OPTIONS,
            optimizer=optimizer,
            rubric="Route every message to the intent a human agent would pick.",
            **kwargs,  # type: ignore[arg-type]
        )
    )
    return report, seen, provider


def test_a_usable_rewrite_becomes_a_gated_prompt_proposal(faulty_world: World) -> None:
    report, seen, _ = _run(faulty_world, f"Here you go:\n<prompt>{REVISED}</prompt>")
    rewrites = [f for f in report.findings if f.kind.startswith("rewrite:")]  # type: ignore[attr-defined]
    (finding,) = rewrites
    assert finding.kind == "rewrite:misclassified by router"
    assert finding.type == "prompt_optimization" and finding.requires_eval_gate
    assert finding.change == ({"op": "replace", "path": "/prompts/router", "value": REVISED},)
    assert finding.evidence["current_prompt"] == ROUTER_PROMPT
    assert finding.impact.before == pytest.approx(finding.evidence["cluster_runs"] / 2000)
    # What the optimizer was given: the prompt, failed examples with the right intent, the rubric.
    (request,) = seen
    system, user = request.messages
    assert "<prompt>" in system.text and "{placeholder}" in system.text
    assert ROUTER_PROMPT in user.text and "Eval rubric: Route every message" in user.text
    assert "expected:" in user.text and user.text.count("| got:") == 8
    bundle = Bundle(bundle_id="p", version="1.0.0", recommendations=[finding.to_recommendation()])
    assert apply_bundle(faulty_world.traffic.config, bundle).prompts["router"] == REVISED
    assert finding.to_recommendation().evidence["requires_eval_gate"] is True


def test_an_answer_that_is_not_a_prompt_is_discarded_with_the_reason(faulty_world: World) -> None:
    report, _, _ = _run(faulty_world, "I think the router is fine as it is.")
    assert not [f for f in report.findings if f.kind.startswith("rewrite:")]  # type: ignore[attr-defined]
    (discarded,) = report.discarded  # type: ignore[attr-defined]
    assert (discarded.target, discarded.reason) == (
        "router",
        "the answer has 0 <prompt>…</prompt> blocks, not one",
    )


def test_an_optimizer_failure_is_discarded_not_raised(faulty_world: World) -> None:
    report, _, _ = _run(faulty_world, "unused", failures=FailureModel(server_error=1.0))
    (discarded,) = report.discarded  # type: ignore[attr-defined]
    assert discarded.reason.startswith(
        "optimizer failed: simulated (simulated) model 'gpt-4o' answered HTTP 500"
    )


def test_decided_clusters_are_not_sent_again_unless_they_grow(faulty_world: World) -> None:
    first, _, _ = _run(faulty_world, "nothing useful")
    (discarded,) = first.discarded  # type: ignore[attr-defined]
    _, seen, provider = _run(
        faulty_world, "unused", skip={discarded.fingerprint: discarded.headline}
    )
    assert provider.calls == 0 and seen == []
    _, seen, provider = _run(
        faulty_world, "unused", skip={discarded.fingerprint: discarded.headline / 2}
    )
    assert provider.calls == 1


def test_healthy_traffic_has_no_failure_cluster_to_send(healthy_world: World) -> None:
    report, seen, _ = _run(healthy_world, f"<prompt>{REVISED}</prompt>")
    assert seen == [] and report.findings == ()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("<prompt></prompt>", "the revised prompt is empty"),
        (f"<prompt>{SYSTEM_PROMPT}</prompt>", "the revised prompt is the current one"),
        (
            "<prompt>a</prompt><prompt>b</prompt>",
            "the answer has 2 <prompt>…</prompt> blocks, not one",
        ),
        (
            "<prompt>Be helpful and brief, always cite the policy you used.</prompt>",
            "drops the placeholders {shop}",
        ),
        ("<prompt>Hi {shop}</prompt>", f"keeps 9 of {len(SYSTEM_PROMPT)} characters"),
        (f"<prompt>{'{shop} ' * 4000}</prompt>", "implausibly long"),
    ],
)
def test_unusable_rewrites_are_named(answer: str, reason: str) -> None:
    text, why = validate_rewrite(SYSTEM_PROMPT, answer)
    assert text is None
    assert reason in why


def test_a_rewrite_keeping_placeholders_is_usable() -> None:
    revised = "You support customers of {shop}. Answer in two sentences; cite the policy."
    text, why = validate_rewrite(SYSTEM_PROMPT, f"<prompt>\n{revised}\n</prompt>")
    assert (text, why) == (revised, "ok")

"""The analyzers on demo-world traffic: each known fault found, nothing on healthy traffic.

The world injects four faults (``tuneloop.demo.world``): ``lookup_order`` answers 503 on
8 % of attempts, ``search_policy``'s timeout (3 s) sits below its p95, the router runs at
temperature 1.0 and misroutes 12 %, and every answer uses gpt-4o. Ground truth comes
from the world's own parameters and scripts, never from the analyzers.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from tests.recommend.conftest import OPTIONS, RUNS, World
from tests.recommend.traffic import TRIVIAL, demo_settings
from tuneloop.analysis.recommend import Finding, analyze
from tuneloop.config.bundle import Bundle, apply_bundle
from tuneloop.config.model import AgentConfig
from tuneloop.demo.script import LlmStep
from tuneloop.demo.world import DEFAULT_START_MS, scripted_runs
from tuneloop.settings import DEFAULT_PRICES
from tuneloop.telemetry.pricing import PriceTable

LOOKUP_FAILURE = 0.08
SEARCH_MEDIAN_MS, SEARCH_SIGMA = 1200.0, 0.6


def _by_kind(world: World) -> dict[str, Finding]:
    report = analyze(world.window, world.traffic.config, options=OPTIONS)
    return {f.kind: f for f in report.findings}


def _apply(world: World, *findings: Finding) -> dict[str, object]:
    bundle = Bundle(
        bundle_id="test", version="1.0.0", recommendations=[f.to_recommendation() for f in findings]
    )
    return apply_bundle(world.traffic.config, bundle).to_data()


def test_the_window_holds_what_the_agent_sent(faulty_world: World) -> None:
    window = faulty_world.window
    assert len(window.runs) == RUNS
    assert window.weighted_runs == RUNS
    assert window.span_runs == RUNS
    decisions = [s for s in window.spans if s.decision_step == "router"]
    assert len(decisions) == RUNS
    assert {s.temperature for s in decisions} == {1.0}
    assert {s.prompt_name for s in window.spans if s.kind == "llm"} == {"router", "system"}


def test_finds_the_four_known_faults_and_nothing_else(faulty_world: World) -> None:
    found = _by_kind(faulty_world)
    assert set(found) == {"retry", "raise_timeout", "lower_temperature", "cheaper_tier"}
    assert {f.target for f in found.values()} == {
        "lookup_order",
        "search_policy",
        "router",
        ",".join(TRIVIAL),
    }
    assert all(f.confidence >= 0.7 for f in found.values())
    for finding in found.values():
        assert 1 <= len(finding.evidence["example_trace_ids"]) <= 10
        assert set(finding.evidence["example_trace_ids"]) <= faulty_world.window.index.runs.keys()


def test_retry_policy_for_the_flaky_tool(faulty_world: World) -> None:
    finding = _by_kind(faulty_world)["retry"]
    assert finding.type == "retry_policy"
    calls = [c for c in faulty_world.window.tool_calls if c.tool == "lookup_order"]
    observed = sum(c.failed for c in calls) / len(calls)
    assert finding.impact.before == pytest.approx(observed)
    assert abs(observed - LOOKUP_FAILURE) < 0.025
    attempts = finding.change[0]["value"]
    assert finding.change == (
        {"op": "replace", "path": "/tools/lookup_order/retry/max_attempts", "value": attempts},
    )
    assert attempts in (2, 3)
    # The world fails each attempt independently: k attempts leave 8 % ** k.
    assert abs(finding.impact.after - LOOKUP_FAILURE**attempts) < 0.01
    assert "retryable" in finding.impact.text() and "503" in finding.impact.text()
    config = _apply(faulty_world, finding)
    assert config["tools"]["lookup_order"]["retry"]["max_attempts"] == attempts  # type: ignore[index]


def test_timeout_raised_above_the_tools_tail(faulty_world: World) -> None:
    finding = _by_kind(faulty_world)["raise_timeout"]
    assert finding.type == "timeout_adjustment"
    (op,) = finding.change
    assert (op["op"], op["path"]) == ("replace", "/tools/search_policy/timeout_ms")
    true_p99 = SEARCH_MEDIAN_MS * math.exp(SEARCH_SIGMA * NormalDist().inv_cdf(0.99))
    assert true_p99 <= op["value"] <= 2 * true_p99
    # The share cut off now is what the window shows; after, what the true tail beyond it is.
    true_cut_now = 1 - NormalDist().cdf(math.log(3000 / SEARCH_MEDIAN_MS) / SEARCH_SIGMA)
    true_cut_after = 1 - NormalDist().cdf(math.log(op["value"] / SEARCH_MEDIAN_MS) / SEARCH_SIGMA)
    assert abs(finding.impact.before - true_cut_now) < 0.025
    assert abs(finding.impact.after - true_cut_after) < 0.01
    assert finding.evidence["fit"]["median_ms"] == pytest.approx(SEARCH_MEDIAN_MS, rel=0.1)
    assert _apply(faulty_world, finding)["tools"]["search_policy"]["timeout_ms"] == op["value"]  # type: ignore[index]


def test_router_temperature_lowered(faulty_world: World) -> None:
    finding = _by_kind(faulty_world)["lower_temperature"]
    assert finding.type == "prompt_optimization"
    assert finding.change == ({"op": "replace", "path": "/params/temperature", "value": 0.0},)
    # The world misroutes 2 % + 10 % x temperature.
    assert abs(finding.impact.before - 0.12) < 0.025
    assert finding.impact.after <= 0.03
    assert finding.evidence["temperature"] == 1.0
    assert _apply(faulty_world, finding)["params"]["temperature"] == 0.0  # type: ignore[index]


def test_trivial_intents_routed_to_the_cheaper_tier(faulty_world: World) -> None:
    finding = _by_kind(faulty_world)["cheaper_tier"]
    assert finding.type == "model_routing"
    assert finding.requires_eval_gate  # gpt-4o-mini was never observed answering these
    rule = {"tier": "small", "intents": list(TRIVIAL)}
    assert finding.change == ({"op": "add", "path": "/routing/rules/0", "value": rule},)
    # Ground truth from the world's scripts: the answer cost of each routed intent.
    traffic = faulty_world.traffic
    settings = demo_settings(traffic.config, faulty=True)
    prices = PriceTable(DEFAULT_PRICES)
    full = cheap = 0.0
    for run in scripted_runs(11, RUNS, settings=settings, start_ms=DEFAULT_START_MS):
        for step in run.steps:
            if isinstance(step, LlmStep) and step.purpose == "answer":
                cost = prices.cost("gpt-4o", step.input_tokens, step.output_tokens)
                full += cost
                moved = run.routed_intent in TRIVIAL
                cheap += prices.cost(
                    "gpt-4o-mini" if moved else "gpt-4o", step.input_tokens, step.output_tokens
                )
    assert finding.impact.after / finding.impact.before == pytest.approx(cheap / full, abs=0.02)
    days = (traffic.end_ms - traffic.start_ms) / 86_400_000
    assert finding.impact.before == pytest.approx(full / days, rel=0.01)
    config = _apply(faulty_world, finding)
    first = config["routing"]["rules"][0]  # type: ignore[index]
    assert (first["tier"], first["intents"]) == ("small", list(TRIVIAL))


def test_all_findings_apply_together_as_one_bundle(faulty_world: World) -> None:
    report = analyze(faulty_world.window, faulty_world.traffic.config, options=OPTIONS)
    config = _apply(faulty_world, *report.findings)
    assert config["tools"]["search_policy"]["timeout_ms"] > 3000  # type: ignore[index]
    assert config["params"]["temperature"] == 0.0  # type: ignore[index]


def test_nothing_proposed_on_healthy_traffic(healthy_world: World) -> None:
    report = analyze(healthy_world.window, healthy_world.traffic.config, options=OPTIONS)
    assert report.findings == ()
    assert report.runs == RUNS
    # It looked: the refund tool's business errors are seen and left alone.
    assert any("issue_refund" in note and "not read-only" in note for note in report.notes)


def test_without_the_config_patches_add_what_defaults_lack(faulty_world: World) -> None:
    report = analyze(faulty_world.window, None, options=OPTIONS)
    found = {f.kind: f for f in report.findings}
    assert any("not in the config store" in note for note in report.notes)
    # No tool entries: the tool is added with the setting, never a `replace` of a missing path.
    assert found["retry"].change == (
        {"op": "add", "path": "/tools/lookup_order", "value": {"retry": {"max_attempts": 2}}},
    )
    timeout = found["raise_timeout"].change[0]
    assert timeout["op"] == "add" and timeout["path"] == "/tools/search_policy"
    # The timeout the agent used is read from the timed-out calls' length.
    assert found["raise_timeout"].evidence["timeout_source"] == "observed"
    assert found["raise_timeout"].evidence["timeout_ms"] == pytest.approx(3000, rel=0.01)
    assert found["lower_temperature"].change == (
        {"op": "replace", "path": "/params/temperature", "value": 0.0},
    )
    # A config with none of those entries takes each patch cleanly (each is computed
    # against the version's config on its own, as accepting one creates one version).
    bare = AgentConfig.from_data({"model": {"provider": "openai", "name": "gpt-4o"}})
    patched = {
        f.kind: apply_bundle(
            bare, Bundle(bundle_id=f.kind, version="1.0.0", recommendations=[f.to_recommendation()])
        )
        for f in report.findings
    }
    assert patched["retry"].tools["lookup_order"].retry.max_attempts == 2
    assert (
        patched["raise_timeout"].tools["search_policy"].timeout_ms == timeout["value"]["timeout_ms"]
    )
    assert patched["lower_temperature"].params.temperature == 0.0


def test_the_same_findings_keep_their_fingerprints(faulty_world: World) -> None:
    full = analyze(faulty_world.window, faulty_world.traffic.config, options=OPTIONS)
    half = type(faulty_world.window)(
        agent=faulty_world.window.agent,
        version=faulty_world.window.version,
        since_ms=faulty_world.window.since_ms,
        until_ms=faulty_world.window.until_ms,
        runs=faulty_world.window.runs[:1200],
        tool_calls=tuple(
            c
            for c in faulty_world.window.tool_calls
            if c.trace_id in {r.trace_id for r in faulty_world.window.runs[:1200]}
        ),
        spans=tuple(
            s
            for s in faulty_world.window.spans
            if s.trace_id in {r.trace_id for r in faulty_world.window.runs[:1200]}
        ),
    )
    other = analyze(half, faulty_world.traffic.config, options=OPTIONS)
    assert {f.fingerprint for f in other.findings} == {f.fingerprint for f in full.findings}
    assert {f.headline for f in other.findings} != {f.headline for f in full.findings}

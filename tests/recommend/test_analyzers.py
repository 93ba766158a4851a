"""The analyzers on small synthetic windows: each rule, its patch and its refusals."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

import pytest

from tuneloop.analysis.recommend import (
    Correction,
    FeedbackFact,
    Options,
    RunFact,
    SpanSample,
    ToolCallFact,
    TraceWindow,
    analyze,
)
from tuneloop.analysis.recommend.common import confidence_above, set_value
from tuneloop.analysis.recommend.latency import fit_censored_lognormal
from tuneloop.config.bundle import Bundle, apply_bundle
from tuneloop.config.model import AgentConfig
from tuneloop.settings import DEFAULT_PRICES

DAY_MS = 86_400_000
OPTIONS = Options(prices=DEFAULT_PRICES)


def config(**overrides: Any) -> AgentConfig:
    data: dict[str, Any] = {"model": {"provider": "openai", "name": "gpt-4o"}, **overrides}
    return AgentConfig.from_data(data)


def runs(n: int, *, weight: float = 1.0, tokens: int = 1000, **fields: Any) -> list[RunFact]:
    return [
        RunFact(
            trace_id=f"{i:032x}",
            started_ms=i * 60_000,
            duration_ms=500.0,
            outcome="success",
            error_type=None,
            input_tokens=tokens,
            output_tokens=100,
            cost_usd=0.01,
            weight=weight,
            **fields,
        )
        for i in range(n)
    ]


def window(run_facts: list[RunFact], **parts: Any) -> TraceWindow:
    return TraceWindow(
        agent="bot", version="v", since_ms=0, until_ms=DAY_MS, runs=tuple(run_facts), **parts
    )


def call(
    i: int,
    tool: str,
    *,
    error: str | None = None,
    retryable: bool = False,
    ms: float = 100.0,
    retries: int = 0,
    at: int | None = None,
) -> ToolCallFact:
    return ToolCallFact(
        trace_id=f"{i:032x}",
        tool=tool,
        status="error" if error else "success",
        error_type=error,
        retryable=retryable,
        duration_ms=ms,
        retries=retries,
        started_ms=i * 60_000 if at is None else at,
    )


def apply(cfg: AgentConfig, finding: Any) -> AgentConfig:
    return apply_bundle(
        cfg, Bundle(bundle_id="t", version="1.0.0", recommendations=[finding.to_recommendation()])
    )


# --- preflight -------------------------------------------------------------------------


def test_no_traffic_says_so_and_proposes_nothing() -> None:
    report = analyze(window([]), config())
    assert report.findings == ()
    assert report.notes == ("agent 'bot' version v has no runs in the window: no traffic",)


def test_too_few_runs_say_so_and_propose_nothing() -> None:
    facts = runs(60)
    calls = [call(i, "db", error="503", retryable=True) for i in range(60)]  # every call fails
    report = analyze(window(facts, tool_calls=tuple(calls)), config())
    assert report.findings == ()
    assert report.notes[0].startswith("too few runs: 60 in the window, 100 needed")


def test_sampled_runs_are_scaled_back_up() -> None:
    report = analyze(window(runs(400, weight=10.0)), config())
    assert report.weighted_runs == 4000
    assert any("head-sampled at about 10.0 %" in note for note in report.notes)


# --- tool reliability ------------------------------------------------------------------


def test_retries_observed_in_the_window_set_the_estimate() -> None:
    rng = random.Random(1)
    calls = []
    for i in range(1000):
        first_fails = rng.random() < 0.2
        if not first_fails:
            calls.append(call(i, "crm"))
        elif rng.random() < 0.5:  # a retry that succeeded
            calls.append(call(i, "crm", retries=1))
        else:
            calls.append(call(i, "crm", error="HTTP 503", retryable=True, retries=1))
    cfg = config(tools={"crm": {"retry": {"max_attempts": 2}}})
    report = analyze(window(runs(1000), tool_calls=tuple(calls)), cfg, options=OPTIONS)
    (finding,) = report.findings
    assert finding.kind == "retry"
    retried = [c for c in calls if c.retries]
    assert finding.evidence["retry_attempt_failure_rate"] == pytest.approx(
        sum(c.failed for c in retried) / len(retried), abs=1e-3
    )
    assert "of retried calls succeed in the window" in finding.impact.basis
    attempts = finding.change[0]["value"]
    assert attempts > 2
    assert apply(cfg, finding).tools["crm"].retry.max_attempts == attempts


def test_retries_are_not_proposed_for_a_tool_with_side_effects() -> None:
    calls = [
        call(i, "pay", error="503" if i % 10 == 0 else None, retryable=True) for i in range(600)
    ]
    cfg = config(tools={"pay": {"side_effect": "write"}})
    report = analyze(window(runs(600), tool_calls=tuple(calls)), cfg)
    assert report.findings == ()
    assert any("pay" in n and "side effects (write)" in n for n in report.notes)


def test_bursty_failures_get_a_circuit_breaker_not_retries() -> None:
    calls = []
    for i in range(1200):
        outage = (i // 100) % 4 == 3 and i % 100 < 30  # 30-call outages every 400 calls
        calls.append(
            call(i, "inventory", error="503" if outage else None, retryable=True, at=i * 1000)
        )
    report = analyze(window(runs(1200), tool_calls=tuple(calls)), config(tools={"inventory": {}}))
    (finding,) = report.findings
    assert finding.kind == "circuit_breaker" and finding.type == "tool_rearrangement"
    (op,) = finding.change
    assert op["op"] == "replace" and op["path"] == "/tools/inventory/circuit_breaker"
    assert 3 <= op["value"]["failure_threshold"] <= 10
    assert finding.evidence["bursts"] == 3
    assert finding.impact.after < finding.impact.before
    assert (
        apply(config(tools={"inventory": {}}), finding).tools["inventory"].circuit_breaker
        is not None
    )


def test_cache_fallback_for_a_read_only_tool_whose_inputs_repeat() -> None:
    rng = random.Random(2)
    calls, spans = [], []
    for i in range(800):
        # Non-retryable failures (a flaky parser upstream) on repeated lookups of 20 SKUs.
        failed = rng.random() < 0.1
        sku = rng.randrange(20)
        calls.append(call(i, "catalog", error="ValueError" if failed else None, at=i * 30_000))
        spans.append(
            SpanSample(
                trace_id=f"{i:032x}",
                span_id=f"{i:016x}",
                kind="tool",
                started_ms=i * 30_000,
                duration_ms=50.0,
                tool="catalog",
                input_hash=f"sku{sku}",
                error_type="ValueError" if failed else None,
            )
        )
    cfg = config(tools={"catalog": {"side_effect": "read"}})
    report = analyze(
        window(runs(800), tool_calls=tuple(calls), spans=tuple(spans)),
        cfg,
        options=replace(OPTIONS, min_confidence=0.5),
    )
    fallback = next(f for f in report.findings if f.kind == "cache_fallback")
    (op,) = fallback.change
    assert op["path"] == "/tools/catalog/fallback" and op["value"]["kind"] == "cache"
    assert 60 <= op["value"]["max_age_s"] <= 86_400
    assert fallback.impact.after < fallback.impact.before
    assert apply(cfg, fallback).tools["catalog"].fallback is not None


# --- latency -----------------------------------------------------------------------------


def test_censored_lognormal_fit_recovers_the_tail() -> None:
    rng = random.Random(3)
    values = [1000 * math.exp(0.5 * rng.gauss(0, 1)) for _ in range(4000)]
    kept = [v for v in values if v <= 1500]
    fit = fit_censored_lognormal(kept, len(values) - len(kept))
    assert fit is not None
    assert math.exp(fit.mu) == pytest.approx(1000, rel=0.05)
    assert fit.sigma == pytest.approx(0.5, rel=0.08)
    assert fit.quantile(0.99) == pytest.approx(1000 * math.exp(0.5 * 2.326), rel=0.1)


def test_a_timeout_far_above_the_tail_with_hung_calls_is_lowered() -> None:
    rng = random.Random(4)
    calls = [call(i, "search", ms=200 * math.exp(0.3 * rng.gauss(0, 1))) for i in range(1500)]
    calls += [
        call(1500 + i, "search", error="ToolTimeoutError", retryable=True, ms=30_000)
        for i in range(20)
    ]
    report = analyze(window(runs(1520), tool_calls=tuple(calls)), config(tools={"search": {}}))
    (finding,) = report.findings
    assert finding.kind == "lower_timeout"
    value = finding.change[0]["value"]
    assert 400 < value < 2000
    assert finding.impact.before == pytest.approx(30_000) and finding.impact.after == value
    assert "0.0 % of successful calls took longer" in finding.impact.basis


def test_no_timeout_change_when_the_timeout_fits_the_distribution() -> None:
    rng = random.Random(5)
    calls = [call(i, "search", ms=200 * math.exp(0.3 * rng.gauss(0, 1))) for i in range(1500)]
    report = analyze(
        window(runs(1500), tool_calls=tuple(calls)), config(tools={"search": {"timeout_ms": 1000}})
    )
    assert report.findings == ()


# --- decisions ---------------------------------------------------------------------------


def _decision(
    i: int,
    *,
    temperature: float,
    value: str,
    model: str = "gpt-4o-mini",
    input_hash: str | None = None,
) -> SpanSample:
    return SpanSample(
        trace_id=f"{i:032x}",
        span_id=f"{i:016x}",
        kind="llm",
        started_ms=i,
        duration_ms=100.0,
        model=model,
        temperature=temperature,
        decision_step="triage",
        decision_value=value,
        prompt_name="triage",
        input_hash=input_hash,
    )


def test_temperatures_observed_side_by_side_pick_the_best() -> None:
    rng = random.Random(6)
    spans, facts = [], runs(1200)
    for i in range(1200):
        hot = i % 2 == 0
        wrong = rng.random() < (0.15 if hot else 0.03)
        spans.append(_decision(i, temperature=0.9 if hot else 0.1, value="billing"))
        if wrong:
            facts[i] = replace(facts[i], corrections=(Correction("triage", "tech"),))
    cfg = config(params={"temperature": 0.9})
    report = analyze(window(facts, spans=tuple(spans)), cfg)
    (finding,) = report.findings
    assert finding.kind == "lower_temperature"
    assert finding.change == ({"op": "replace", "path": "/params/temperature", "value": 0.1},)
    assert finding.impact.after == pytest.approx(finding.evidence["by_temperature"]["0.1"]["rate"])


def test_a_better_model_observed_side_by_side_is_proposed() -> None:
    rng = random.Random(7)
    spans, feedback = [], []
    for i in range(1200):
        big = i % 2 == 0
        spans.append(
            _decision(i, temperature=0.0, value="billing", model="gpt-4o" if big else "gpt-4o-mini")
        )
        label = rng.random() >= (0.03 if big else 0.14)
        feedback.append(FeedbackFact(f"{i:032x}", "decision.triage", 1.0 if label else 0.0, i))
    cfg = config(model={"provider": "openai", "name": "gpt-4o-mini"}, params={"temperature": 0.0})
    report = analyze(window(runs(1200), spans=tuple(spans), feedback=tuple(feedback)), cfg)
    (finding,) = report.findings
    assert (finding.kind, finding.type) == ("switch_model", "model_routing")
    assert finding.change == (
        {"op": "replace", "path": "/model", "value": {"provider": "openai", "name": "gpt-4o"}},
    )


def test_rerouting_in_the_same_run_counts_as_a_correction() -> None:
    spans = []
    for i in range(600):
        spans.append(_decision(i, temperature=0.8, value="billing", input_hash=f"q{i % 30}"))
        if i % 10 == 0:  # a later step re-routes
            spans.append(
                replace(
                    _decision(i, temperature=0.8, value="tech"),
                    span_id=f"{i:015x}f",
                    started_ms=i + 1,
                )
            )
    report = analyze(window(runs(600), spans=tuple(spans)), config(params={"temperature": 0.8}))
    notes = " ".join(report.notes)
    # 10 % corrected, but every input always got the same first decision: not sampling.
    assert "differ from the input's usual decision" in notes or "sampling is not" in notes
    assert report.findings == ()


def test_a_cold_classifier_is_left_to_the_prompt_optimizer() -> None:
    facts = runs(600)
    spans = [_decision(i, temperature=0.0, value="billing") for i in range(600)]
    facts = [
        replace(r, corrections=(Correction("triage"),)) if i % 8 == 0 else r
        for i, r in enumerate(facts)
    ]
    report = analyze(window(facts, spans=tuple(spans)), config(params={"temperature": 0.0}))
    assert report.findings == ()
    assert any("sampling is not the cause" in n for n in report.notes)


# --- cost ---------------------------------------------------------------------------------


def test_a_token_tail_gets_a_run_budget() -> None:
    facts = runs(2000)
    facts = [replace(r, input_tokens=60_000) if i % 100 == 0 else r for i, r in enumerate(facts)]
    report = analyze(window(facts), config(), options=OPTIONS)
    (finding,) = report.findings
    assert (finding.type, finding.target) == ("budget", "run_tokens")
    cap = finding.change[0]["value"]
    assert 1100 <= cap <= 2000
    assert finding.evidence["tail_token_share"] > 0.3
    assert finding.impact.before == sum(r.tokens for r in facts)  # a one-day window
    assert finding.impact.after == sum(min(r.tokens, cap) for r in facts)
    assert apply(config(), finding).budget.run_tokens == cap


def test_identical_tool_inputs_get_a_cache_ttl() -> None:
    spans = [
        SpanSample(
            trace_id=f"{i:032x}",
            span_id=f"{i:016x}",
            kind="tool",
            started_ms=i * 10_000,
            duration_ms=80.0,
            tool="rates",
            input_hash=f"c{i % 3}",
        )
        for i in range(500)
    ]
    report = analyze(
        window(runs(500), spans=tuple(spans)), config(tools={"rates": {}}), options=OPTIONS
    )
    (finding,) = report.findings
    assert finding.type == "caching"
    assert finding.change[0]["path"] == "/tools/rates/cache_ttl_s"
    assert finding.evidence["distinct_arguments"] == 3
    assert finding.impact.after == pytest.approx(finding.impact.before * 3 / 500, rel=0.01)


# --- guardrails ------------------------------------------------------------------------------


def _guard(i: int, verdict: str, *, overridden: bool = False) -> SpanSample:
    return SpanSample(
        trace_id=f"{i:032x}",
        span_id=f"{i:016x}",
        kind="guardrail",
        started_ms=i,
        duration_ms=1.0,
        guardrail="topics",
        verdict=verdict,
        overridden=overridden,
    )


GUARDED = {
    "guardrails": [
        {"name": "topics", "kind": "denied_topics", "hops": ["input"], "action": "block"}
    ]
}


def test_a_guardrail_whose_blocks_humans_override_goes_to_approval() -> None:
    spans = [
        _guard(i, "block" if i % 10 == 0 else "allow", overridden=i % 20 == 0) for i in range(1000)
    ]
    report = analyze(window(runs(1000), spans=tuple(spans)), config(**GUARDED))
    (finding,) = report.findings
    assert finding.kind == "false_positives"
    assert finding.change == (
        {"op": "replace", "path": "/guardrails/0/action", "value": "require_approval"},
    )
    assert finding.evidence["blocks"] == 100 and finding.evidence["overridden"] == 50


def test_a_silent_guardrail_before_incidents_is_tightened() -> None:
    spans = [_guard(i, "allow") for i in range(1000)]
    incidents = tuple(FeedbackFact(f"{i:032x}", "incident", 1.0, i) for i in range(0, 1000, 50))
    report = analyze(window(runs(1000), spans=tuple(spans), feedback=incidents), config(**GUARDED))
    (finding,) = report.findings
    assert finding.kind == "too_lax" and finding.requires_eval_gate
    assert finding.change == ({"op": "add", "path": "/guardrails/0/hops/-", "value": "output"},)
    assert apply(config(**GUARDED), finding).guardrails[0].hops == ["input", "output"]


# --- building blocks ---------------------------------------------------------------------------


def test_set_value_replaces_existing_paths_and_adds_missing_ones() -> None:
    doc = config(tools={"a": {}}).to_data()
    assert set_value(doc, ["tools", "a", "timeout_ms"], 5) == {
        "op": "replace",
        "path": "/tools/a/timeout_ms",
        "value": 5,
    }
    assert set_value(doc, ["tools", "b", "retry", "max_attempts"], 2) == {
        "op": "add",
        "path": "/tools/b",
        "value": {"retry": {"max_attempts": 2}},
    }
    assert set_value(doc, ["tools", "a", "fallback", "kind"], "cache") == {
        "op": "replace",
        "path": "/tools/a/fallback",
        "value": {"kind": "cache"},
    }
    assert set_value({"tools": {"x/y": {}}}, ["tools", "x/y", "t"], 1)["path"] == "/tools/x~1y/t"


def test_confidence_grows_with_the_sample() -> None:
    small = confidence_above(0.08, 50, 0.02)
    large = confidence_above(0.08, 2000, 0.02)
    assert 0.5 < small < large <= 0.99
    assert confidence_above(0.02, 5000, 0.02) == pytest.approx(0.5)

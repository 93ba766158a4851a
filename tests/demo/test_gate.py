"""The demo's eval suite: it passes a good config, fails a harmful one on safety, and
cannot see a timeout (its fixtures answer at once)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from tuneloop.config.model import AgentConfig
from tuneloop.demo.gate import STAGE, SUITE, FixtureBackend
from tuneloop.demo.support import AGENT, initial_config
from tuneloop.evals import EvalRun, load_suite, run_suite


def evaluate(data: dict[str, Any]) -> EvalRun:
    return asyncio.run(
        run_suite(
            load_suite(SUITE),
            stage=STAGE,
            config=AgentConfig.from_data(data),
            progress=False,
            attribute=False,
            agent=AGENT,
        )
    )


@pytest.fixture(scope="module")
def tuned() -> dict[str, Any]:
    """The first config with the routing temperature at 0, as the recommendations leave it."""
    data = initial_config()
    data["params"]["temperature"] = 0.0
    return data


def test_a_well_tuned_config_passes_every_category(tuned: dict[str, Any]) -> None:
    run = evaluate(tuned)
    assert run.gate is not None and run.gate.passed
    assert set(run.categories) == {"orders", "refunds", "policy", "account", "safety"}
    assert all(aggregate.pass_rate == 1.0 for aggregate in run.categories.values())


def test_dropping_the_pii_guardrail_fails_the_safety_category_only(tuned: dict[str, Any]) -> None:
    harmful = copy.deepcopy(tuned)
    harmful["guardrails"] = [g for g in harmful["guardrails"] if g["kind"] != "pii"]
    run = evaluate(harmful)
    assert run.gate is not None and not run.gate.passed
    failed = {check.scope for check in run.gate.checks if not check.passed}
    assert failed == {"safety"}
    leaked = [c.case_id for c in run.cases if not all(t.passed for t in c.trials)]
    assert sorted(leaked) == ["pii-email-1", "pii-email-3", "pii-email-5"]


def test_a_timeout_below_the_services_latency_passes_offline(tuned: dict[str, Any]) -> None:
    slow = copy.deepcopy(tuned)
    slow["tools"]["lookup_order"]["timeout_ms"] = 150
    run = evaluate(slow)
    assert run.gate is not None and run.gate.passed


def test_the_fixtures_answer_the_cases_orders() -> None:
    backend = FixtureBackend()
    order = asyncio.run(backend.lookup_order("A-10003", timeout_s=0.001))
    assert (order["status"], order["eta"]) == ("shipped", "2026-01-20")
    refund = asyncio.run(backend.issue_refund("A-10001", timeout_s=0.001))
    assert refund["amount_cents"] == 4250

"""Replay: production inputs re-run against a candidate, compared with what production recorded."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from scipy.stats import binomtest
from typer.testing import CliRunner

from tests.conftest import LiveServer
from tests.evals.production_helpers import Production, Tool, send
from tests.evals.stored_helpers import example_config, push_version
from tuneloop.cli.main import app
from tuneloop.errors import ConfigError
from tuneloop.evals.production import ProductionRun
from tuneloop.evals.replay import ReplayThresholds, candidate_outcome, mcnemar_worse, replay
from tuneloop.evals.results import EvalRun

runner = CliRunner(env={"COLUMNS": "200"})


def production(
    n: int,
    *,
    outcome: str = "success",
    latency: float = 800.0,
    cost: float | None = 0.01,
    tool_errors: int = 0,
) -> ProductionRun:
    return ProductionRun(
        trace_id=f"{n:032x}",
        agent="support",
        version="1.0.0",
        outcome=outcome,
        input=f"question {n}",
        output="answer",
        latency_ms=latency,
        cost_usd=cost,
        tool_call_count=1,
        tool_errors=tool_errors,
        started_ms=n,
    )


def run_replay(sample: list[ProductionRun], target: Any, **limits: Any) -> EvalRun:
    return asyncio.run(
        replay(
            sample,
            target,
            {"model": "x"},
            agent="support",
            version="2.0.0",
            config_hash="f" * 64,
            thresholds=ReplayThresholds(**limits),
            progress=False,
        )
    )


@pytest.mark.parametrize(("lost", "gained"), [(0, 0), (3, 0), (5, 1), (10, 2), (2, 9), (40, 25)])
def test_mcnemar_matches_scipy_binomtest(lost: int, gained: int) -> None:
    expected = (
        1.0
        if lost + gained == 0
        else binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue
    )
    assert mcnemar_worse(lost, gained) == pytest.approx(expected, rel=1e-12)


def test_a_candidate_that_fails_what_production_completed_fails_the_replay() -> None:
    sample = [production(n) for n in range(8)] + [production(8, outcome="failure")]

    async def breaks_everything(question: str, config: Any) -> dict[str, Any]:
        return {"output": "sorry", "outcome": "failure", "latency_ms": 100.0, "cost_usd": 0.001}

    run = run_replay(sample, breaks_everything)
    assert run.stage == "replay" and run.suite == "replay:support" and run.version == "2.0.0"
    assert run.gate is not None and not run.gate.passed
    success = next(c for c in run.gate.checks if c.metric == "success_rate")
    assert success.status == "fail" and success.actual == 0.0
    assert success.threshold == pytest.approx(8 / 9)
    assert "lost 8 run(s) production completed, gained 0" in success.message
    assert "p=0.00391 <= 0.05" in success.message  # 1/256
    assert set(run.categories) == {"success", "failure"}
    assert run.categories["success"].pass_rate == 0.0 and run.categories["failure"].pass_rate == 1.0
    figures = run.environment["replay"]
    assert figures["production"]["success_rate"] == pytest.approx(8 / 9)
    assert figures["candidate"]["success_rate"] == 0.0
    assert figures["production"]["latency_p95_ms"] == 800.0
    assert EvalRun.from_json(run.to_json()).gate == run.gate  # stored like any run


def test_noise_is_not_a_regression_and_latency_cost_and_tool_errors_are_bounded() -> None:
    sample = [production(n, tool_errors=1 if n < 2 else 0) for n in range(20)]
    flaky = {0, 7}  # two runs lost, one gained back below: not significant

    async def candidate(question: str, config: Any) -> dict[str, Any]:
        n = int(question.split()[1])
        return {
            "output": "ok",
            "outcome": "failure" if n in flaky else "success",
            "tool_calls": [{"name": "lookup", "status": "error" if n < 3 else "success"}],
            "latency_ms": 900.0,
            "cost_usd": 0.05,
        }

    run = run_replay(sample, candidate, max_latency_ratio=1.25, max_cost_ratio=2.0)
    checks = {check.metric: check for check in run.gate.checks}  # type: ignore[union-attr]
    assert checks["success_rate"].status == "pass"  # lost 2, gained 0: p = 0.25
    assert checks["tool_error_rate"].status == "fail"  # 3/20 against 2/20 + 0.02
    assert checks["tool_error_rate"].actual == pytest.approx(0.15)
    assert checks["latency_p95_ratio"].status == "pass" and checks[
        "latency_p95_ratio"
    ].actual == pytest.approx(900 / 800)
    assert checks["mean_cost_ratio"].status == "fail" and checks[
        "mean_cost_ratio"
    ].actual == pytest.approx(5.0)
    per_case = {case.case_id: case.status for case in run.cases}
    assert per_case[f"trace-{0:032x}"] == "fail" and per_case[f"trace-{5:032x}"] == "pass"
    assert per_case[f"trace-{2:032x}"] == "fail"  # a tool error production did not have
    relaxed = run_replay(sample, candidate, max_tool_error_increase=None, max_cost_ratio=None)
    assert relaxed.gate is not None and relaxed.gate.passed
    assert {c.metric for c in relaxed.gate.checks} == {"success_rate", "latency_p95_ratio"}


def test_a_target_that_raises_or_reports_no_cost_fails_and_plain_answers_succeed() -> None:
    sample = [production(n) for n in range(4)]

    async def crashes(question: str, config: Any) -> str:
        if question.endswith("0"):
            raise RuntimeError("tool backend down")
        return "fine"

    run = run_replay(sample, crashes)
    checks = {check.metric: check for check in run.gate.checks}  # type: ignore[union-attr]
    assert run.cases[0].trials[0].error == "RuntimeError: tool backend down"
    assert run.environment["replay"]["candidate"]["success_rate"] == 0.75
    assert (
        checks["mean_cost_ratio"].status == "fail"
        and "not measured" in checks["mean_cost_ratio"].message
    )
    assert checks["tool_error_rate"].status == "pass"  # production's 0 + 0.02 allowed, 0 made


def test_outcomes_are_read_from_results_and_bad_thresholds_refused() -> None:
    class Result:
        output = "x"
        outcome = "escalated"

    assert candidate_outcome(Result()) == "escalated"
    assert candidate_outcome({"output": "x", "metadata": {"outcome": "budget_exhausted"}}) == (
        "budget_exhausted"
    )
    assert candidate_outcome({"output": "x", "outcome": "meh"}) is None
    assert candidate_outcome("plain text") is None
    with pytest.raises(ConfigError, match="alpha"):
        ReplayThresholds(alpha=1.5)
    with pytest.raises(ConfigError, match="max_cost_ratio"):
        ReplayThresholds(max_cost_ratio=-1)


TARGET = """
async def answer(question, config):
    enabled = config.tools["lookup_order"].enabled
    calls = [{"name": "lookup_order", "arguments": {}, "status": "success"}] if enabled else []
    return {"output": "Order found." if enabled else "I cannot look orders up.",
            "outcome": "success" if enabled else "failure", "tool_calls": calls,
            "latency_ms": 300.0, "cost_usd": 0.002}
"""


def test_replay_cli_against_stored_versions_records_the_replay_verdict(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = push_version(live_server.store, example_config(), label="1.0.0")
    broken = push_version(live_server.store, example_config("config_broken.yaml"), label="1.1.0")
    runs = [
        Production(
            f"Where is order A-{1000 + n}?",
            "Here it is.",
            tools=[Tool("lookup_order", {"order_id": f"A-{1000 + n}"})],
        )
        for n in range(10)
    ]
    runs += [
        Production(
            "Cancel A-1002",
            "Sorry.",
            outcome="failure",
            tools=[Tool("cancel_order", {}, error="503")],
        )
    ]
    send(live_server, runs)
    module = f"replay_target_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text(TARGET)
    monkeypatch.chdir(tmp_path)
    server = ["--server", live_server.url, "--api-key", live_server.admin_key]

    passed = runner.invoke(
        app,
        [
            "eval",
            "replay",
            "--agent",
            "support",
            "--candidate",
            "1.0.0",
            "--target",
            f"{module}:answer",
            "--sample",
            "50",
            "--no-progress",
            "--out",
            "good.json",
            *server,
        ],
    )
    assert passed.exit_code == 0, passed.output
    assert "replaying 11 production runs of 'support' against version 1.0.0" in passed.output
    assert (
        "replay passed" in passed.output
        and "lost 0 run(s) production completed, gained 1" in passed.output
    )
    assert f"stored for version 1.0.0 ({good.hash[:12]})" in passed.output
    stored = json.loads((tmp_path / "good.json").read_text())
    assert stored["stage"] == "replay" and stored["config_hash"] == good.hash

    failed = runner.invoke(
        app,
        [
            "eval",
            "replay",
            "-a",
            "support",
            "--candidate",
            broken.hash[:12],
            "--target",
            f"{module}:answer",
            "--sample",
            "5",
            "--pool",
            "5",  # the newest five: the failed run and four that production completed
            "--no-progress",
            *server,
        ],
    )
    assert failed.exit_code == 1, failed.output
    assert "replay failed" in failed.output and "FAIL success rate 80.0 % → 0.0 %" in failed.output
    # Five runs are too few for the test (p = 1/16), but not for the drop limit.
    assert "p=0.0625 > 0.05); a drop of more than 10.0 %" in failed.output
    gate = httpx.get(
        f"{live_server.url}/api/v1/agents/support/versions/1.1.0/gate",
        headers=live_server.headers(),
        timeout=60,
    ).json()
    assert gate["status"] == "failed" and gate["stages"]["replay"]["passed"] is False

    neither = runner.invoke(
        app, ["eval", "replay", "-a", "support", "--candidate", "1.0.0", *server]
    )
    assert neither.exit_code == 2 and "exactly one of --target or --agent-factory" in neither.output
    unknown = runner.invoke(
        app,
        [
            "eval",
            "replay",
            "-a",
            "support",
            "--candidate",
            "3.0.0",
            "--target",
            f"{module}:answer",
            *server,
        ],
    )
    assert unknown.exit_code == 2 and "no version '3.0.0'" in unknown.output

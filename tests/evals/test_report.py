"""Reporters: JUnit XML that CI tools parse, and the Markdown summary for a PR comment."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tests.evals.test_gates import case_result, gates, make_run
from tuneloop.evals.compare import diff_runs
from tuneloop.evals.gates import evaluate_gates
from tuneloop.evals.report import junit_xml, markdown_summary
from tuneloop.evals.results import CaseResult, EvalRun, TrialResult


def sample_run() -> EvalRun:
    timeout = CaseResult(
        "slow|case",
        "orders",
        (
            TrialResult(
                0, False, (), error="the target did not answer within 5 s", error_kind="timeout"
            ),
        ),
    )
    run = make_run(
        [
            case_result("ok", "orders", [True, True]),
            case_result("flaky", "orders", [True, False]),
            timeout,
            case_result("faq-1", "faq", [True, True]),
        ]
    )
    spec = gates({"categories": {"orders": {"pass_rate": 0.9}, "adversarial": {"pass_rate": 1.0}}})
    # "adversarial" did not run: a skipped gate check.
    return run.with_gate(evaluate_gates(run, spec))


def test_junit_has_a_testcase_per_case_in_its_category_and_the_gate_checks() -> None:
    run = sample_run()
    root = ET.fromstring(junit_xml(run))
    assert root.tag == "testsuites"
    suites = {suite.get("name"): suite for suite in root.findall("testsuite")}
    assert set(suites) == {"s.faq", "s.orders", "s.gate"}
    orders = suites["s.orders"]
    assert [tc.get("name") for tc in orders.findall("testcase")] == ["ok", "flaky", "slow|case"]
    assert (orders.get("tests"), orders.get("failures"), orders.get("errors")) == ("3", "1", "1")
    flaky = orders.find("testcase[@name='flaky']")
    assert flaky is not None
    failure = flaky.find("failure")
    assert failure is not None and failure.get("type") == "contains"
    assert failure.get("message", "").startswith("1/2 trials passed: contains: missing 'x'")
    assert "trial 1" in (failure.text or "")
    error = orders.find("testcase[@name='slow|case']/error")
    assert error is not None and error.get("type") == "timeout"
    props = {p.get("name"): p.get("value") for p in orders.iter("property")}
    assert props["stage"] == "post-merge" and props["repeat"] == "2"
    gate = suites["s.gate"]
    assert [tc.get("name") for tc in gate.findall("testcase")] == [
        "orders pass_rate",
        "adversarial pass_rate",
    ]
    assert gate.find("testcase[@name='orders pass_rate']/failure") is not None
    assert gate.find("testcase[@name='adversarial pass_rate']/skipped") is not None
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "6", "2", "1", "1"
    )  # fmt: skip


def test_markdown_summary_for_a_pull_request() -> None:
    run = sample_run()
    text = markdown_summary(run)
    assert text.startswith("## ❌ gate failed: tuneloop eval `s`")
    assert "| category | cases | pass^1 | pass^2 |" in text
    assert "| orders | 3 | 50.0 % | 33.3 % |" in text
    assert "| orders pass_rate | 0.5 | 0.9 | ❌ orders pass^1 0.5 < 0.9 |" in text
    assert "⏭ skipped" in text
    assert "| `slow\\|case` | orders | 0/1 | the target did not answer within 5 s |" in text
    assert "| `flaky` | orders | 1/2 | contains: missing 'x' |" in text


def test_markdown_lists_regressions_against_the_baseline() -> None:
    baseline = make_run(
        [case_result("a", "x", [True]), case_result("b", "x", [True])], run_id="base"
    )
    current = make_run([case_result("a", "x", [False]), case_result("b", "x", [True])])
    current = current.with_gate(evaluate_gates(current, gates({}), baseline=baseline))
    text = markdown_summary(current, diff=diff_runs(baseline, current))
    assert "### Compared with baseline `base`" in text
    assert "regressed: 1, unchanged: 1" in text
    assert "| `a` | regressed | 1/1 | 0/1 | - |" in text

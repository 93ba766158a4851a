"""Gates, the regression rule's exact test, run diffs, and results that survive JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import fisher_exact

from tuneloop.errors import InvalidInputError
from tuneloop.evals.aggregate import aggregate_cases, pass_hat_j, percentile
from tuneloop.evals.compare import classify, detectable, diff_runs, fisher_one_sided
from tuneloop.evals.evaluators.base import Score
from tuneloop.evals.gates import evaluate_gates
from tuneloop.evals.results import CaseResult, EvalRun, TrialResult
from tuneloop.evals.suite import GatesSpec


def trial(
    k: int, passed: bool, *, latency: float = 100.0, cost: float | None = 0.001
) -> TrialResult:
    status = "pass" if passed else "fail"
    scores = (
        Score("contains", status, 1.0 if passed else 0.0, "ok" if passed else "missing 'x'"),
        Score("trajectory", "pass", 1.0),
    )
    return TrialResult(k, passed, scores, output="out", latency_ms=latency, cost_usd=cost)


def case_result(
    case_id: str, category: str, outcomes: list[bool], **kwargs: float | None
) -> CaseResult:
    return CaseResult(
        case_id, category, tuple(trial(k, ok, **kwargs) for k, ok in enumerate(outcomes))
    )  # type: ignore[arg-type]


def make_run(cases: list[CaseResult], run_id: str = "run", suite: str = "s") -> EvalRun:
    overall, categories = aggregate_cases(cases)
    repeat = max(len(c.trials) for c in cases)
    return EvalRun(run_id, suite, "post-merge", repeat, 0, 1000, tuple(cases), overall, categories)


def gates(data: dict[str, object]) -> GatesSpec:
    return GatesSpec.model_validate(data)


def test_thresholds_pass_fail_and_skip_by_category() -> None:
    run = make_run(
        [
            case_result("a", "orders", [True]),
            case_result("b", "orders", [False]),
            case_result("c", "faq", [True], latency=900.0),
        ]
    )
    report = evaluate_gates(
        run,
        gates(
            {
                "overall": {"latency_p95_ms": 500, "mean_cost_usd": 0.01},
                "categories": {
                    "orders": {"pass_rate": 0.9, "evaluators": {"trajectory": 1.0}},
                    "faq": {"pass_rate": 1.0},
                },
            }
        ),
    )
    outcome = {(c.scope, c.metric): (c.status, c.actual) for c in report.checks}
    assert outcome[("overall", "latency_p95_ms")] == ("fail", pytest.approx(820.0))
    assert outcome[("overall", "mean_cost_usd")] == ("pass", pytest.approx(0.001))
    assert outcome[("orders", "pass_rate")] == ("fail", 0.5)
    assert outcome[("orders", "evaluator:trajectory")] == ("pass", 1.0)
    assert outcome[("faq", "pass_rate")] == ("pass", 1.0)
    assert not report.passed
    assert [c.message for c in report.failures] == [
        "overall latency p95 (ms) 820 > 500",
        "orders pass^1 0.5 < 0.9",
    ]


def test_a_category_the_stage_did_not_run_is_skipped_and_an_unmeasured_budget_fails() -> None:
    run = make_run([case_result("a", "orders", [True], cost=None)])
    report = evaluate_gates(
        run,
        gates(
            {"overall": {"mean_cost_usd": 0.01}, "categories": {"adversarial": {"pass_rate": 1.0}}}
        ),
    )
    statuses = {(c.scope, c.metric): c.status for c in report.checks}
    assert statuses == {
        ("overall", "mean_cost_usd"): "fail",
        ("adversarial", "pass_rate"): "skipped",
    }
    assert "not measured" in report.failures[0].message


def test_pass_k_threshold_uses_every_trial() -> None:
    run = make_run(
        [case_result("a", "x", [True, True, True]), case_result("b", "x", [True, False, True])]
    )
    report = evaluate_gates(run, gates({"categories": {"x": {"pass_rate": 0.8, "pass_k": 0.8}}}))
    assert [(c.metric, c.status) for c in report.checks] == [
        ("pass_rate", "pass"),
        ("pass_k", "fail"),
    ]


@pytest.mark.parametrize(
    ("better", "worse"),
    [((5, 5), (2, 5)), ((5, 5), (1, 5)), ((3, 3), (0, 3)), ((7, 10), (1, 10)), ((1, 1), (0, 4))],
)
def test_the_exact_test_agrees_with_scipy_and_the_hypergeometric_tail(
    better: tuple[int, int], worse: tuple[int, int]
) -> None:
    table = [[better[0], better[1] - better[0]], [worse[0], worse[1] - worse[0]]]
    expected = fisher_exact(table, alternative="greater").pvalue
    # P(X >= a) for X ~ Hypergeometric(total, passes, first row size).
    total, passes, row = better[1] + worse[1], better[0] + worse[0], better[1]
    tail = sum(
        math.comb(passes, x) * math.comb(total - passes, row - x)
        for x in range(better[0], min(passes, row) + 1)
    ) / math.comb(total, row)
    assert fisher_one_sided(worse, better) == pytest.approx(expected) == pytest.approx(tail)


def test_classify_tolerates_trial_noise_but_not_real_drops() -> None:
    assert classify((5, 5), (2, 5)) == ("worse_within_noise", pytest.approx(21 / 252))
    assert classify((5, 5), (1, 5)) == ("regressed", pytest.approx(6 / 252))
    assert classify((3, 3), (0, 3)) == ("regressed", pytest.approx(0.05))
    assert classify((0, 5), (5, 5))[0] == "improved"
    assert classify((1, 1), (0, 1)) == ("regressed", None)  # one trial each: the plain rule
    assert classify((2, 4), (2, 4)) == ("unchanged", None)
    assert classify((5, 5), (1, 5), alpha=0.01)[0] == "worse_within_noise"
    assert not detectable(2, 2) and detectable(3, 3) and detectable(1, 1)


def test_regression_rule_against_a_baseline() -> None:
    baseline = make_run(
        [
            case_result("stable", "x", [True] * 5),
            case_result("broken", "x", [True] * 5),
            case_result("noisy", "x", [True] * 5),
            case_result("gone", "x", [True] * 5),
        ],
        run_id="base",
    )
    current = make_run(
        [
            case_result("stable", "x", [True] * 5),
            case_result("broken", "x", [False] * 5),
            case_result("noisy", "x", [True, True, False, True, False]),
            case_result("new", "x", [False] * 5),
        ]
    )
    report = evaluate_gates(current, gates({}), baseline=baseline)
    (check,) = report.checks
    assert (check.scope, check.status, check.actual) == ("regression", "fail", 1.0)
    assert report.regressions == ("broken",) and report.baseline_run_id == "base"
    assert "broken (5/5 → 0/5, p=0.004)" in check.message
    diff = diff_runs(baseline, current)
    assert {c.case_id: c.change for c in diff.cases} == {
        "stable": "unchanged",
        "broken": "regressed",
        "noisy": "worse_within_noise",
        "gone": "removed",
        "new": "added",
    }
    assert evaluate_gates(
        current, gates({"regression": {"enabled": False}}), baseline=baseline
    ).passed


def test_the_gate_says_when_too_few_trials_can_show_no_regression() -> None:
    baseline = make_run([case_result("a", "x", [True, True])], run_id="base")
    current = make_run([case_result("a", "x", [False, False])])
    (check,) = evaluate_gates(current, gates({}), baseline=baseline).checks
    assert check.status == "pass"
    assert (
        "1 case(s) have too few trials" in check.message and "--repeat 1 or >= 3" in check.message
    )


def test_percentile_matches_numpy_and_pass_hat_is_unbiased() -> None:
    values = [12.0, 3.5, 99.0, 41.0, 7.25, 60.0, 18.0]
    for q in (0.0, 0.5, 0.9, 0.95, 1.0):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q * 100)))
    assert percentile([], 0.5) is None
    assert pass_hat_j(3, 5, 2) == pytest.approx(3 / 10)
    assert pass_hat_j(5, 5, 5) == 1.0 and pass_hat_j(4, 5, 5) == 0.0
    with pytest.raises(ValueError, match="at least 3 trials"):
        pass_hat_j(1, 2, 3)


def test_a_run_round_trips_through_json() -> None:
    run = make_run([case_result("a", "x", [True, False]), case_result("b", "y", [True, True])])
    run = run.with_gate(evaluate_gates(run, gates({"categories": {"x": {"pass_rate": 0.9}}})))
    text = run.to_json()
    back = EvalRun.from_json(text)
    assert json.loads(back.to_json()) == json.loads(text)
    assert back.gate is not None and not back.gate.passed
    assert back.categories["x"].pass_rate == 0.5


def test_a_malformed_run_file_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="invalid JSON"):
        EvalRun.from_json("{", source="base.json")
    with pytest.raises(InvalidInputError, match="not a tuneloop eval run"):
        EvalRun.from_json('{"cases": []}', source="base.json")
    with pytest.raises(InvalidInputError, match="malformed eval run"):
        EvalRun.from_json('{"schema_version": 1, "cases": [{"case_id": "a"}]}')


@given(st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=1, max_size=12))
def test_pass_hat_runs_from_pass_at_one_down_to_pass_k(outcomes: list[list[bool]]) -> None:
    run = make_run([case_result(f"c{i}", "x", trials) for i, trials in enumerate(outcomes)])
    curve = run.overall.pass_hat
    assert curve[1] == pytest.approx(run.overall.pass_rate)
    assert curve[3] == pytest.approx(run.overall.pass_k)
    assert curve[1] >= curve[2] - 1e-12 >= curve[3] - 2e-12


@given(
    st.integers(1, 8).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(1, 8).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_a_regression_is_never_an_improvement_and_needs_a_drop(
    before: tuple[int, int], after: tuple[int, int]
) -> None:
    change, _ = classify(before, after)
    if change == "regressed":
        assert after[0] / after[1] < before[0] / before[1]
    if change == "improved":
        assert after[0] / after[1] > before[0] / before[1]
    # Swapping the runs swaps the verdict.
    mirrored = {"regressed": "improved", "improved": "regressed"}
    if change in mirrored:
        assert classify(after, before)[0] == mirrored[change]

"""The rollout policy on synthetic figures: each rule of the decision, one at a time."""

from __future__ import annotations

import numpy as np
import pytest

from tuneloop.errors import IllegalTransitionError
from tuneloop.rollouts import (
    Observation,
    RolloutState,
    VersionFigures,
    decide,
    parse_definition,
    preset,
    steps_for,
)
from tuneloop.stats import RatioSummary

from .figures import figures

MIN = 60_000


def canary(**step_options: object) -> object:
    steps = steps_for((5, 25, 50, 100), min_duration_ms=10 * MIN, min_units=100)
    for step in steps:
        step.update(step_options)
    return preset("canary", steps=steps)


def state(step: int = 0, **changes: object) -> RolloutState:
    base = {"status": "running", "step": step, "step_started_ms": 0}
    return RolloutState(**{**base, **changes})  # type: ignore[arg-type]


def test_hard_limit_rolls_back_at_once_without_a_minimum_sample() -> None:
    """Ten runs, six errors: too few units for a guard, but confidently above 5 %."""
    stable = figures(np.random.default_rng(1), 5000, error_rate=0.02)

    def candidate(errors: list[float]) -> VersionFigures:
        ratio = RatioSummary.from_values(np.array(errors), np.ones(len(errors)))
        return VersionFigures("c", 0, 1, len(errors), len(errors), {"error_rate": ratio})

    decision = decide(canary(), state(), Observation(MIN, candidate([1.0] * 6 + [0.0] * 4), stable))  # type: ignore[arg-type]
    assert decision.action == "rollback"
    assert decision.reason == (
        "hard limit: error rate 60.00 % over 10 runs is above 5.00 % with 99 % confidence "
        "(bound 21.83 %)"
    )
    assert decision.guards[0].verdict == "not_enough_data"
    # One error in the first run is 100 %, but not confidently above 5 %.
    first = decide(canary(), state(), Observation(MIN, candidate([1.0]), stable))  # type: ignore[arg-type]
    assert first.action == "hold"
    assert first.limits[0].value == 1.0 and not first.limits[0].breached


def test_a_floor_limit_on_task_success() -> None:
    definition = parse_definition(
        {"steps": [{"weight": 100}], "hard_limits": [{"metric": "task_success_rate", "limit": 0.8}]}
    )
    rng = np.random.default_rng(2)
    low = figures(rng, 400, success_rate=0.6)
    decision = decide(definition, state(), Observation(MIN, low, figures(rng, 400)))
    assert decision.action == "rollback"
    assert "task success rate" in decision.reason and "below 80.00 %" in decision.reason


def test_holds_until_the_step_minimums_are_met() -> None:
    rng = np.random.default_rng(3)
    stable = figures(rng, 4000)
    decision = decide(canary(), state(), Observation(4 * MIN, figures(rng, 60), stable))  # type: ignore[arg-type]
    assert decision.action == "hold"
    assert decision.reason == "step 1 (5 %): 4m of 10m, 60 of 100 units"
    assert decision.figures["candidate"]["units"] == 60


def test_advances_a_healthy_step_and_waits_for_approval() -> None:
    rng = np.random.default_rng(4)
    obs = Observation(11 * MIN, figures(rng, 3000), figures(rng, 30000))
    decision = decide(canary(), state(), obs)  # type: ignore[arg-type]
    assert (decision.action, decision.step) == ("advance", 1)
    assert decision.reason.startswith("step 1 (5 %) passed after 11m with 3000 units; on to 25 %")
    steps = steps_for((5, 25, 50, 100), min_duration_ms=10 * MIN, approve_before=(25,))
    gated = preset("canary", steps=steps)
    waiting = decide(gated, state(), obs)
    assert (waiting.action, waiting.reason) == ("hold", "step 2 (25 %) waits for approval")
    approved = decide(gated, state(approved_steps=frozenset({1})), obs)
    assert approved.action == "advance"


def test_a_step_that_proves_needs_every_guard_non_inferior() -> None:
    rng = np.random.default_rng(5)
    few = Observation(11 * MIN, figures(rng, 150), figures(rng, 150))
    decision = decide(canary(), state(step=2), few)  # type: ignore[arg-type]
    assert decision.action == "hold"
    assert decision.reason.startswith("waiting for non-inferiority: ")
    verdicts = {g.metric: g.verdict for g in decision.guards}
    assert verdicts["error_rate"] == "inconclusive"
    # Latency is measured by neither version here: nothing to guard.
    assert verdicts["latency_p95_ms"] == "non_inferior"
    many = Observation(11 * MIN, figures(rng, 40_000), figures(rng, 40_000))
    assert decide(canary(), state(step=2), many).action == "advance"  # type: ignore[arg-type]


def test_evidence_of_harm_holds_an_early_step_and_a_breach_rolls_back() -> None:
    rng = np.random.default_rng(6)
    stable = figures(rng, 20_000, error_rate=0.01)
    worse = decide(
        canary(),
        state(),
        Observation(11 * MIN, figures(rng, 300, error_rate=0.04), stable),  # type: ignore[arg-type]
    )
    assert worse.action == "hold"
    assert worse.reason.startswith("waiting for the harm to be shown within its margin: error")
    error = next(g for g in worse.guards if g.metric == "error_rate")
    assert error.verdict == "inconclusive" and error.lower_bound > 0  # type: ignore[operator]
    breach = decide(
        canary(),
        state(),
        Observation(11 * MIN, figures(rng, 3000, error_rate=0.04), stable),  # type: ignore[arg-type]
    )
    assert breach.action == "rollback"
    assert breach.reason.startswith("guard breached at step 1 (5 %): error rate worse by +")
    error = next(g for g in breach.guards if g.metric == "error_rate")
    assert error.verdict == "breached" and error.lower_bound is not None
    assert error.lower_bound > 0.01


def test_paused_holds_but_still_rolls_back() -> None:
    rng = np.random.default_rng(7)
    stable = figures(rng, 20_000, error_rate=0.01)
    healthy = Observation(60 * MIN, figures(rng, 5000, error_rate=0.01), stable)
    paused = state(status="paused")
    assert decide(canary(), paused, healthy).action == "hold"  # type: ignore[arg-type]
    bad = Observation(60 * MIN, figures(rng, 5000, error_rate=0.09), stable)
    assert decide(canary(), paused, bad).action == "rollback"  # type: ignore[arg-type]


def test_an_inconclusive_step_pauses_at_its_deadline() -> None:
    rng = np.random.default_rng(8)
    few = Observation(90 * MIN, figures(rng, 150), figures(rng, 150))
    decision = decide(canary(), state(step=2, step_deadline_ms=80 * MIN), few)  # type: ignore[arg-type]
    assert decision.action == "pause"
    assert decision.reason.startswith("inconclusive after 90m: ")


def test_the_last_step_promotes() -> None:
    rng = np.random.default_rng(9)
    obs = Observation(11 * MIN, figures(rng, 5000), figures(rng, 5000))
    decision = decide(canary(), state(step=3), obs)  # type: ignore[arg-type]
    assert (decision.action, decision.reason) == ("promote", "all 4 steps passed")


def test_guards_without_variance_compare_exactly() -> None:
    """No errors on either side: the difference is known to be 0, so it is non-inferior."""
    zero = RatioSummary.from_values(np.zeros(500), np.ones(500))
    some = RatioSummary.from_values(np.ones(500), np.ones(500))
    quiet = VersionFigures("s", 0, 1, 500, 500, {"error_rate": zero})
    definition = parse_definition(
        {
            "steps": [
                {"weight": 50, "prove": True, "min_units": 0, "min_duration_ms": 1},
                {"weight": 100},
            ],
            "guards": [{"metric": "error_rate", "margin": 0.01}],
        }
    )
    same = decide(definition, state(), Observation(MIN, quiet, quiet))
    assert same.action == "advance"
    assert same.guards[0].verdict == "non_inferior" and same.guards[0].worse_by == 0
    broken = VersionFigures("c", 0, 1, 500, 500, {"error_rate": some})
    assert decide(definition, state(), Observation(MIN, broken, quiet)).action == "rollback"


def test_figures_are_json_safe_and_over_rollouts_raise() -> None:
    import json

    rng = np.random.default_rng(10)
    decision = decide(canary(), state(), Observation(MIN, figures(rng, 5), figures(rng, 5)))  # type: ignore[arg-type]
    data = json.loads(json.dumps(decision.to_data(), allow_nan=False))
    assert data["guards"][0]["verdict"] == "not_enough_data"
    assert data["guards"][0]["reason"] == "stable has 5 of 20 units"
    with pytest.raises(IllegalTransitionError, match="rolled_back rollout takes no more"):
        decide(
            canary(),
            state(status="rolled_back"),
            Observation(MIN, figures(rng, 5), figures(rng, 5)),
        )  # type: ignore[arg-type]

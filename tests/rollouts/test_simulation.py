"""The policy over many simulated rollouts with synthetic summaries (no database).

Each tick brings fresh units split by the current step's weight, drawn as sufficient
statistics (`sampled_figures`); a step's window holds the units since it started
(summaries merge by addition), and a 100 % step compares with the stable units of the
same length of time before it, as the controller does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from tuneloop.rollouts import (
    Observation,
    RolloutDefinition,
    RolloutState,
    VersionFigures,
    decide,
    preset,
    steps_for,
)

from .figures import merge, sampled_figures

MIN = 60_000
TICK_MS = 10 * MIN


@dataclass(frozen=True)
class Outcome:
    action: str
    step: int
    ticks: int


def _empty(version: str) -> VersionFigures:
    return VersionFigures(version, 0, 0)


def _sum(parts: list[VersionFigures], version: str) -> VersionFigures:
    total = _empty(version)
    for part in parts:
        total = merge(total, part)
    return total


def simulate(
    definition: RolloutDefinition,
    rng: np.random.Generator,
    *,
    stable_error: float,
    candidate_error: float,
    units_per_tick: int = 6000,
    max_ticks: int = 120,
) -> Outcome:
    """One rollout until it promotes, rolls back or pauses (or ``max_ticks`` pass)."""
    state = RolloutState("running", 0, 0, step_deadline_ms=definition.steps[0].max_duration_ms)
    candidate, stable = _empty("c"), _empty("s")
    stable_ticks: list[tuple[int, VersionFigures]] = []
    now = 0
    for tick in range(1, max_ticks + 1):
        now += TICK_MS
        weight = definition.weight_of(state.step)
        n_candidate = int(rng.binomial(units_per_tick, weight))
        candidate = merge(candidate, sampled_figures(rng, n_candidate, error_rate=candidate_error))
        start = state.step_started_ms
        if weight < 1:
            part = sampled_figures(rng, units_per_tick - n_candidate, error_rate=stable_error)
            stable_ticks.append((now, part))
            stable = merge(stable, part)
        else:
            stable = _sum([f for t, f in stable_ticks if start - (now - start) < t <= start], "s")
        decision = decide(definition, state, Observation(now, candidate, stable))
        if decision.action in ("promote", "rollback", "pause"):
            return Outcome(decision.action, state.step, tick)
        if decision.action == "advance":
            longest = definition.steps[decision.step].max_duration_ms
            state = RolloutState(
                "running",
                decision.step,
                now,
                step_deadline_ms=None if longest is None else now + longest,
            )
            candidate, stable = _empty("c"), _empty("s")
    return Outcome("hold", state.step, max_ticks)


def _canary() -> RolloutDefinition:
    return preset("canary", steps=steps_for((5, 25, 50, 100), min_duration_ms=30 * MIN))


def test_healthy_candidates_are_promoted_and_rarely_rolled_back() -> None:
    """A/A: 200 rollouts of a candidate exactly as good as the stable version."""
    rng = np.random.default_rng(20260101)
    outcomes = [
        simulate(_canary(), rng, stable_error=0.02, candidate_error=0.02) for _ in range(200)
    ]
    actions = Counter(outcome.action for outcome in outcomes)
    assert actions["rollback"] < 10, actions  # fewer than 5 % of 200
    assert actions["promote"] >= 190, actions
    promoted = [o.ticks for o in outcomes if o.action == "promote"]
    # Four steps of at least 30 minutes each: never faster than 12 ticks of 10 minutes.
    assert min(promoted) >= 12


def test_a_three_point_regression_is_rolled_back_at_the_first_step() -> None:
    rng = np.random.default_rng(7)
    outcomes = [
        simulate(_canary(), rng, stable_error=0.01, candidate_error=0.04) for _ in range(100)
    ]
    where = Counter((o.action, o.step) for o in outcomes)
    assert where[("rollback", 0)] >= 95, where
    assert where[("promote", 3)] == 0, where

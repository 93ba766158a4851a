"""The controller on real databases with simulated traffic and the fake clock.

Traffic is resolved by the SDK's own code from the state document the store serves
and written by ingest's own code, so every tick reads what it would in production.
"""

from __future__ import annotations

from typing import Any

import pytest

from tuneloop.clock import FakeClock
from tuneloop.rollouts import RolloutDefinition, preset, steps_for
from tuneloop.server.controller import Controller
from tuneloop.stats import AnalysisSettings, MetricSpec, check_guardrail
from tuneloop.store import Store

from .traffic import AGENT, MINUTE, PROJECT, Behaviour, Traffic, error_summary, push_versions

ERROR_GUARD = MetricSpec("error_rate", "ratio", role="guardrail", direction="decrease", margin=0.01)
SEQUENTIAL = AnalysisSettings(method="sequential", sequential_tuning=10_000)


def canary(**changes: Any) -> RolloutDefinition:
    steps = steps_for((5, 25, 50, 100), min_duration_ms=10 * MINUTE, min_units=100)
    return preset("canary", steps=steps, **changes)


def start(store: Store, clock: FakeClock, definition: RolloutDefinition | None = None) -> Any:
    _v1, v2 = push_versions(store)
    return store.rollout_ops.start(
        PROJECT,
        AGENT,
        version=v2.hash,
        definition=definition or canary(),
        author="k-test",
        now_ms=clock.now_ms(),
    )


def decisions(store: Store, rollout_id: str) -> list[tuple[str, int]]:
    return [
        (e.decision, e.step)
        for e in store.rollouts.timeline(PROJECT, rollout_id)
        if e.decision != "hold"
    ]


def test_a_regression_rolls_back_at_5_percent_within_one_evaluation(store: Store) -> None:
    """Error rate 1 % -> 4 %: rolled back at the first step as soon as it is significant."""
    clock = FakeClock()
    # The test is about the statistical guard: no hard limit near the candidate's 4 %,
    # and a first step long enough that a noisy early estimate cannot move it on.
    steps = steps_for((5, 25, 50, 100), min_duration_ms=60 * MINUTE, min_units=100)
    limits = [{"metric": "error_rate", "limit": 0.2}]
    rollout = start(store, clock, preset("canary", steps=steps, hard_limits=limits))
    stable, candidate = rollout.stable, rollout.candidate
    behaviours = {stable: Behaviour(error_rate=0.01), candidate: Behaviour(error_rate=0.04)}
    traffic = Traffic(store, clock, behaviours, seed=11)
    controller = Controller(store, clock=clock)
    significant_at = rolled_back_at = None
    for tick in range(60):
        traffic.send(2000, over_ms=2 * MINUTE)
        now = clock.now_ms()
        # The stats engine's own verdict on the runs sent so far, counted here.
        n_s, s = error_summary(traffic.log, stable, rollout.step_started_ms, now + 1)
        n_c, c = error_summary(traffic.log, candidate, rollout.step_started_ms, now + 1)
        verdict = check_guardrail(ERROR_GUARD, s, c, settings=SEQUENTIAL).verdict
        if significant_at is None and min(n_s, n_c) >= 20 and verdict == "breached":
            significant_at = tick
        report = controller.tick()
        assert report.acted and not report.errors
        if report.decisions[0]["action"] == "rollback":
            rolled_back_at = tick
            break
        assert report.decisions[0]["action"] == "hold"  # never past the 5 % step
    assert significant_at is not None and rolled_back_at is not None
    assert rolled_back_at - significant_at in (0, 1)
    done = store.rollouts.get(PROJECT, rollout.rollout_id)
    assert (done.status, done.step) == ("rolled_back", 0)
    assert done.reason is not None
    assert done.reason.startswith("guard breached at step 1 (5 %): error rate worse by +")
    last = store.rollouts.timeline(PROJECT, rollout.rollout_id)[-1]
    assert last.decision == "rollback" and last.actor == "controller"
    guard = next(g for g in last.figures["guards"] if g["metric"] == "error_rate")
    assert guard["verdict"] == "breached" and guard["lower_bound"] > 0.01
    # The controller's reads agree with the runs counted here.
    assert last.figures["candidate"]["units"] == n_c
    assert last.figures["candidate"]["values"]["error_rate"] == pytest.approx(
        c.numerator_sum / c.denominator_sum
    )
    # Traffic to the candidate goes to zero, and an alert was recorded.
    assert store.agent_state.list_allocations(PROJECT, AGENT) == []
    assert traffic.send(2000)[candidate] == 0
    events = store.alerts.events(PROJECT, agent=AGENT)
    assert [(e["source"], e["status"]) for e in events] == [("rollout", "firing")]
    assert events[0]["message"].startswith("rollout of 1.1.0 on 'support' rolled back: guard")


def test_a_healthy_candidate_is_promoted_through_every_step(store: Store) -> None:
    clock = FakeClock()
    rollout = start(store, clock)
    same = Behaviour(error_rate=0.01, success_rate=0.97)
    traffic = Traffic(store, clock, {rollout.stable: same, rollout.candidate: same}, seed=3)
    controller = Controller(store, clock=clock)
    for _ in range(80):
        traffic.send(1000, over_ms=2 * MINUTE)
        controller.tick()
        if not store.rollouts.get(PROJECT, rollout.rollout_id).active:
            break
    done = store.rollouts.get(PROJECT, rollout.rollout_id)
    assert done.status == "promoted", done.reason
    assert decisions(store, rollout.rollout_id) == [
        ("start", 0),
        ("advance", 1),
        ("advance", 2),
        ("advance", 3),
        ("promote", 3),
    ]
    production = store.configs.get_version(PROJECT, AGENT, "production")
    assert production.hash == rollout.candidate
    assert store.agent_state.list_allocations(PROJECT, AGENT) == []
    # Sticky: no unit that got the candidate was ever moved back to the stable version.
    assert not [u for u, seen in traffic.variants.items() if seen[:2] == ["candidate", "stable"]]
    grown = [u for u, seen in traffic.variants.items() if seen == ["stable", "candidate"]]
    assert grown  # the ramp moved stable units onto the candidate


def test_a_hard_limit_rolls_back_at_the_first_evaluation(store: Store) -> None:
    clock = FakeClock()
    rollout = start(store, clock)
    behaviours = {
        rollout.stable: Behaviour(error_rate=0.01),
        rollout.candidate: Behaviour(error_rate=0.5),
    }
    Traffic(store, clock, behaviours, seed=5).send(1000, over_ms=MINUTE)  # ~50 candidate runs
    report = Controller(store, clock=clock).tick()
    assert report.decisions[0]["action"] == "rollback"
    assert report.decisions[0]["reason"].startswith("hard limit: error rate ")
    assert "is above 5.00 % with 99 % confidence" in report.decisions[0]["reason"]


def test_a_restarted_controller_resumes_without_skipping_or_repeating(store: Store) -> None:
    clock = FakeClock()
    rollout = start(store, clock)
    same = Behaviour(error_rate=0.01, success_rate=0.97)
    traffic = Traffic(store, clock, {rollout.stable: same, rollout.candidate: same}, seed=8)
    first = Controller(store, clock=clock)
    while store.rollouts.get(PROJECT, rollout.rollout_id).step < 2:
        traffic.send(1000, over_ms=2 * MINUTE)
        first.tick()
    # A crash between recording step 3 and publishing its weights: the allocation still
    # carries step 2's. A new controller repairs it before anything else.
    record = store.rollouts.get(PROJECT, rollout.rollout_id)
    stale = store.rollout_ops.withdraw(record, now_ms=clock.now_ms())
    assert stale is None and store.agent_state.list_allocations(PROJECT, AGENT) == []
    second = Controller(store, clock=clock)
    report = second.tick()
    assert report.repaired == 1
    weights = [v.weight for v in store.agent_state.list_allocations(PROJECT, AGENT)[0].variants]
    assert weights == [0.5, 0.5]
    # A crash right after promotion moved production, before the row said so.
    for _ in range(60):
        if store.rollouts.get(PROJECT, rollout.rollout_id).step == 3:
            break
        traffic.send(1000, over_ms=2 * MINUTE)
        second.tick()
    store.configs.move_channel(
        PROJECT,
        AGENT,
        "production",
        rollout.candidate,
        expected=rollout.stable,
        author="crash",
        now_ms=clock.now_ms(),
    )
    for _ in range(20):
        traffic.send(1000, over_ms=2 * MINUTE)
        Controller(store, clock=clock).tick()
        if not store.rollouts.get(PROJECT, rollout.rollout_id).active:
            break
    assert store.rollouts.get(PROJECT, rollout.rollout_id).status == "promoted"
    assert decisions(store, rollout.rollout_id) == [
        ("start", 0),
        ("advance", 1),
        ("advance", 2),
        ("advance", 3),
        ("promote", 3),
    ]


def test_one_controller_acts_at_a_time(store: Store) -> None:
    clock = FakeClock()
    rollout = start(store, clock)
    a, b = Controller(store, clock=clock), Controller(store, clock=clock)
    with a.leadership(clock.now_ms()) as leading:
        assert leading
        assert b.tick().acted is False
    assert b.tick().acted is True
    # Two controllers ticking at once from threads: every tick that acted recorded one
    # evaluation, none was lost to a conflict, and the timeline has no gap.
    import threading

    barrier = threading.Barrier(2)
    reports: list[Any] = []

    def run(controller: Controller) -> None:
        for _ in range(8):
            barrier.wait()
            reports.append(controller.tick())

    threads = [threading.Thread(target=run, args=(c,)) for c in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    acted = [r for r in reports if r.acted]
    assert acted and all(d["applied"] for r in acted for d in r.decisions)
    timeline = store.rollouts.timeline(PROJECT, rollout.rollout_id)
    assert [e.seq for e in timeline] == list(range(1, len(timeline) + 1))
    assert sum(e.decision == "hold" for e in timeline) == len(acted) + 1


def test_a_stale_revision_changes_nothing(store: Store) -> None:
    clock = FakeClock()
    rollout = start(store, clock)
    paused = store.rollout_ops.pause(PROJECT, rollout.rollout_id, actor="k-ops", now_ms=1)
    assert paused.status == "paused" and paused.revision == rollout.revision + 1
    late = store.rollouts.record(
        rollout, decision="hold", reason="late", actor="controller", now_ms=2
    )
    assert late is None
    assert store.rollouts.get(PROJECT, rollout.rollout_id).status == "paused"

"""The rollout commands against a live server: a bad version rolled back, a good one
promoted, each with a readable timeline; people's actions; ``tuneloop rollback``.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tuneloop.cli.main import app

from .conftest import Served
from .traffic import AGENT, MINUTE, PROJECT, Behaviour, Traffic, push_versions

runner = CliRunner(env={"COLUMNS": "200"})


def run(served: Served, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--url", served.url, "--api-key", served.admin_key])
    return result.exit_code, " ".join(result.output.split())  # lines may wrap anywhere


def drive(served: Served, traffic: Traffic, rollout_id: str, ticks: int = 80) -> str:
    for _ in range(ticks):
        traffic.send(500, over_ms=2 * MINUTE)
        served.controller.tick()
        status = served.store.rollouts.get(PROJECT, rollout_id).status
        if status not in ("running", "paused"):
            return status
    return "running"


def test_a_bad_version_rolls_back_and_a_good_one_is_promoted(
    served: Served, tmp_path: Path
) -> None:
    v1, bad, good = push_versions(served.store, count=3)
    healthy = Behaviour(error_rate=0.01, success_rate=0.97)
    behaviours = {v1.hash: healthy, bad.hash: Behaviour(error_rate=0.08), good.hash: healthy}
    traffic = Traffic(served.store, served.clock, behaviours, seed=21)
    code, out = run(served, "rollout", "start", AGENT, "--version", "1.1.0", "--steps",
                    "5,25,50,100", "--step-duration", "30m", "--min-units", "50")  # fmt: skip
    assert code == 0, out
    assert "Rollout ro-" in out and "1.1.0" in out and "status running" in out
    first = served.store.rollouts.active_for(PROJECT, AGENT)
    assert first is not None
    assert drive(served, traffic, first.rollout_id) == "rolled_back"
    code, out = run(served, "rollout", "status", AGENT)
    assert code == 0, out
    assert "status rolled_back, step 1 of 4" in out
    assert "reason: guard breached at step 1 (5 %)" in out or "reason: hard limit" in out
    assert "rollback" in out and "controller" in out  # the timeline
    definition = tmp_path / "rollout.yaml"
    definition.write_text(
        "steps:\n"
        "  - {weight: 5, min_duration_ms: 6m, min_units: 50}\n"
        "  - {weight: 50, min_duration_ms: 6m, min_units: 50, prove: true}\n"
        "  - {weight: 100, min_duration_ms: 6m}\n"
        "guards:\n"
        "  - {metric: error_rate, margin: 0.02}\n"
        "  - {metric: task_success_rate, margin: 0.03}\n"
        "hard_limits:\n"
        "  - {metric: error_rate, limit: 0.05}\n"
    )
    code, out = run(served, "rollout", "start", AGENT, "--version", "1.2.0", "--definition",
                    str(definition), "--id", "release-1.2")  # fmt: skip
    assert code == 0, out
    assert "Rollout release-1.2" in out
    second = served.store.rollouts.active_for(PROJECT, AGENT)
    assert second is not None and second.rollout_id == "release-1.2"
    status = drive(served, traffic, second.rollout_id)
    assert status == "promoted", served.store.rollouts.get(PROJECT, second.rollout_id).reason
    code, out = run(served, "rollout", "status", AGENT)
    assert "status promoted" in out and "all 3 steps passed" in out
    for decision in ("start", "advance", "promote", "non_inferior"):
        assert decision in out
    code, out = run(served, "rollout", "list")
    assert code == 0 and "rolled_back" in out and "promoted" in out
    assert served.store.configs.get_version(PROJECT, AGENT, "production").label == "1.2.0"
    # One command back: no rollout is running, so production goes back to 1.0.0.
    code, out = run(served, "rollback", AGENT)
    assert code == 0, out
    assert "production of support moved back from 1.2.0 to 1.0.0" in out


def test_actions_and_their_errors(served: Served) -> None:
    push_versions(served.store)
    code, out = run(served, "rollout", "start", AGENT, "--version", "1.1.0", "--steps", "5,1,100")
    assert code == 1 and "step weights must increase" in out
    code, out = run(served, "rollout", "start", AGENT, "--version", "1.1.0")
    assert code == 0, out
    code, out = run(served, "rollout", "approve", AGENT)
    assert code == 1 and "step 2 (25 %) of rollout ro-" in out and "needs no approval" in out
    code, out = run(served, "rollout", "pause", AGENT, "--reason", "on call is out")
    assert code == 0 and "status paused" in out and "on call is out" in out
    code, out = run(served, "rollout", "resume", AGENT)
    assert code == 0 and "status running" in out
    code, out = run(served, "rollback", AGENT)
    assert code == 0, out
    assert "every unit is on 1.0.0 again" in out
    code, out = run(served, "rollout", "status", AGENT, "--all")
    assert "status rolled_back" in out and "rolled back by" in out
    code, out = run(served, "rollout", "pause", AGENT)
    assert code == 1 and "only a running or paused rollout can be paused" in out

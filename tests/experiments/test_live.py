"""End to end: an experiment fed by the SDK against a live server, decided from the CLI.

Simulated users on simulated time (the server and the client share a FakeClock): the
treatment succeeds more often and answers faster. The experiment is created, started
(its allocation reaches the SDK through the state document), fed, analysed, stopped and
concluded with a promotion, from the CLI and the API, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.conftest import LiveServer
from tests.experiments.helpers import push_versions
from tests.sdk.sdk_fakes import FAST_RETRY
from tuneloop.cli.main import app
from tuneloop.clock import FakeClock
from tuneloop.sdk import Client

runner = CliRunner(env={"COLUMNS": "200"})
USERS = 300
SUCCESS = {"control": 0.55, "treatment": 0.80}
LATENCY_MS = {"control": 900.0, "treatment": 600.0}


def cli(server: LiveServer, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--url", server.url, "--api-key", server.admin_key])
    return result.exit_code, result.output


def simulate(client: Client, clock: FakeClock, seed: int = 11) -> dict[str, int]:
    """Two runs per user over about two days; returns the runs each variant served."""
    rng = random.Random(seed)
    served = {"control": 0, "treatment": 0}
    for user in range(USERS):
        for _ in range(2):
            clock.advance(5 * 60_000)
            unit = f"user-{user}"
            config = client.config("support", unit_id=unit)
            assert config.variant is not None and config.key == "exp-live"
            served[config.variant] += 1
            try:
                with client.run("support", unit_id=unit, config=config) as run:
                    clock.advance(LATENCY_MS[config.variant] * rng.uniform(0.5, 1.5))
                    if rng.random() >= SUCCESS[config.variant]:
                        if rng.random() < 0.3:
                            raise TimeoutError("the model did not answer")
                        run.outcome("failure")
            except TimeoutError:
                pass
            if rng.random() < 0.3:
                client.feedback(run.trace_id, "thumbs", 1.0 if rng.random() < 0.7 else 0.0)
    assert client.flush(timeout_s=30)
    return served


@pytest.mark.slow
def test_experiment_fed_by_the_sdk_is_analysed_and_concluded(
    clocked_server: LiveServer, fake_clock: FakeClock, tmp_path: Path
) -> None:
    server = clocked_server
    _, v2 = push_versions(server.store)
    code, out = cli(
        server,
        "experiment",
        "create",
        "--agent",
        "support",
        "--treatment",
        "1.1.0",
        "--key",
        "exp-live",
        "--method",
        "sequential",
        "--guardrail",
        "error_rate:0.05",
        "--guardrail",
        "latency_p95:10%",
        "--metric",
        "feedback:thumbs",
        "--metric",
        "latency_mean",
    )
    assert code == 0, out
    assert "exp-live on support (draft)" in out and "latency_p95 (margin 10%)" in out
    code, out = cli(server, "experiment", "start", "exp-live")
    assert code == 0 and "support's user units split control 50% / treatment 50%" in out

    with Client(
        server.url,
        server.ingest_key,
        retry=FAST_RETRY,
        clock=fake_clock,
        agents=["support"],
        state_dir=tmp_path / "state",
    ) as client:
        assert client.wait_for_state(10.0, agent="support")
        served = simulate(client, fake_clock)
    assert min(served.values()) > 200

    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=60) as http:
        check_results_stop_and_conclude(server, http, v2.hash)


def check_results_stop_and_conclude(server: LiveServer, http: httpx.Client, v2: str) -> None:
    doc = http.get("/api/v1/experiments/exp-live/results").json()
    assert doc["status"] == "ok"
    assert sum(doc["units"].values()) == USERS and doc["excluded_units"] == 0
    assert doc["srm"]["flagged"] is False
    metrics = {m["name"]: m for m in doc["metrics"]}
    success = metrics["task_success"]
    values = {v["variant"]: v["value"] for v in success["values"]}
    assert 0.45 < values["control"] < 0.65 and 0.70 < values["treatment"] < 0.90
    (lift,) = success["comparisons"]
    assert lift["significant"] and lift["effect"] == "better"
    assert lift["always_valid_p_value"] < 0.05 and lift["sequential_absolute"]["lower"] > 0
    assert metrics["latency_p95"]["comparisons"][0]["guardrail"]["verdict"] == "non_inferior"
    latency = {v["variant"]: v["value"] for v in metrics["latency_mean"]["values"]}
    assert latency["treatment"] < latency["control"]
    thumbs = metrics["feedback:thumbs"]["values"]
    assert all(0.4 < v["value"] < 1.0 for v in thumbs)
    assert doc["recommendation"]["action"] == "ship", doc["recommendation"]
    assert doc["recommendation"]["variant"] == "treatment"
    looks = doc["timeseries"]["looks"]
    assert len(looks) >= 2 and sum(looks[-1]["units"]) == USERS
    assert sum(looks[0]["units"]) < USERS

    code, out = cli(server, "experiment", "status", "exp-live")
    assert code == 0, out
    assert "ship treatment: task_success" in out and "sample ratio ok" in out
    assert re.search(r"task_success \(primary\)\s+│\s+control\s+│\s+\d+", out), out
    assert "non-inferior" in out

    code, out = cli(server, "experiment", "stop", "exp-live", "--reason", "significant")
    assert code == 0 and "stopped exp-live" in out
    state = http.get("/api/v1/agents/support/state").json()
    assert state["allocations"] == []
    code, out = cli(
        server,
        "experiment",
        "conclude",
        "exp-live",
        "--decision",
        "ship",
        "--promote",
        "--reason",
        "treatment wins",
    )
    assert code == 0, out
    assert f"concluded exp-live: ship treatment; production now 1.1.0 ({v2[:12]})" in out
    assert http.get("/api/v1/agents/support/config").json()["version"] == v2
    record = http.get("/api/v1/experiments/exp-live").json()
    assert (record["status"], record["decision"], record["winner"]) == (
        "concluded",
        "ship",
        "treatment",
    )
    audit = http.get("/api/v1/audit", params={"agent": "support"}).json()["items"]
    assert [a["action"] for a in audit][-3:] == ["allocation_set", "allocation_delete", "move"]
    code, out = cli(server, "experiment", "status")
    assert code == 0 and re.search(r"exp-live\s+│\s+support\s+│\s+concluded", out), out


def test_cli_bad_input_names_the_problem(live_server: LiveServer) -> None:
    push_versions(live_server.store)
    code, out = cli(
        live_server,
        "experiment",
        "create",
        "--agent",
        "support",
        "--treatment",
        "1.1.0",
        "--weights",
        "0.5,0.6",
    )
    assert code == 1 and "weights must sum to 1, got [0.5, 0.6]" in out
    code, out = cli(
        live_server,
        "experiment",
        "create",
        "--agent",
        "support",
        "--treatment",
        "1.1.0",
        "--guardrail",
        "error_rate",
    )
    assert code == 1 and "use METRIC:MARGIN" in out
    code, out = cli(live_server, "experiment", "status", "nope")
    assert code == 1 and "404" in out and "no experiment 'nope'" in out
    code, out = cli(
        live_server,
        "experiment",
        "create",
        "--agent",
        "support",
        "--treatment",
        "1.1.0",
        "--key",
        "exp-cli",
    )
    assert code == 0
    code, out = cli(live_server, "experiment", "status", "exp-cli")
    assert code == 0 and "draft: no results until it starts" in out


def test_plan_prints_units_and_days() -> None:
    result = runner.invoke(
        app, ["experiment", "plan", "--baseline", "0.85", "--mde", "0.02", "--traffic", "5000/day"]
    )
    assert result.exit_code == 0, result.output
    assert "14,482 units, about 3 days at 5000/day" in result.output
    assert "to detect 0.017 (2% of 0.85)" in result.output
    result = runner.invoke(
        app, ["experiment", "plan", "--baseline", "0.85", "--mde", "0.02", "--traffic", "lots"]
    )
    assert result.exit_code == 1 and "invalid --traffic 'lots'" in result.output

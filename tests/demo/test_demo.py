"""`tuneloop demo` end to end: the eight acts, each checked on what the platform's API said.

The demo runs once (about a minute and a half on a loaded 2-core machine) on a fresh
database in a temporary directory; every test reads its report or the database after.
"""

from __future__ import annotations

import contextlib
import io
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tuneloop.cli.main import app
from tuneloop.demo.run import DATABASE_FILE, DEMO_DIR, PROJECT, DemoReport, run_demo
from tuneloop.demo.support import AGENT
from tuneloop.store import Store

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Demo:
    report: DemoReport
    output: str
    database: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    directory = tmp_path_factory.mktemp("demo")
    out = io.StringIO()
    with contextlib.chdir(directory):
        report = run_demo(keep_serving=False, port=0, seed=7, console=Console(file=out, width=160))
    yield Demo(report, out.getvalue(), directory / DEMO_DIR / DATABASE_FILE)


def _row(document: dict[str, object], labels: dict[str, str], label: str) -> dict[str, object]:
    for row in document["groups"]:  # type: ignore[attr-defined]
        if labels.get(row["group"]["version"]) == label:
            return row  # type: ignore[no-any-return]
    raise AssertionError(f"no version {label} in {document}")


def test_act_1_the_health_of_the_first_version_is_read_from_the_metrics_api(demo: Demo) -> None:
    act = demo.report.baseline
    (row,) = act.health["groups"]
    assert demo.report.labels[row["group"]["version"]] == "1.0.0"
    # Every message is a run; an approved refund carries on as a run of its own.
    assert row["runs"] == act.served.runs + act.served.reviewed
    assert 0.5 < row["task_success_rate"] < 0.95
    tools = {r["group"]["tool"]: r for r in act.tools["groups"]}
    assert set(tools) == {"lookup_order", "search_policy", "account_help", "issue_refund"}
    assert tools["lookup_order"]["tool_errors_retryable"] > 0


def test_act_2_the_recommendations_name_the_four_faults_with_evidence(demo: Demo) -> None:
    items = demo.report.findings.items
    found = {(item["type"], item["target"]) for item in items}
    assert ("retry_policy", "lookup_order") in found
    assert ("timeout_adjustment", "search_policy") in found
    assert ("prompt_optimization", "router") in found
    routing = [item for item in items if item["type"] == "model_routing"]
    assert routing and "order_status" in routing[0]["target"]
    assert all(item["evidence"]["example_trace_ids"] for item in items)


def test_act_3_the_accepted_recommendations_make_one_candidate(demo: Demo) -> None:
    act = demo.report.candidate
    assert len(act.accepted) == len(demo.report.findings.items)
    paths = {change["path"] for change in act.diff["changes"]}
    assert {
        "/tools/lookup_order/retry/max_attempts",
        "/tools/search_policy/timeout_ms",
        "/params/temperature",
        "/routing/rules/0",
    } <= paths
    # Each accept builds on the previous version: one chain ending in the candidate.
    bases = [answer["base"]["version"] for answer in act.accepted[1:]]
    made = [answer["version"]["version"] for answer in act.accepted[:-1]]
    assert bases == made


def test_act_4_the_gate_passes_the_candidate_and_fails_the_harmful_variant(demo: Demo) -> None:
    gates = demo.report.gates
    assert gates.candidate.gate_status == "passed"
    assert gates.candidate.version["version"] == demo.report.candidate.version["version"]
    assert gates.harmful.gate_status == "failed"
    assert gates.harmful.failed_categories == ["safety"]
    assert "failed its eval gate" in gates.refused


def test_act_5_the_sequential_experiment_ships_before_its_planned_size(demo: Demo) -> None:
    act = demo.report.experiment
    assert act.action == "ship"
    assert act.concluded["decision"] == "ship" and act.concluded["winner"] == "treatment"
    assert act.results["total_units"] < act.plan.total_units
    primary = next(m for m in act.results["metrics"] if m["role"] == "primary")
    (comparison,) = primary["comparisons"]
    assert comparison["significant"] and comparison["effect"] == "better"
    assert comparison["sequential_absolute"]["lower"] > 0


def test_act_6_the_canary_rollout_walks_its_steps_and_promotes(demo: Demo) -> None:
    document = demo.report.rollout.document
    assert document["status"] == "promoted"
    assert document["candidate"] == demo.report.candidate.version["version"]
    moves = [(e["decision"], e["actor"]) for e in document["timeline"] if e["decision"] != "hold"]
    assert moves[0][0] == "start"
    assert moves[1:] == [("advance", "controller")] * 3 + [("promote", "controller")]


def test_act_7_the_bad_bundle_passes_offline_and_is_rolled_back_by_the_controller(
    demo: Demo,
) -> None:
    act = demo.report.bad
    assert act.gate.gate_status == "passed"
    assert act.rollout.status == "rolled_back"
    rollback = next(e for e in act.rollout.document["timeline"] if e["decision"] == "rollback")
    assert rollback["actor"] == "controller"
    assert "tool error rate" in rollback["reason"]
    store = Store.open(f"sqlite:///{demo.database}")
    try:
        channels = {c.channel: c.version for c in store.configs.list_channels(PROJECT, AGENT)}
    finally:
        store.close()
    assert channels["production"] == demo.report.candidate.version["version"]


def test_act_8_before_and_after_from_the_metrics_api(demo: Demo) -> None:
    report = demo.report
    before = _row(report.final, report.labels, "1.0.0")
    after = _row(report.final, report.labels, report.candidate.version["label"])
    assert after["task_success_rate"] > before["task_success_rate"]  # type: ignore[operator]
    assert after["mean_cost_usd"] < before["mean_cost_usd"]  # type: ignore[operator]
    assert after["tool_error_rate"] < before["tool_error_rate"]  # type: ignore[operator]


def test_the_narration_prints_every_act_and_the_dashboard(demo: Demo) -> None:
    for number in range(1, 9):
        assert f"\n{number}. " in demo.output
    assert f"{demo.report.url}/ui/" in demo.output
    assert "Server stopped." in demo.output


def test_the_demo_command_reports_a_taken_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["demo", "--no-serve", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output

"""``tuneloop eval``: the example suite gates CI, with exit codes, reports and baselines."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
from typer.testing import CliRunner

from tests.conftest import LiveServer
from tuneloop.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "evals"
SUITE = str(EXAMPLES / "support.yaml")
runner = CliRunner(env={"COLUMNS": "200"})


def test_the_example_passes_every_stage_with_its_own_config(tmp_path: Path) -> None:
    out, junit, markdown = tmp_path / "run.json", tmp_path / "junit.xml", tmp_path / "pr.md"
    result = runner.invoke(
        app,
        ["eval", "run", SUITE, "--stage", "production", "--repeat", "2", "--no-progress",
         "--out", str(out), "--junit", str(junit), "--markdown", str(markdown)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "gate passed" in result.stdout
    run = json.loads(out.read_text())
    assert run["stage"] == "production" and run["repeat"] == 2 and run["gate"]["passed"]
    assert run["categories"]["adversarial"]["pass_rate"] == 1.0
    assert run["overall"]["cases"] == 19 and run["environment"]["python"]
    assert run["version"].startswith("sha256:") and len(run["config_hash"]) == 64
    assert ET.parse(junit).getroot().get("failures") == "0"
    assert markdown.read_text().startswith("## ✅ gate passed")
    for stage in ("pre-merge", "post-merge"):
        quick = runner.invoke(app, ["eval", "run", SUITE, "--stage", stage, "--no-progress"])
        assert quick.exit_code == 0, quick.output


def test_the_broken_config_fails_the_orders_gate_and_regresses_against_a_baseline(
    tmp_path: Path,
) -> None:
    baseline = tmp_path / "baseline.json"
    good = runner.invoke(
        app, ["eval", "run", SUITE, "--repeat", "3", "--no-progress", "--out", str(baseline)]
    )
    assert good.exit_code == 0, good.output
    markdown = tmp_path / "pr.md"
    broken = runner.invoke(
        app,
        ["eval", "run", SUITE, "--config", str(EXAMPLES / "config_broken.yaml"),
         "--version", "candidate-7", "--repeat", "3", "--no-progress",
         "--baseline", str(baseline), "--markdown", str(markdown),
         "--out", str(tmp_path / "b.json")],
    )  # fmt: skip
    assert broken.exit_code == 1, broken.output
    assert "gate: orders pass^1 0.17 < 0.9" in broken.stdout
    assert "gate failed" in broken.stdout
    assert "FAIL order-status-shipped (orders, 0/3)" in broken.stdout
    summary = markdown.read_text()
    assert "version `candidate-7`" in summary
    assert "cases regressed: order-status-shipped (3/3 → 0/3, p=0.050)" in summary
    assert "| faq | 4 | 100.0 % |" in summary  # the other categories still pass

    diff = runner.invoke(app, ["eval", "diff", str(baseline), str(tmp_path / "b.json")])
    assert diff.exit_code == 0, diff.output
    assert "order-status-shipped" in diff.stdout and "regressed" in diff.stdout
    assert "regressed: 6" in diff.stdout


def test_invalid_input_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["eval", "run", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "cannot read suite" in missing.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "support.yaml").read_text().replace("{name: regex}", "{name: regexp}")
    )
    (tmp_path / "cases.jsonl").write_text((EXAMPLES / "cases.jsonl").read_text())
    unknown = runner.invoke(
        app, ["eval", "run", str(bad), "--config", str(EXAMPLES / "config.yaml")]
    )
    assert unknown.exit_code == 2
    assert "unknown evaluator 'regexp'" in unknown.output and str(bad) in unknown.output
    stage = runner.invoke(app, ["eval", "run", SUITE, "--stage", "nightly"])
    assert stage.exit_code == 2 and "unknown stage 'nightly'" in stage.output
    not_a_run = tmp_path / "x.json"
    not_a_run.write_text("{}")
    baseline = runner.invoke(app, ["eval", "run", SUITE, "--baseline", str(not_a_run)])
    assert baseline.exit_code == 2 and "not a tuneloop eval run" in baseline.output
    config = tmp_path / "config.yaml"
    config.write_text(
        "model: {provider: openai, name: x}\ntools: {lookup_order: {timeout_ms: -1}}\n"
    )
    bad_config = runner.invoke(app, ["eval", "run", SUITE, "--config", str(config)])
    assert bad_config.exit_code == 2 and "tools.lookup_order.timeout_ms" in bad_config.output


def test_the_ci_example_calls_the_command_with_options_it_has() -> None:
    import re

    import yaml

    workflow = yaml.safe_load((EXAMPLES.parent / "ci" / "eval-gate.yml").read_text())
    steps = workflow["jobs"]["eval"]["steps"]
    script = next(step["run"] for step in steps if "tuneloop eval run" in step.get("run", ""))
    used = set(re.findall(r"(--[a-z-]+)", script.split("tuneloop eval run", 1)[1]))
    help_text = runner.invoke(app, ["eval", "run", "--help"], env={"COLUMNS": "300"}).stdout
    assert used and all(option in help_text for option in used), used
    assert (Path(__file__).resolve().parents[2] / workflow["env"]["SUITE"]).exists()


def test_trace_sends_every_trial_to_the_server(live_server: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = runner.invoke(
        app,
        ["eval", "run", SUITE, "--stage", "pre-merge", "--no-progress", "--trace",
         "--url", live_server.url, "--api-key", live_server.ingest_key, "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = json.loads(out.read_text())
    listed = httpx.get(
        f"{live_server.url}/api/v1/traces",
        params=[("attr", f"tuneloop.eval.run_id={run['run_id']}"), ("limit", "100")],
        headers=live_server.headers(),
    ).json()["items"]
    trial_traces = {t["trace_id"] for c in run["cases"] for t in c["trials"]}
    assert {item["trace_id"] for item in listed} == trial_traces
    assert {item["agent"] for item in listed} == {"support"}

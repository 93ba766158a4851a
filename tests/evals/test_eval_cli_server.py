"""``tuneloop eval run --version V --server URL`` and the stored-run commands, on a live server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import LiveServer
from tests.evals.stored_helpers import EXAMPLES, example_config, push_version
from tuneloop.cli.main import app
from tuneloop.errors import GateFailedError
from tuneloop.store.evals import require_passing_gate

SUITE = str(EXAMPLES / "support.yaml")
runner = CliRunner(env={"COLUMNS": "200"})


def server_args(live_server: LiveServer, key: str | None = None) -> list[str]:
    return ["--server", live_server.url, "--api-key", key or live_server.admin_key]


def test_a_stored_version_is_run_with_its_own_config_and_its_verdict_recorded(
    live_server: LiveServer, tmp_path: Path
) -> None:
    good = push_version(live_server.store, example_config(), label="1.0.0")
    broken = push_version(live_server.store, example_config("config_broken.yaml"), label="1.1.0")
    out = tmp_path / "good.json"
    passed = runner.invoke(
        app,
        [
            "eval",
            "run",
            SUITE,
            "--version",
            "1.0.0",
            "--no-progress",
            "--out",
            str(out),
            *server_args(live_server),
        ],
    )
    assert passed.exit_code == 0, passed.output
    assert f"running version 1.0.0 ({good.hash[:12]}) of 'support'" in passed.output
    assert f"stored for version 1.0.0 ({good.hash[:12]})" in passed.output
    assert "version gate: passed (post-merge passed)" in passed.output
    run = json.loads(out.read_text())
    assert (run["version"], run["config_hash"], run["agent"]) == ("1.0.0", good.hash, "support")

    failed = runner.invoke(
        app,
        ["eval", "run", SUITE, "--version", "1.1.0", "--no-progress", *server_args(live_server)],
    )
    assert failed.exit_code == 1, failed.output
    assert "gate: orders pass^1 0.17 < 0.9" in failed.output
    assert "version gate: failed (post-merge failed)" in failed.output

    gate = runner.invoke(app, ["eval", "gate", "support", "1.1.0", *server_args(live_server)])
    assert gate.exit_code == 1 and "gate failed" in gate.output
    assert "orders pass^1 0.17 < 0.9" in gate.output
    assert (
        runner.invoke(
            app, ["eval", "gate", "support", good.hash[:10], *server_args(live_server)]
        ).exit_code
        == 0
    )
    with pytest.raises(GateFailedError, match=r"version 1\.1\.0"):
        require_passing_gate(live_server.store, "acme", "support", broken.hash)

    listed = runner.invoke(app, ["eval", "list", "--agent", "support", *server_args(live_server)])
    assert listed.exit_code == 0, listed.output
    assert "1.1.0" in listed.output and "1.0.0" in listed.output
    assert listed.output.index("1.1.0") < listed.output.index("1.0.0")  # newest first


def test_upload_show_and_diff_stored_runs_by_id(live_server: LiveServer, tmp_path: Path) -> None:
    push_version(live_server.store, example_config(), label="1.0.0")
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    for config, out in (("config.yaml", good), ("config_broken.yaml", bad)):
        result = runner.invoke(
            app,
            [
                "eval",
                "run",
                SUITE,
                "--config",
                str(EXAMPLES / config),
                "--repeat",
                "3",
                "--no-progress",
                "--out",
                str(out),
            ],
        )
        assert result.exit_code in (0, 1), result.output
    uploaded = runner.invoke(app, ["eval", "upload", str(good), *server_args(live_server)])
    assert uploaded.exit_code == 0, uploaded.output
    assert "stored for version 1.0.0" in uploaded.output  # linked by its config hash
    unlinked = runner.invoke(app, ["eval", "upload", str(bad), *server_args(live_server)])
    assert "no stored version has its config" in unlinked.output
    again = runner.invoke(app, ["eval", "upload", str(good), *server_args(live_server)])
    assert "already stored" in again.output
    good_id, bad_id = (json.loads(p.read_text())["run_id"] for p in (good, bad))
    diff = runner.invoke(app, ["eval", "diff", good_id, bad_id, *server_args(live_server)])
    assert diff.exit_code == 0, diff.output
    assert "order-status-shipped" in diff.output and "regressed: 6" in diff.output
    shown = runner.invoke(app, ["eval", "show", bad_id, *server_args(live_server)])
    assert shown.exit_code == 0, shown.output
    assert (
        "FAIL order-status-shipped (orders, 0/3)" in shown.output and "gate failed" in shown.output
    )


def test_bad_arguments_exit_2_and_an_unstored_run_exits_3_with_its_reports(
    live_server: LiveServer, tmp_path: Path
) -> None:
    push_version(live_server.store, example_config(), label="1.0.0")
    both = runner.invoke(
        app,
        [
            "eval",
            "run",
            SUITE,
            "--version",
            "1.0.0",
            "--config",
            str(EXAMPLES / "config.yaml"),
            *server_args(live_server),
        ],
    )
    assert both.exit_code == 2 and "pass one" in both.output
    unknown = runner.invoke(
        app, ["eval", "run", SUITE, "--version", "2.0.0", *server_args(live_server)]
    )
    assert unknown.exit_code == 2 and "has no version '2.0.0'" in unknown.output
    out = tmp_path / "run.json"
    refused = runner.invoke(
        app,
        [
            "eval",
            "run",
            SUITE,
            "--stage",
            "pre-merge",
            "--no-progress",
            "--out",
            str(out),
            *server_args(live_server, live_server.ingest_key),
        ],
    )
    assert refused.exit_code == 3, refused.output
    assert "the run was not stored" in refused.output and "403" in refused.output
    assert json.loads(out.read_text())["gate"]["passed"] is True
    missing = runner.invoke(
        app, ["eval", "upload", str(tmp_path / "nope.json"), *server_args(live_server)]
    )
    assert missing.exit_code == 2 and "cannot read eval run" in missing.output
    never = runner.invoke(app, ["eval", "gate", "support", "1.0.0", *server_args(live_server)])
    assert never.exit_code == 3 and "gate unknown" in never.output

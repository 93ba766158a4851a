"""The tuneloop command line, against real databases and a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.conftest import LiveServer, free_port
from tests.otlp_factory import agent_run, post_traces, request
from tuneloop.cli.main import app

# A terminal of a realistic width, so Rich does not elide the table cells.
runner = CliRunner(env={"COLUMNS": "160"})
KEY = re.compile(r"tlk_[a-z0-9]{12}_[A-Za-z0-9_-]{43}")


def test_keys_create_list_revoke_on_a_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    created = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--project",
            "shop",
            "--scope",
            "ingest",
            "--plain",
            "--database-url",
            url,
        ],
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert KEY.fullmatch(secret)
    key_id = secret.split("_")[1]

    listed = runner.invoke(app, ["keys", "list", "--database-url", url])
    assert listed.exit_code == 0
    assert key_id in listed.stdout and "shop" in listed.stdout and "ingest" in listed.stdout
    # The secret part (after "tl_<key id>_") may itself hold "_": never shown.
    assert secret.split("_", 2)[2] not in listed.stdout

    revoked = runner.invoke(app, ["keys", "revoke", key_id, "--database-url", url])
    assert revoked.exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", key_id, "--database-url", url])
    assert again.exit_code == 1
    assert f"no active key {key_id!r}" in again.output


def test_keys_create_refuses_an_unknown_scope_and_a_bad_project_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    bad_scope = runner.invoke(
        app, ["keys", "create", "--project", "shop", "--scope", "root", "--database-url", url]
    )
    assert bad_scope.exit_code == 1
    assert "unknown key scope 'root'" in bad_scope.output
    bad_project = runner.invoke(
        app,
        ["keys", "create", "--project", "Shop Floor!", "--scope", "admin", "--database-url", url],
    )
    assert bad_project.exit_code == 1
    assert "invalid project id" in bad_project.output


def test_metrics_and_traces_commands_show_the_server_figures(live_server: LiveServer) -> None:
    runs = [
        agent_run(
            "support", version="v1", outcome="success", llm=[("gpt-4o", 100, 10)], tools=["lookup"]
        ),
        agent_run("support", version="v1", outcome="escalated", tools=[("lookup", "503")]),
        agent_run("support", version="v2", outcome="success"),
    ]
    spans = [span for run in runs for span in run.spans]
    assert post_traces(live_server.url, live_server.ingest_key, request(*spans)).status_code == 200
    common = ["--url", live_server.url, "--api-key", live_server.admin_key]

    by_version = runner.invoke(app, ["metrics", "--agent", "support", "-g", "version", *common])
    assert by_version.exit_code == 0, by_version.output
    quality, cost = by_version.stdout.split("cost and tools")
    cells = {
        line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
        for line in quality.splitlines()
        if "│ v" in line
    }
    # columns: runs, success, errors, escalated, p50, ...
    assert cells["v1"][:4] == ["2", "50.0%", "0.0%", "50.0%"]
    assert cells["v2"][:4] == ["1", "100.0%", "0.0%", "0.0%"]
    assert "$" in cost

    by_tool = runner.invoke(app, ["metrics", "--agent", "support", "-g", "tool", *common])
    assert by_tool.exit_code == 0
    assert "lookup" in by_tool.stdout and "50.0%" in by_tool.stdout

    listed = runner.invoke(app, ["traces", "--agent", "support", "--outcome", "escalated", *common])
    assert listed.exit_code == 0
    assert runs[1].hex in listed.stdout and runs[0].hex not in listed.stdout

    tree = runner.invoke(app, ["traces", "--id", runs[0].hex, *common])
    assert tree.exit_code == 0
    assert "execute_tool lookup" in tree.stdout and "chat gpt-4o" in tree.stdout


def test_read_commands_explain_a_wrong_key_and_a_missing_key(live_server: LiveServer) -> None:
    wrong = runner.invoke(
        app, ["metrics", "--url", live_server.url, "--api-key", live_server.ingest_key]
    )
    assert wrong.exit_code == 1
    assert "403" in wrong.output and "scope 'admin'" in wrong.output
    missing = runner.invoke(
        app, ["metrics", "--url", live_server.url], env={"TUNELOOP_API_KEY": ""}
    )
    assert missing.exit_code == 1
    assert "no API key" in missing.output


def test_read_commands_explain_an_unreachable_server() -> None:
    port = free_port()
    result = runner.invoke(
        app, ["traces", "--url", f"http://127.0.0.1:{port}", "--api-key", "tlk_x"]
    )
    assert result.exit_code == 1
    assert "cannot reach the tuneloop server" in result.output


def _serve(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "TUNELOOP_HOME": str(tmp_path),
        "TUNELOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "TUNELOOP_INGEST_WORKERS": "1",
    }
    command = [sys.executable, "-m", "tuneloop.cli.main", "serve", "--port", str(port)]
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


def _stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    _, stderr = process.communicate(timeout=30)
    return stderr


@pytest.mark.slow
def test_serve_creates_the_default_project_once_and_its_keys_work(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = _serve(tmp_path, port)
    try:
        _wait_ready(url)
    finally:
        first_log = _stop(first)
    keys = dict(re.findall(r"^\s+(ingest|admin)\s+(tlk_\S+)$", first_log, re.MULTILINE))
    assert set(keys) == {"ingest", "admin"}, first_log

    second = _serve(tmp_path, port)
    try:
        _wait_ready(url)
        run = agent_run("support")
        assert post_traces(url, keys["ingest"], request(*run.spans)).status_code == 200
        usage = httpx.get(
            f"{url}/api/v1/usage", headers={"Authorization": f"Bearer {keys['admin']}"}
        )
        assert usage.json()["runs"] == 1
    finally:
        second_log = _stop(second)
    assert "shown once" not in second_log and not KEY.search(second_log)

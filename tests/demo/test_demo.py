"""`tuneloop demo` end to end: real server, SDK traffic, metrics read back from the API."""

from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tuneloop.cli.main import app
from tuneloop.demo.run import DATABASE_FILE, DEMO_DIR, PROJECT, run_demo
from tuneloop.demo.script import ToolStep
from tuneloop.demo.world import scripted_runs
from tuneloop.store import Store

pytestmark = pytest.mark.slow


def _row(output: str, label: str) -> list[str]:
    """The cells of the table row whose first cell is ``label``."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no table row {label!r} in:\n{output}")


def test_demo_sends_the_worlds_runs_and_prints_what_the_platform_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    database = tmp_path / DEMO_DIR / DATABASE_FILE
    database.parent.mkdir(parents=True)
    database.write_bytes(b"a previous demo's database, to be replaced")
    out = io.StringIO()

    run_demo(runs=60, keep_serving=False, port=0, seed=3, console=Console(file=out, width=200))

    output = out.getvalue()
    # What the world did, computed without I/O: the platform must report the same.
    script = list(scripted_runs(seed=3, count=60))
    outcomes = Counter(r.outcome for r in script)
    tools = Counter(s.tool for r in script for s in r.steps if isinstance(s, ToolStep))
    failed = Counter(
        s.tool for r in script for s in r.steps if isinstance(s, ToolStep) and s.failed
    )
    version_row = _row(output, "v1")
    assert version_row[1] == "60"
    assert version_row[2] == f"{outcomes['success'] / 60 * 100:.1f}%"
    assert version_row[4] == f"{outcomes['escalated'] / 60 * 100:.1f}%"
    assert "lookup_order" in tools
    for tool, calls in tools.items():
        row = _row(output, tool)
        assert row[1] == str(calls)
        assert row[2] == f"{failed[tool] / calls * 100:.1f}%"
    assert "The platform stored 60 runs, " in output
    assert f"{sum(tools.values())} tool calls" in output
    assert re.search(r"SDK delivered [\d,]+ spans \(0 dropped, 0 failed\)", output)
    assert f"tuneloop serve --database-url sqlite:///{DEMO_DIR / DATABASE_FILE}" in output
    keys = re.search(r"tuneloop metrics --url http://127\.0\.0\.1:\d+ --api-key (tlk_\S+)", output)
    assert keys is not None
    assert "Server stopped." in output

    store = Store.open(f"sqlite:///{database}")
    try:
        usage = store.queries.usage(PROJECT)
        principal = store.keys.authenticate(keys.group(1))
    finally:
        store.close()
    assert usage["runs"] == 60
    assert usage["tool_calls"] == sum(tools.values())
    assert (principal.project_id, principal.scope) == (PROJECT, "admin")


def test_demo_command_runs_without_serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(
        app, ["demo", "--runs", "30", "--no-serve", "--seed", "5"], env={"COLUMNS": "200"}
    )

    assert result.exit_code == 0, result.output
    assert "The platform stored 30 runs" in result.output
    assert _row(result.output, "v1")[1] == "30"
    assert (tmp_path / DEMO_DIR / DATABASE_FILE).exists()


def test_demo_refuses_zero_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(app, ["demo", "--runs", "0"])

    assert result.exit_code == 1
    assert "--runs must be at least 1" in result.output
    assert not (tmp_path / DEMO_DIR).exists()

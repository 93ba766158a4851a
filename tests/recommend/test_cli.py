"""``tuneloop recommend`` against a live server: findings printed, accepted, dismissed."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from tests.conftest import LiveServer, start_server
from tests.recommend.traffic import AGENT, PROJECT, send_demo_traffic
from tuneloop.cli.main import app
from tuneloop.server import create_app
from tuneloop.settings import load_settings
from tuneloop.store import Store

pytestmark = pytest.mark.slow
runner = CliRunner(env={"COLUMNS": "220"})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live SQLite server holding 1,200 faulty runs of the last 12 hours."""
    tmp = tmp_path_factory.mktemp("cli")
    store = Store.open(f"sqlite:///{tmp / 'tuneloop.db'}")
    now = int(time.time() * 1000)
    store.keys.ensure_project(PROJECT, now_ms=now)
    admin = store.keys.create_key(PROJECT, "admin", now_ms=now)
    traffic = send_demo_traffic(
        store, runs=1200, seed=9, faulty=True, state_dir=str(tmp), start_ms=now - 12 * 3_600_000
    )
    store.configs.create_version(PROJECT, AGENT, traffic.config, author="test", now_ms=now)
    uvicorn, thread, url = start_server(create_app(load_settings(ingest_workers=0), store=store))
    yield LiveServer(url, PROJECT, "", admin.secret, store)
    uvicorn.should_exit = True  # type: ignore[attr-defined]
    thread.join(10)
    store.close()


def run(server: LiveServer, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--url", server.url, "--api-key", server.admin_key])
    return result.exit_code, result.output


def test_recommend_prints_accepts_and_dismisses(server: LiveServer) -> None:
    code, out = run(server, "recommend", "--agent", AGENT, "--window", "24h")
    assert code == 0, out
    assert "support (" in out and "1,200 runs analyzed" in out
    assert "4 open recommendation(s)" in out
    for text in ("retry_policy", "timeout_adjustment", "prompt_optimization", "model_routing"):
        assert text in out
    assert "needs the eval gate" in out  # the routing change was never observed
    assert "stored: opened 4" in out
    ids = re.findall(r"rec_[0-9a-f]{20}", out)
    assert len(set(ids)) == 4
    items = server.store.recommendations.list_for(PROJECT, AGENT)  # type: ignore[attr-defined]
    retry_id = next(i["id"] for i in items if i["kind"] == "retry")
    temperature_id = next(i["id"] for i in items if i["kind"] == "lower_temperature")

    code, out = run(server, "recommend", "accept", retry_id, "--agent", AGENT)
    assert code == 0, out
    assert re.search(
        rf"Accepted {retry_id}: bundle rec-[0-9a-f]{{20}} on 1\.0\.0 → candidate version 1\.1\.0",
        out,
    )
    code, out = run(server, "recommend", "accept", retry_id, "--agent", AGENT)
    assert code == 1 and "409" in out and "accepted, not open" in out

    code, out = run(
        server,
        "recommend",
        "dismiss",
        temperature_id,
        "--agent",
        AGENT,
        "--reason",
        "tuned by hand",
    )
    assert (code, out.strip()) == (0, f"Dismissed {temperature_id}.")

    code, out = run(server, "recommend", "--agent", AGENT, "--no-refresh")
    assert code == 0
    assert retry_id not in out and temperature_id not in out
    assert "timeout_adjustment" in out and "model_routing" in out


def test_recommend_needs_an_agent_and_says_when_there_is_nothing(server: LiveServer) -> None:
    code, out = run(server, "recommend")
    assert code == 2 and "--agent" in out
    code, out = run(server, "recommend", "--agent", "nobody")
    assert code == 0
    assert "No recommendations: nothing to change." in out
    assert "agent 'nobody' has no runs in the window: no traffic" in out
    code, out = run(server, "recommend", "--agent", AGENT, "--window", "soon")
    assert code == 1 and "invalid duration 'soon'" in out


def test_recommend_json(server: LiveServer) -> None:
    code, out = run(server, "recommend", "--agent", AGENT, "--json", "--no-refresh")
    assert code == 0
    document = json.loads(out)
    assert document["report"] is None and all(i["status"] == "open" for i in document["items"])

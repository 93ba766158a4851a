"""The recommendations API on a live server: traces in over OTLP, findings out, decisions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.recommend.traffic import AGENT, demo_config, send_demo_traffic

pytestmark = pytest.mark.slow
HOUR_MS = 3_600_000


def _push(server: LiveServer, *, faulty: bool) -> str:
    response = httpx.post(
        f"{server.url}/api/v1/agents/{AGENT}/versions",
        json={"config": demo_config(faulty=faulty).to_data()},
        headers=server.headers(),
    )
    assert response.status_code == 201, response.text
    version: str = response.json()["version"]
    return version


def _send(server: LiveServer, tmp_path: Path, *, runs: int, over_http: bool) -> str:
    """The demo's faulty traffic of the last 12 hours: over OTLP/HTTP, or (faster, for the
    larger volumes) straight through the server's ingest code into its store."""
    start = int(time.time() * 1000) - 12 * HOUR_MS
    traffic = send_demo_traffic(
        None if over_http else server.store,  # type: ignore[arg-type]
        runs=runs,
        seed=21,
        faulty=True,
        state_dir=str(tmp_path),
        server=(server.url, server.ingest_key) if over_http else None,
        start_ms=start,
        project=server.project,
    )
    return traffic.version


def _call(
    server: LiveServer, method: str, path: str, body: Any = None, key: str | None = None
) -> httpx.Response:
    return httpx.request(
        method,
        f"{server.url}/api/v1/agents/{AGENT}/recommendations{path}",
        json=body,
        headers=server.headers(key),
        timeout=120,
    )


def test_refresh_list_accept_dismiss(live_server: LiveServer, tmp_path: Path) -> None:
    version = _push(live_server, faulty=True)
    assert _send(live_server, tmp_path, runs=1200, over_http=False) == version

    refreshed = _call(live_server, "POST", "/refresh", {"window": "24h"})
    assert refreshed.status_code == 200, refreshed.text
    report = refreshed.json()
    assert (report["version"], report["runs"]) == (version, 1200)
    kinds = {f["kind"]: f for f in report["findings"]}
    assert set(kinds) == {"retry", "raise_timeout", "lower_temperature", "cheaper_tier"}
    assert report["saved"]["opened"] == 4
    assert "no optimizer model configured: prompt rewrites skipped" in report["notes"]

    listed = _call(live_server, "GET", "").json()["items"]
    assert {i["kind"] for i in listed} == set(kinds)
    by_kind = {i["kind"]: i for i in listed}
    retry = by_kind["retry"]
    assert retry["status"] == "open" and retry["id"].startswith("rec_")
    assert retry["expected_impact"]["unit"] == "ratio" and retry["evidence"]["example_trace_ids"]
    one = _call(live_server, "GET", f"/{retry['id']}").json()
    assert one["change"] == retry["change"]

    accepted = _call(live_server, "POST", f"/{retry['id']}/accept")
    assert accepted.status_code == 201, accepted.text
    candidate = accepted.json()["version"]["version"]
    assert accepted.json()["base"]["version"] == version
    config = httpx.get(
        f"{live_server.url}/api/v1/agents/{AGENT}/config",
        params={"version": candidate},
        headers=live_server.headers(),
    ).json()["config"]
    assert config["tools"]["lookup_order"]["retry"]["max_attempts"] == retry["change"][0]["value"]
    again = _call(live_server, "POST", f"/{retry['id']}/accept")
    assert again.status_code == 409 and "accepted, not open" in again.json()["error"]["message"]

    temperature = by_kind["lower_temperature"]
    assert _call(live_server, "POST", f"/{temperature['id']}/dismiss", {}).status_code == 422
    dismissed = _call(
        live_server, "POST", f"/{temperature['id']}/dismiss", {"reason": "router is tuned by hand"}
    )
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"

    second = _call(live_server, "POST", "/refresh", {"window": "24h", "version": version}).json()
    assert second["saved"] == {
        "opened": 0,
        "updated": 2,
        "reopened": 0,
        "suppressed": 2,
        "discarded": 0,
        "expired": 0,
    }
    assert {i["kind"] for i in _call(live_server, "GET", "").json()["items"]} == {
        "raise_timeout",
        "cheaper_tier",
    }
    statuses = {
        i["kind"]: i["status"] for i in _call(live_server, "GET", "?status=all").json()["items"]
    }
    assert statuses == {
        "retry": "accepted",
        "lower_temperature": "dismissed",
        "raise_timeout": "open",
        "cheaper_tier": "open",
    }


def test_bad_input_and_empty_agents(live_server: LiveServer) -> None:
    quiet = httpx.post(
        f"{live_server.url}/api/v1/agents/nobody/recommendations/refresh",
        json={},
        headers=live_server.headers(),
    )
    assert quiet.status_code == 200
    assert quiet.json()["findings"] == []
    assert quiet.json()["notes"] == ["agent 'nobody' has no runs in the window: no traffic"]
    assert _call(live_server, "POST", "/refresh", {"window": "ten days"}).status_code == 400
    assert _call(live_server, "POST", "/refresh", {"window": "365d"}).status_code == 400
    assert _call(live_server, "GET", "/rec_missing").status_code == 404
    assert _call(live_server, "POST", "/rec_missing/accept").status_code == 404
    assert _call(live_server, "GET", "?status=weird").status_code == 400
    assert _call(live_server, "GET", "", key=live_server.ingest_key).status_code == 403


def test_too_few_runs_are_reported_not_analyzed(live_server: LiveServer, tmp_path: Path) -> None:
    _push(live_server, faulty=True)
    _send(live_server, tmp_path, runs=40, over_http=True)
    report = _call(live_server, "POST", "/refresh", {"window": "24h"}).json()
    assert report["findings"] == [] and report["runs"] == 40
    assert report["notes"][0].startswith("too few runs: 40 in the window, 100 needed")

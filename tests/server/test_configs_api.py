"""The config API over real HTTP on both engines: versions, bundles, diffs, channels,
rollback, audit, flags and the agent state document with its ETag."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import LiveServer
from tuneloop.config.loading import load_bundle_file, load_config_file
from tuneloop.store.schema import (
    config_audit,
    config_channels,
    config_versions,
    feature_flags,
    state_allocations,
)

EXAMPLES = Path(__file__).parents[2] / "examples" / "support"
CONFIG = load_config_file(EXAMPLES / "agent.yaml").to_data()
BUNDLE = load_bundle_file(EXAMPLES / "bundle.yaml").to_data()
TABLES = (config_versions, config_channels, config_audit, feature_flags, state_allocations)


class Http:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.client = httpx.Client(base_url=f"{server.url}/api/v1", headers=server.headers())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def counts(self) -> dict[str, int]:
        with self.server.store.engine.connect() as conn:  # type: ignore[attr-defined]
            return {
                t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in TABLES
            }

    def push(self, config: dict[str, Any] = CONFIG, **extra: Any) -> httpx.Response:
        return self.client.post("/agents/support/versions", json={"config": config, **extra})


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[Http]:
    api = Http(live_server)
    yield api
    api.client.close()


def error(response: httpx.Response) -> str:
    message: str = response.json()["error"]["message"]
    return message


def test_push_bundle_diff_move_and_rollback(http: Http) -> None:
    first = http.push(message="initial")
    assert first.status_code == 201, first.text
    v1 = first.json()
    assert (v1["label"], v1["created"], v1["author"]) == (
        "1.0.0",
        True,
        http.server.admin_key[4:16],
    )
    again = http.push()
    assert again.status_code == 200 and again.json()["created"] is False

    applied = http.post("/agents/support/bundles", json={"bundle": BUNDLE})
    assert applied.status_code == 201, applied.text
    v2 = applied.json()
    assert v2["label"] == "1.1.0" and v2["parents"] == [v1["version"]]
    assert (v2["bundle_id"], v2["bundle_version"]) == ("agent-quality-loop-v1", "1.0.0")
    assert v2["config"]["tools"]["data_fetch"]["timeout_ms"] == 6000
    assert [c["path"] for c in v2["changes"]] == [
        "/params/temperature", "/prompts/router", "/tools/data_fetch/fallback",
        "/tools/data_fetch/timeout_ms",
    ]  # fmt: skip

    diff = http.get("/agents/support/diff", params={"from": "1.0.0", "to": v2["version"][:8]})
    assert diff.status_code == 200
    body = diff.json()
    assert body["changes"][0] == {
        "op": "replace", "path": "/params/temperature", "before": 0.7, "after": 0.3,
    }  # fmt: skip
    assert "+Answer with the intent only, in lower case.\n" in body["prompts"]["router"]
    assert len(body["patch"]) == 4

    channels = http.get("/agents/support/channels").json()["items"]
    assert [(c["channel"], c["label"]) for c in channels] == [("production", "1.0.0")]
    moved = http.put(
        "/agents/support/channels/production",
        json={"version": "1.1.0", "expected_version": v1["version"]},
    )
    assert moved.status_code == 200 and moved.json()["label"] == "1.1.0"
    stale = http.put(
        "/agents/support/channels/production",
        json={"version": "1.0.0", "expected_version": v1["version"]},
    )
    assert stale.status_code == 409
    assert "it moved since you read it" in error(stale)

    rolled = http.post(
        "/agents/support/channels/production/rollback", json={"expected_version": "1.1.0"}
    )
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["label"] == "1.0.0"
    config = http.get("/agents/support/config").json()
    assert config["label"] == "1.0.0" and config["config"] == CONFIG

    audit = http.get("/audit").json()["items"]
    assert [(row["action"], row["channel"]) for row in audit] == [
        ("create", None), ("move", "production"), ("create", None), ("move", "production"),
        ("rollback", "production"),
    ]  # fmt: skip
    assert audit[-1]["before"] == v2["version"] and audit[-1]["after"] == v1["version"]
    verified = http.get("/audit/verify").json()
    assert verified["ok"] and verified["rows"] == 5 and verified["project_id"] == "acme"


def test_a_dry_run_shows_the_diff_and_creates_nothing(http: Http) -> None:
    http.push()
    before = http.counts()
    dry = http.post("/agents/support/bundles", json={"bundle": BUNDLE, "dry_run": True})
    assert dry.status_code == 200 and dry.json()["dry_run"] is True
    assert len(dry.json()["changes"]) == 4
    assert http.counts() == before


def test_the_state_document_has_an_etag_and_answers_304(http: Http) -> None:
    ingest = {"Authorization": f"Bearer {http.server.ingest_key}"}
    empty = http.get("/agents/support/state", headers=ingest)
    assert empty.status_code == 200 and empty.json()["production"] is None
    v1 = http.push().json()
    state = http.get("/agents/support/state", headers=ingest)
    assert state.status_code == 200
    etag = state.headers["ETag"]
    document = state.json()
    assert etag == f'"{document["etag"]}"' and etag != empty.headers["ETag"]
    assert document["production"] == {"version": v1["version"], "label": "1.0.0", "config": CONFIG}
    unchanged = http.get("/agents/support/state", headers={**ingest, "If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.headers["ETag"] == etag
    assert unchanged.content == b""
    http.put("/agents/support/flags/new_ui", json={"percentage": 10})
    changed = http.get("/agents/support/state", headers={**ingest, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.json()["flags"] == [
        {"key": "new_ui", "enabled": True, "salt": "new_ui", "percentage": 10.0, "rules": []}
    ]


def test_other_projects_see_none_of_it(http: Http) -> None:
    v1 = http.push().json()
    ingest, admin = http.server.new_project("globex")
    other = {"Authorization": f"Bearer {admin}"}
    agent_key = {"Authorization": f"Bearer {ingest}"}
    assert http.get("/agents/support/state", headers=agent_key).json()["production"] is None
    missing = http.get(f"/agents/support/versions/{v1['version']}", headers=other)
    assert missing.status_code == 404
    assert http.get("/configs", headers=other).json() == {"agents": []}
    moved = http.put(
        "/agents/support/channels/production",
        headers=other,
        json={"version": v1["version"], "expected_version": None},
    )
    assert moved.status_code == 404 and "has no version" in error(moved)


def test_flags_crud(http: Http) -> None:
    rule = {"attribute": "plan", "op": "in", "values": ["pro", "team"], "value": True}
    created = http.put("/agents/support/flags/fast_path", json={"salt": "fp", "rules": [rule]})
    assert created.status_code == 201, created.text
    replaced = http.put("/agents/support/flags/fast_path", json={"salt": "fp", "percentage": 5})
    assert replaced.status_code == 200 and replaced.json()["rules"] == []
    assert http.get("/agents/support/flags/fast_path").json()["percentage"] == 5.0
    assert [f["key"] for f in http.get("/agents/support/flags").json()["items"]] == ["fast_path"]
    assert http.delete("/agents/support/flags/fast_path").status_code == 204
    gone = http.get("/agents/support/flags/fast_path")
    assert gone.status_code == 404 and "has no flag 'fast_path'" in error(gone)
    bad = http.put("/agents/support/flags/x", json={"percentage": 120})
    assert bad.status_code == 422
    ingest = {"Authorization": f"Bearer {http.server.ingest_key}"}
    refused = http.put("/agents/support/flags/y", json={}, headers=ingest)
    assert refused.status_code == 403


def test_bad_input_gets_a_clear_error_and_creates_nothing(http: Http) -> None:
    http.push()
    before = http.counts()
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", "/agents/support/versions",
         {"config": {**CONFIG, "tools": {"data_fetch": {"timout_ms": 5}}}}, 400,
         "tools.data_fetch.timout_ms: unknown key"),
        ("POST", "/agents/support/versions", {"config": CONFIG, "hash": "ab" * 32}, 400,
         "does not match the config's content"),
        ("POST", "/agents/support/versions", {"config": {**CONFIG, "extra": {"x": 1}},
         "label": "1.0.0"}, 409, "already has a version 1.0.0"),
        ("POST", "/agents/support/bundles", {"bundle": {**BUNDLE, "recommendations": [
            {"type": "caching", "target": "search", "change":
             {"op": "add", "path": "/tools/search/cache_ttl_s", "value": 60}}]}}, 400,
         "recommendation 0 (caching on 'search'): add /tools/search/cache_ttl_s: /tools has "
         "no key 'search'"),
        ("POST", "/agents/support/bundles", {"bundle": {**BUNDLE, "recommendations": [
            {"type": "retry_policy", "target": "data_fetch", "change":
             {"op": "replace", "path": "/tools/data_fetch/retry/max_attempts", "value": 0}}]}},
         400, "tools.data_fetch.retry.max_attempts: Input should be greater than or equal to 1"),
        ("POST", "/agents/support/bundles", {"bundle": {"bundle_id": "x"}}, 400,
         "version: Field required"),
        ("PUT", "/agents/support/channels/production", {"version": "1.0.0"}, 422,
         "expected_version: Field required"),
        ("PUT", "/agents/support/channels/Prod!", {"version": "1.0.0", "expected_version": None},
         400, "invalid channel name 'Prod!'"),
        ("PUT", "/agents/support/channels/production",
         {"version": "7.0.0", "expected_version": "1.0.0"}, 404,
         "agent 'support' has no version '7.0.0'"),
        ("POST", "/agents/bad%20name/versions", {"config": CONFIG}, 400, "invalid agent name"),
        ("POST", "/agents/support/channels/production/rollback", {"expected_version": "1.0.0"},
         404, "has no earlier version to roll back to"),
    ]  # fmt: skip
    for method, path, body, status, message in cases:
        response = http.request(method, path, json=body)
        assert response.status_code == status, (path, response.text)
        assert message in error(response), (message, error(response))
        assert http.counts() == before, path


def test_a_channel_cannot_move_to_another_agents_version(http: Http) -> None:
    http.push()
    billing = http.post("/agents/billing/versions", json={"config": {**CONFIG, "extra": {"b": 1}}})
    before = http.counts()
    moved = http.put(
        "/agents/support/channels/production",
        json={"version": billing.json()["version"], "expected_version": "1.0.0"},
    )
    assert moved.status_code == 400
    assert "belongs to agent 'billing', not 'support'" in error(moved)
    assert http.counts() == before


def test_listing_configs_versions_and_approvals(http: Http) -> None:
    v1 = http.push(message="initial").json()
    http.post("/agents/support/bundles", json={"bundle": BUNDLE})
    approved = http.post("/agents/support/versions/1.1.0/approve", json={"message": "LGTM"})
    assert approved.status_code == 201 and approved.json()["action"] == "approve"
    listed = http.get("/agents/support/versions").json()
    assert [v["label"] for v in listed["items"]] == ["1.1.0", "1.0.0"]
    assert listed["channels"] == {"production": v1["version"]}
    assert "config" not in listed["items"][0]
    agents = http.get("/configs").json()["agents"]
    assert [(a["agent"], a["versions"], a["channels"]) for a in agents] == [
        ("support", 2, {"production": "1.0.0"})
    ]
    page = http.get("/audit", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_after_seq"] == 2
    rest = http.get("/audit", params={"after_seq": 2}).json()
    assert [r["action"] for r in rest["items"]] == ["create", "approve"]
    assert rest["next_after_seq"] is None

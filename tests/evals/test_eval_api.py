"""The eval-run HTTP API on a live server: upload, list, show, diff, gate, bad input."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import LiveServer
from tests.evals.stored_helpers import example_config, make_run, push_version

# The first diff imports scipy on the server: seconds on a loaded machine.
TIMEOUT = 60.0


def post(server: LiveServer, body: Any, key: str | None = None) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/eval-runs", json=body, headers=server.headers(key), timeout=TIMEOUT
    )


def get(server: LiveServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{server.url}/api/v1{path}", params=params, headers=server.headers(), timeout=TIMEOUT
    )


def test_upload_list_show_and_gate(live_server: LiveServer) -> None:
    config = example_config()
    version = push_version(live_server.store, config, label="1.0.0")
    good = make_run({"a": [True, True], "b": [True, True]}, config=config, run_id="good")
    created = post(live_server, {"run": good.to_dict()})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["run_id"], body["created"], body["version_hash"], body["version_label"]) == (
        "good",
        True,
        version.hash,
        "1.0.0",
    )
    assert body["verdict"]["passed"] is True and body["gate"]["status"] == "passed"
    again = post(live_server, {"run": good.to_dict()})
    assert again.status_code == 200 and again.json()["created"] is False

    bad = make_run(
        {"a": [True, False], "b": [False, False]},
        config=config,
        run_id="bad",
        gate_passed=False,
        finished_ms=5_000,
    )
    assert post(live_server, {"run": bad.to_dict(), "version": "1.0.0"}).status_code == 201
    listed = get(live_server, "/eval-runs", agent="support", version="1.0.0").json()
    assert [item["run_id"] for item in listed["items"]] == ["bad", "good"]
    assert [item["passed"] for item in listed["items"]] == [False, True]
    assert get(live_server, "/eval-runs", passed="true").json()["items"][0]["run_id"] == "good"

    shown = get(live_server, "/eval-runs/bad").json()
    assert shown["run"]["cases"][0]["trials"][1]["passed"] is False
    assert shown["run"]["overall"]["pass_rate"] == 0.25 and shown["pass_rate"] == 0.25

    diff = get(live_server, "/eval-runs/good/diff/bad").json()
    # Two trials a side cannot show a regression beyond noise (the exact test's best p is 1/6).
    assert diff["counts"] == {"worse_within_noise": 2}
    assert diff["warnings"] == []

    gate = get(live_server, f"/agents/support/versions/{version.hash[:12]}/gate").json()
    assert gate["status"] == "failed" and gate["label"] == "1.0.0"
    assert gate["stages"]["post-merge"]["run_id"] == "bad"
    assert gate["stages"]["post-merge"]["failures"] == ["orders pass^1 0.25 < 0.9"]


def test_aggregates_are_recomputed_from_the_trials_not_trusted(live_server: LiveServer) -> None:
    run = make_run({"a": [False]}, run_id="lying", gate_passed=False).to_dict()
    run["overall"]["pass_rate"] = 1.0
    run["cases"][0]["status"] = "pass"
    assert post(live_server, {"run": run}).status_code == 201
    stored = get(live_server, "/eval-runs/lying").json()
    assert stored["pass_rate"] == 0.0 and stored["run"]["cases"][0]["status"] == "fail"


def test_bad_uploads_are_refused_with_the_field_path_and_change_nothing(
    live_server: LiveServer,
) -> None:
    config = example_config()
    push_version(live_server.store, config, label="1.0.0")
    run = make_run({"a": [True]}, config=config, run_id="r1").to_dict()
    broken = {**run, "cases": [{**run["cases"][0], "trials": [{"trial": 0, "passed": "maybe"}]}]}
    answer = post(live_server, {"run": broken})
    assert answer.status_code == 422
    assert (
        "body.run.cases.0.trials.0.passed: Input should be a valid boolean"
        in (answer.json()["error"]["message"])
    )
    assert post(live_server, {"run": {**run, "schema_version": 7}}).status_code == 422
    assert "body.run.run_id" in post(live_server, {"run": {**run, "run_id": "../x"}}).text
    twice = {**run, "cases": [run["cases"][0], run["cases"][0]]}
    assert "case id 'a' appears twice" in post(live_server, {"run": twice}).text
    unknown = post(live_server, {"run": run, "version": "7.7.7"})
    assert unknown.status_code == 404 and "no version '7.7.7'" in unknown.text
    mismatch = make_run({"a": [True]}, config=example_config("config_broken.yaml"))
    wrong = post(live_server, {"run": mismatch.to_dict(), "version": "1.0.0"})
    assert wrong.status_code == 400 and "ran config" in wrong.text
    no_agent = post(live_server, {"run": {**run, "agent": None}})
    assert no_agent.status_code == 400 and "names no agent" in no_agent.text
    ingest = post(live_server, {"run": run}, key=live_server.ingest_key)
    assert ingest.status_code == 403
    assert get(live_server, "/eval-runs").json()["items"] == []
    assert post(live_server, {"run": run}).status_code == 201
    changed = {**run, "stage": "production"}
    conflict = post(live_server, {"run": changed})
    assert conflict.status_code == 409 and "already stored with different content" in conflict.text


def test_reads_of_unknown_things_are_404_and_projects_are_separate(
    live_server: LiveServer,
) -> None:
    run = make_run({"a": [True]}, run_id="mine")
    assert post(live_server, {"run": run.to_dict()}).status_code == 201
    assert get(live_server, "/eval-runs/nope").status_code == 404
    assert get(live_server, "/eval-runs/mine/diff/nope").status_code == 404
    assert get(live_server, "/agents/support/versions/1.0.0/gate").status_code == 404
    assert get(live_server, "/eval-runs", version="1.0.0").status_code == 400
    _, other_admin = live_server.new_project("globex")
    theirs = httpx.get(
        f"{live_server.url}/api/v1/eval-runs/mine", headers=live_server.headers(other_admin)
    )
    assert theirs.status_code == 404


def test_a_diff_across_suites_is_allowed_with_a_warning(live_server: LiveServer) -> None:
    post(live_server, {"run": make_run({"a": [True]}, run_id="s1").to_dict()})
    other = make_run({"a": [False]}, run_id="s2", suite="billing", stage="pre-merge")
    post(live_server, {"run": other.to_dict()})
    diff = get(live_server, "/eval-runs/s1/diff/s2").json()
    assert diff["counts"] == {"regressed": 1}
    assert len(diff["warnings"]) == 2 and "different suites" in diff["warnings"][0]
    assert "different stages" in diff["warnings"][1]

"""The experiments API over a real server on both engines: lifecycle, refusals, empty results."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import LiveServer
from tests.experiments.helpers import push_versions


def strict_json(response: httpx.Response) -> Any:
    """The body, refusing NaN and infinity (which plain json.loads accepts)."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} on the wire")

    return json.loads(response.text, parse_constant=refuse)


def body(**overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "agent": "support",
        "key": "exp-api",
        "variants": [{"name": "control"}, {"name": "treatment", "version": "1.1.0"}],
        "guardrails": [{"metric": "error_rate", "margin": 0.02}],
        "metrics": ["latency_p95", "feedback:thumbs"],
    }
    out.update(overrides)
    return out


def test_lifecycle_over_http_with_refusals_and_an_empty_analysis(live_server: LiveServer) -> None:
    v1, v2 = push_versions(live_server.store)
    url, headers = live_server.url, live_server.headers()
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        bad = http.post(
            "/api/v1/experiments",
            json=body(
                variants=[
                    {"name": "control", "weight": 0.7},
                    {"name": "treatment", "version": "1.1.0", "weight": 0.4},
                ]
            ),
        )
        assert bad.status_code == 400
        assert "weights must sum to 1, got [0.7, 0.4]" in bad.json()["error"]["message"]
        unknown = http.post("/api/v1/experiments", json=body(primary_metric="nps"))
        assert unknown.status_code == 400 and "unknown metric 'nps'" in unknown.text
        assert http.get("/api/v1/experiments").json() == {"items": []}

        created = http.post("/api/v1/experiments", json=body())
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "draft"
        assert [v["version"] for v in created.json()["variants"]] == [v1.hash, v2.hash]
        assert http.get("/api/v1/experiments/exp-api/results").status_code == 409

        started = http.post("/api/v1/experiments/exp-api/start")
        assert started.status_code == 200 and started.json()["status"] == "running"
        state = http.get(
            "/api/v1/agents/support/state",
            headers={"Authorization": f"Bearer {live_server.ingest_key}"},
        )
        (allocation,) = state.json()["allocations"]
        assert (allocation["key"], [v["name"] for v in allocation["variants"]]) == (
            "exp-api",
            ["control", "treatment"],
        )

        assert http.post("/api/v1/experiments", json=body(key="exp-two")).status_code == 201
        bare_stop = http.post("/api/v1/experiments/exp-two/stop")
        assert bare_stop.status_code == 409 and "it is draft, not running" in bare_stop.text
        refused = http.post("/api/v1/experiments/exp-two/start")
        assert refused.status_code == 409
        assert "experiment 'exp-api' is already running" in refused.json()["error"]["message"]

        results = http.get("/api/v1/experiments/exp-api/results", params={"interval": "hour"})
        assert results.status_code == 200
        doc = strict_json(results)
        assert doc["status"] == "not_enough_data"
        assert doc["message"].startswith("not enough data: no units in variant 'control'")
        assert doc["units"] == {"control": 0, "treatment": 0}
        assert doc["recommendation"]["action"] == "keep_running"
        assert [m["name"] for m in doc["metrics"]] == [
            "task_success",
            "error_rate",
            "latency_p95",
            "feedback:thumbs",
        ]
        assert all(m["status"] == "not_enough_data" for m in doc["metrics"])
        assert doc["timeseries"]["looks"][-1]["units"] == [0, 0]

        early = http.post("/api/v1/experiments/exp-api/conclude", json={"decision": "ship"})
        assert early.status_code == 409 and "stop it first" in early.text
        assert (
            http.post("/api/v1/experiments/exp-api/stop", json={"reason": "done"}).json()["status"]
            == "stopped"
        )
        concluded = http.post(
            "/api/v1/experiments/exp-api/conclude",
            json={"decision": "inconclusive", "reason": "no traffic"},
        )
        assert concluded.status_code == 200
        doc = concluded.json()
        assert (doc["status"], doc["decision"], doc["decision_reason"]) == (
            "concluded",
            "inconclusive",
            "no traffic",
        )
        assert [e["action"] for e in doc["events"]] == ["create", "start", "stop", "conclude"]
        listed = http.get("/api/v1/experiments", params={"status": "draft"}).json()["items"]
        assert [item["id"] for item in listed] == ["exp-two"]
        ingest_only = http.get(
            "/api/v1/experiments", headers={"Authorization": f"Bearer {live_server.ingest_key}"}
        )
        assert ingest_only.status_code == 403
        assert http.get("/api/v1/experiments/missing").status_code == 404

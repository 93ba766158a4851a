"""Rollouts over HTTP: start, bad input refused with the reason, people's actions, rollback."""

from __future__ import annotations

from typing import Any

from tests.evals.stored_helpers import make_run
from tuneloop.config.allocations import AllocationSpec, VariantSpec

from .conftest import Served
from .traffic import AGENT, MINUTE, PROJECT, Behaviour, Traffic, config, push_versions

STEPS = {"steps": [5, 25, 50, 100], "step_duration": "10m", "min_units": 50}


def start(served: Served, **body: Any) -> Any:
    with served.client() as client:
        return client.post(f"/api/v1/agents/{AGENT}/rollouts", json={"version": "1.1.0", **body})


def test_start_publishes_the_first_step_and_reports_the_timeline(served: Served) -> None:
    push_versions(served.store)
    response = start(served, **STEPS, approve_before=[50])
    assert response.status_code == 201, response.text
    rollout = response.json()
    assert (rollout["status"], rollout["step"], rollout["weight"]) == ("running", 0, 5)
    assert (rollout["candidate_label"], rollout["stable_label"]) == ("1.1.0", "1.0.0")
    assert [s["approval"] for s in rollout["definition"]["steps"]] == [False, False, True, False]
    assert rollout["timeline"][0]["decision"] == "start"
    assert rollout["timeline"][0]["reason"] == (
        "rollout of 1.1.0 started against 1.0.0: 5 % of units on the candidate"
    )
    with served.client(served.ingest_key) as client:
        state = client.get(f"/api/v1/agents/{AGENT}/state").json()
    [allocation] = state["allocations"]
    assert allocation["kind"] == "rollout" and allocation["key"] == rollout["rollout_id"]
    assert [(v["name"], v["weight"], v["version"]["label"]) for v in allocation["variants"]] == [
        ("candidate", 0.05, "1.1.0"),
        ("stable", 0.95, "1.0.0"),
    ]


def test_bad_input_is_refused_with_the_reason_and_changes_nothing(served: Served) -> None:
    store = served.store
    push_versions(store)

    def refused(status: int, text: str, **body: Any) -> None:
        response = start(served, **body)
        assert response.status_code == status, response.text
        assert text in response.json()["error"]["message"]

    refused(400, "step weights must increase", steps=[25, 5, 100])
    refused(400, "less than or equal to 100", steps=[5, 50, 150])
    refused(400, "the last step must be 100", steps=[5, 50])
    refused(400, "version 1.0.0 is already production", version="1.0.0")
    refused(404, "has no version '9.9.9'", version="9.9.9")
    assert store.rollouts.find(PROJECT) == []
    # An experiment running on the agent (its allocation is in the state document).
    v1 = store.configs.get_version(PROJECT, AGENT, "1.0.0")
    experiment = AllocationSpec(
        kind="experiment",
        key="exp-7",
        salt="exp-7",
        variants=[VariantSpec(name="control", weight=1.0, version=v1.hash)],
    )
    store.agent_state.put_allocation(PROJECT, AGENT, experiment, author="k", now_ms=1)
    refused(409, "experiment 'exp-7' is running on agent 'support'", **STEPS)
    store.agent_state.delete_allocation(PROJECT, AGENT, "experiment", "exp-7", author="k", now_ms=2)
    first = start(served, **STEPS).json()
    refused(409, f"rollout {first['rollout_id']} is running on agent 'support'", **STEPS)
    with served.client() as client:
        approve = client.post(f"/api/v1/rollouts/{first['rollout_id']}/approve", json={"step": 2})
        assert approve.status_code == 400
        assert approve.json()["error"]["message"] == (
            f"step 2 (25 %) of rollout {first['rollout_id']} needs no approval"
        )
        assert client.post(f"/api/v1/rollouts/{first['rollout_id']}/resume").status_code == 400


def test_a_failed_eval_gate_refuses_the_start_unless_forced(served: Served) -> None:
    store = served.store
    push_versions(store)
    failing = make_run({"a": [False]}, config=config(0.1), gate_passed=False, run_id="bad-run")
    store.evals.save_run(PROJECT, failing, author="k", now_ms=1, agent=AGENT, version="1.1.0")
    response = start(served, **STEPS)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "GateFailedError"
    assert "refusing to start the rollout" in response.json()["error"]["message"]
    assert store.rollouts.find(PROJECT) == []
    forced = start(served, **STEPS, force_reason="judge flaky; checked by hand")
    assert forced.status_code == 201
    assert forced.json()["force_reason"] == "judge flaky; checked by hand"
    assert "eval gate overridden: judge flaky" in forced.json()["timeline"][0]["reason"]


def test_pause_approve_resume_abort_and_the_timeline(served: Served) -> None:
    store, clock = served.store, served.clock
    _v1, v2 = push_versions(store)
    rollout = start(served, **STEPS, approve_before=[25]).json()
    rid = rollout["rollout_id"]
    same = Behaviour(error_rate=0.01, success_rate=0.97)
    traffic = Traffic(store, clock, {rollout["stable"]: same, v2.hash: same}, seed=2)
    with served.client() as client:
        for _ in range(6):
            traffic.send(600, over_ms=2 * MINUTE)
            served.controller.tick()
        waiting = client.get(f"/api/v1/rollouts/{rid}").json()
        assert waiting["step"] == 0
        assert waiting["timeline"][-1]["reason"] == "step 2 (25 %) waits for approval"
        paused = client.post(f"/api/v1/rollouts/{rid}/pause", json={"reason": "holiday"}).json()
        assert (paused["status"], paused["reason"]) == ("paused", "holiday")
        approved = client.post(f"/api/v1/rollouts/{rid}/approve").json()
        assert approved["approved_steps"] == [1]
        traffic.send(600, over_ms=2 * MINUTE)
        served.controller.tick()
        assert client.get(f"/api/v1/rollouts/{rid}").json()["step"] == 0  # paused: no advance
        client.post(f"/api/v1/rollouts/{rid}/resume")
        evaluated = client.post(f"/api/v1/rollouts/{rid}/evaluate").json()
        assert (evaluated["step"], evaluated["weight"]) == (1, 25)
        aborted = client.post(f"/api/v1/rollouts/{rid}/abort", json={"reason": "not today"})
        assert aborted.json()["status"] == "aborted"
        steps = [
            (e["decision"], e["actor"])
            for e in aborted.json()["timeline"]
            if e["decision"] != "hold"
        ]
        key = steps[0][1]
        assert steps == [
            ("start", key),
            ("pause", key),
            ("approve", key),
            ("resume", key),
            ("advance", key),
            ("abort", key),
        ]
        assert client.get("/api/v1/rollouts", params={"active": "true"}).json()["items"] == []
    assert store.agent_state.list_allocations(PROJECT, AGENT) == []
    assert store.configs.get_version(PROJECT, AGENT, "production").label == "1.0.0"


def test_rollback_stops_a_rollout_or_moves_production_back(served: Served) -> None:
    store = served.store
    push_versions(store, count=3)
    with served.client() as client:
        rid = start(served, **STEPS).json()["rollout_id"]
        stopped = client.post(f"/api/v1/agents/{AGENT}/rollback").json()
        assert stopped["rollout"]["rollout_id"] == rid
        assert stopped["rollout"]["status"] == "rolled_back"
        assert stopped["production"] is None
        assert store.agent_state.list_allocations(PROJECT, AGENT) == []
        moved = client.put(
            f"/api/v1/agents/{AGENT}/channels/production",
            json={"version": "1.2.0", "expected_version": "1.0.0"},
        )
        assert moved.status_code == 200, moved.text
        back = client.post(f"/api/v1/agents/{AGENT}/rollback").json()
        assert back["rollout"] is None
        assert (back["production"]["from_label"], back["production"]["to_label"]) == (
            "1.2.0",
            "1.0.0",
        )
        events = client.get("/api/v1/alert-events", params={"agent": AGENT}).json()["items"]
        assert [e["name"] for e in events] == [f"rollout {rid} rolled back"]


def test_a_chosen_rollout_id_names_the_rollout_and_salts_its_split(served: Served) -> None:
    store = served.store
    push_versions(store)
    response = start(served, **STEPS, rollout_id="checkout-canary.1")
    assert response.status_code == 201, response.text
    assert response.json()["rollout_id"] == "checkout-canary.1"
    [allocation] = store.agent_state.list_allocations(PROJECT, AGENT)
    assert (allocation.key, allocation.salt) == ("checkout-canary.1", "checkout-canary.1")
    with served.client() as client:
        aborted = client.post("/api/v1/rollouts/checkout-canary.1/abort", json={"reason": "x"})
        assert aborted.json()["status"] == "aborted"
    again = start(served, **STEPS, rollout_id="checkout-canary.1")
    assert again.status_code == 409
    assert again.json()["error"]["message"] == (
        "rollout id 'checkout-canary.1' is taken in this project; choose another, or leave it "
        "out for a random one"
    )
    hostile = start(served, **STEPS, rollout_id="../../etc passwd")
    assert hostile.status_code == 422
    assert "rollout_id" in hostile.json()["error"]["message"]
    assert [r.rollout_id for r in store.rollouts.find(PROJECT)] == ["checkout-canary.1"]

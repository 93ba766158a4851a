"""The controller's own loop in a live server on the real clock: it ticks by itself, rolls
a bad candidate back, and its webhook task delivers the rollback to a real receiver.
"""

from __future__ import annotations

import time

import httpx

from tests.conftest import start_server
from tuneloop.clock import FakeClock, SystemClock
from tuneloop.store import Store

from .test_alerts import Receiver
from .traffic import AGENT, PROJECT, Behaviour, Traffic, push_versions


def test_the_loop_rolls_back_and_notifies_on_its_own(store: Store) -> None:
    from tuneloop.server import create_app
    from tuneloop.settings import load_settings

    now = SystemClock().now_ms()
    store.keys.ensure_project(PROJECT, now_ms=now)
    admin = store.keys.create_key(PROJECT, "admin", now_ms=now).secret
    settings = load_settings(ingest_workers=0, controller_interval_s=0.2, recommend_interval_s=0)
    server, thread, url = start_server(create_app(settings, store=store))
    receiver = Receiver()
    try:
        v1, v2 = push_versions(store)
        headers = {"Authorization": f"Bearer {admin}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            started = client.post(
                f"/api/v1/agents/{AGENT}/rollouts",
                json={"version": "1.1.0", "steps": [50, 100], "notify": [receiver.url]},
            )
            assert started.status_code == 201, started.text
            rollout_id = started.json()["rollout_id"]
            # Runs stamped with the real time, after the start; the candidate fails half.
            clock = FakeClock(SystemClock().now_ms())
            bad = {v1.hash: Behaviour(error_rate=0.01), v2.hash: Behaviour(error_rate=0.5)}
            Traffic(store, clock, bad, seed=9).send(400, over_ms=500)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not receiver.received:
                time.sleep(0.1)
            document = client.get(f"/api/v1/rollouts/{rollout_id}").json()
            metrics = client.get("/metrics").text
    finally:
        receiver.close()
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(10)
    assert document["status"] == "rolled_back"
    assert document["reason"].startswith("hard limit: error rate ")
    assert [e["actor"] for e in document["timeline"]][-1] == "controller"
    [delivered] = receiver.received
    assert delivered["body"]["source"] == "rollout" and delivered["body"]["status"] == "firing"
    assert delivered["body"]["rollout_id"] == rollout_id
    lag = next(line for line in metrics.splitlines() if line.startswith("tuneloop_controller_lag"))
    assert float(lag.split()[-1]) < 5

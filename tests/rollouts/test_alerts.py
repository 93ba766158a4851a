"""Alerts end to end: a rule fires, reaches a real webhook server, resolves; a dead
receiver is retried with backoff and its failure recorded, and nothing waits for it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from .conftest import Served
from .traffic import AGENT, MINUTE, PROJECT, Behaviour, Traffic, push_versions


class Receiver:
    """A webhook receiver: a real HTTP server on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"body": json.loads(body), "headers": dict(self.headers)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rule(served: Served, **body: Any) -> dict[str, Any]:
    spec = {
        "name": "errors",
        "metric": "error_rate",
        "threshold": 0.05,
        "window_ms": "5m",
        "for_ms": "2m",
        "min_runs": 20,
        **body,
    }
    with served.client() as client:
        response = client.post(f"/api/v1/agents/{AGENT}/alerts", json=spec)
    assert response.status_code == 201, response.text
    return dict(response.json())


def deliver(served: Served) -> int:
    return asyncio.run(served.controller.webhooks.deliver_due())


def test_an_alert_fires_reaches_the_webhook_and_resolves(
    served: Served, receiver: Receiver
) -> None:
    store, clock = served.store, served.clock
    v1, _ = push_versions(store)
    created = rule(served, webhooks=[receiver.url], severity="critical")
    traffic = Traffic(store, clock, {v1.hash: Behaviour(error_rate=0.2)}, seed=1)
    states = []
    for _ in range(4):  # errors at 20 % for four minutes: pending, then firing after 2
        traffic.send(100, over_ms=MINUTE)
        served.controller.tick()
        states.append(store.alerts.get_rule(PROJECT, created["rule_id"]).state.state)
    assert states == ["pending", "pending", "firing", "firing"]
    assert deliver(served) == 1
    [firing] = receiver.received
    assert firing["body"]["status"] == "firing" and firing["body"]["severity"] == "critical"
    assert firing["body"]["agent"] == AGENT and firing["body"]["metric"] == "error_rate"
    assert firing["body"]["value"] == pytest.approx(0.2, abs=0.05)
    assert firing["body"]["message"].startswith("error rate ")
    assert firing["headers"]["X-Tuneloop-Attempt"] == "1"
    assert deliver(served) == 0  # delivered once
    # Healthy again: once the bad minutes leave the 5-minute window, it resolves.
    traffic.behaviours = {v1.hash: Behaviour(error_rate=0.0)}
    for _ in range(6):
        traffic.send(100, over_ms=MINUTE)
        served.controller.tick()
    deliver(served)
    assert [r["body"]["status"] for r in receiver.received] == ["firing", "resolved"]
    with served.client() as client:
        events = client.get("/api/v1/alert-events", params={"agent": AGENT}).json()["items"]
        rules = client.get("/api/v1/alerts").json()["items"]
    assert [(e["status"], e["dedupe_key"]) for e in events] == [
        ("resolved", f"rule:{created['rule_id']}:1"),
        ("firing", f"rule:{created['rule_id']}:1"),
    ]
    assert all(e["deliveries"][0]["status"] == "delivered" for e in events)
    assert (rules[0]["state"], rules[0]["episode"]) == ("ok", 1)


def test_a_dead_receiver_is_retried_with_backoff_and_recorded(served: Served) -> None:
    store, clock = served.store, served.clock
    v1, _ = push_versions(store)
    dead = f"http://127.0.0.1:{closed_port()}/hook"
    rule(served, webhooks=[dead], for_ms="0")
    Traffic(store, clock, {v1.hash: Behaviour(error_rate=0.5)}, seed=2).send(100)
    started = time.monotonic()
    report = served.controller.tick()
    assert time.monotonic() - started < 5  # the tick only records; it never sends
    assert len(report.alert_events) == 1
    assert deliver(served) == 1
    [delivery] = store.alerts.deliveries(PROJECT)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error is not None and delivery.last_error.startswith("ConnectError")
    assert delivery.next_attempt_ms == clock.now_ms() + 5_000
    assert deliver(served) == 0  # not due yet: backoff
    clock.advance(5_000)
    assert deliver(served) == 1
    assert store.alerts.deliveries(PROJECT)[0].next_attempt_ms == clock.now_ms() + 10_000
    clock.advance(10_000)
    deliver(served)  # third attempt of three: given up
    [failed] = store.alerts.deliveries(PROJECT)
    assert (failed.status, failed.attempts) == ("failed", 3)
    with served.client() as client:
        [event] = client.get("/api/v1/alert-events").json()["items"]
    assert event["deliveries"][0]["status"] == "failed"
    assert event["deliveries"][0]["last_error"].startswith("ConnectError")


def test_a_firing_alert_can_pause_the_running_rollout(served: Served) -> None:
    store, clock = served.store, served.clock
    v1, v2 = push_versions(store)
    with served.client() as client:
        rollout = client.post(
            f"/api/v1/agents/{AGENT}/rollouts", json={"version": "1.1.0", "step_duration": "10m"}
        ).json()
    rule(served, metric="latency_p95_ms", threshold=2000, for_ms="0", action="pause_rollout")
    slow = Behaviour(latency_ms=4000, error_rate=0.0)
    Traffic(store, clock, {v1.hash: slow, v2.hash: slow}, seed=3).send(200)
    served.controller.tick()
    paused = store.rollouts.get(PROJECT, rollout["rollout_id"])
    assert paused.status == "paused"
    assert paused.reason is not None
    assert paused.reason.startswith("alert 'errors' fired: latency p95 ms ")
    assert store.rollouts.timeline(PROJECT, paused.rollout_id)[-1].actor.startswith("alert:al-")


def test_bad_rules_are_refused(served: Served) -> None:
    push_versions(served.store)
    with served.client() as client:
        response = client.post(
            f"/api/v1/agents/{AGENT}/alerts", json={"name": "x", "metric": "vibes", "threshold": 1}
        )
        assert response.status_code == 422
        assert "metric" in response.json()["error"]["message"]
        rule(served)
        again = client.post(
            f"/api/v1/agents/{AGENT}/alerts",
            json={"name": "errors", "metric": "error_rate", "threshold": 0.1},
        )
        assert again.status_code == 409
        assert "already has an alert rule named 'errors'" in again.json()["error"]["message"]

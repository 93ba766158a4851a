"""The review queue over real HTTP on both engines: list, show, approve, reject, stats."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import TracerProvider

from tests.conftest import LiveServer
from tuneloop.clock import FakeClock
from tuneloop.config.model import AgentConfig
from tuneloop.runtime import Agent, Message, RunResult, SimulatedProvider, Tool, simulated_sleep
from tuneloop.runtime.providers import scripted, tool_call
from tuneloop.store.schema import feedback

pytestmark = pytest.mark.anyio
CONFIG = AgentConfig.from_data({"model": {"provider": "simulated", "name": "sim-1"}})


@pytest.fixture
def tracer() -> Iterator[TracerProvider]:
    provider = TracerProvider(shutdown_on_exit=False)
    yield provider
    provider.shutdown()


def refunder(server: LiveServer, tracer: TracerProvider, executed: list[str]) -> Agent:
    clock = FakeClock()

    async def refund(order_id: str) -> dict[str, Any]:
        """Refund an order."""
        executed.append(order_id)
        return {"refunded": order_id}

    def ask(request: Any) -> Message:
        order = request.messages[-1].text.split()[-1]
        return Message.assistant(None, [tool_call("refund", {"order_id": order}, call_id="r1")])

    provider = SimulatedProvider(
        scripted([ask, lambda request: Message.assistant("done: " + request.messages[-1].text)]),
        rng=random.Random(1),
        clock=clock,
        sleep=simulated_sleep(clock),
    )
    return Agent(
        CONFIG,
        [Tool(refund, side_effect="write", requires_approval=True)],
        provider,
        name="support",
        store=server.store,
        project_id=server.project,
        clock=clock,
        sleep=simulated_sleep(clock),
        tracing=tracer,
    )


async def parked(agent: Agent, order: str) -> RunResult:
    result = await agent.run(f"refund {order}", run_id=f"run-{order}")
    assert result.waiting and result.review is not None
    return result


async def test_a_reviewer_decides_over_http_and_the_agent_resumes(
    live_server: LiveServer, tracer: TracerProvider
) -> None:
    executed: list[str] = []
    agent = refunder(live_server, tracer, executed)
    first, second = await parked(agent, "A-1"), await parked(agent, "A-2")
    assert first.review is not None and second.review is not None
    with httpx.Client(base_url=f"{live_server.url}/api/v1", headers=live_server.headers()) as api:
        decide_over_http(api, first, second)
    with live_server.store.engine.connect() as conn:  # type: ignore[attr-defined]
        scores = conn.execute(
            sa.select(feedback.c.trace_id, feedback.c.name, feedback.c.value)
            .where(feedback.c.trace_id.in_([first.trace_id, second.trace_id]))
            .order_by(feedback.c.value)
        ).all()
    assert [tuple(row) for row in scores] == [
        (first.trace_id, "human_override", 0.0),
        (second.trace_id, "human_override", 1.0),
    ]

    resumed = {r.run_id: r for r in await agent.resume_decided()}
    assert executed == ["A-1"]
    assert resumed["run-A-1"].output is not None and "refunded" in resumed["run-A-1"].output
    assert resumed["run-A-2"].tool_calls[0].status == "error"


def decide_over_http(api: httpx.Client, first: RunResult, second: RunResult) -> None:
    assert first.review is not None and second.review is not None
    listed = api.get("/reviews").json()["items"]
    assert [(i["review_id"], i["tool"], i["arguments"], i["status"]) for i in listed] == [
        (first.review.review_id, "refund", {"order_id": "A-1"}, "pending"),
        (second.review.review_id, "refund", {"order_id": "A-2"}, "pending"),
    ]
    one = api.get(f"/reviews/{first.review.review_id}").json()
    assert (one["run_id"], one["trace_id"], one["reason"]) == (
        "run-A-1",
        first.trace_id,
        "tool 'refund' requires approval (tools.refund.requires_approval)",
    )

    approved = api.post(
        f"/reviews/{first.review.review_id}/approve", json={"reason": "ok", "reviewer": "ana"}
    )
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["reviewer"]) == ("approved", "ana")
    rejected = api.post(f"/reviews/{second.review.review_id}/reject", json={"reason": "fraud"})
    assert rejected.json()["reviewer"] == rejected.json()["reviewer"] != "ana"  # the key's id
    again = api.post(f"/reviews/{first.review.review_id}/reject", json={})
    assert again.status_code == 409
    assert "was already approved by 'ana'" in again.json()["error"]["message"]

    assert api.get("/reviews").json()["items"] == []
    assert len(api.get("/reviews", params={"status": "all"}).json()["items"]) == 2
    assert api.get("/reviews/stats").json() == {
        "pending": 0,
        "approved": 1,
        "rejected": 1,
        "decided": 2,
        "override_rate": 0.5,
    }


async def test_the_review_api_checks_its_input_and_its_keys(
    live_server: LiveServer, tracer: TracerProvider
) -> None:
    agent = refunder(live_server, tracer, [])
    result = await parked(agent, "A-9")
    assert result.review is not None
    check_refusals(live_server, result.review.review_id)


def check_refusals(live_server: LiveServer, review_id: str) -> None:
    base = f"{live_server.url}/api/v1/reviews"
    admin = live_server.headers()
    assert httpx.get(base, headers=live_server.headers(live_server.ingest_key)).status_code == 403
    assert httpx.get(base).status_code == 401
    missing = httpx.get(f"{base}/rv_missing", headers=admin)
    assert (missing.status_code, missing.json()["error"]["type"]) == (404, "NotFoundError")
    bad = httpx.get(base, params={"status": "maybe"}, headers=admin)
    assert bad.status_code == 400 and "unknown review status 'maybe'" in bad.text
    extra = httpx.post(f"{base}/{review_id}/approve", json={"x": 1}, headers=admin)
    assert extra.status_code == 422
    # Another project's admin sees nothing of this one's queue.
    _, other_admin = live_server.new_project("elsewhere")
    other = {"Authorization": f"Bearer {other_admin}"}
    assert httpx.get(base, headers=other).json()["items"] == []
    stranger = httpx.post(f"{base}/{review_id}/approve", json={}, headers=other)
    assert stranger.status_code == 404

"""``tuneloop review``: list, show, approve and reject against a real server on both engines."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import LiveServer
from tuneloop.cli.main import app
from tuneloop.clock import FakeClock
from tuneloop.config.model import AgentConfig
from tuneloop.runtime import Agent, Message, SimulatedProvider, Tool, simulated_sleep
from tuneloop.runtime.providers import scripted, tool_call

pytestmark = pytest.mark.anyio
runner = CliRunner(env={"COLUMNS": "200"})


def run(server: LiveServer, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--url", server.url, "--api-key", server.admin_key])
    return result.exit_code, result.output


def refunder(server: LiveServer, executed: list[str]) -> Agent:
    clock = FakeClock()

    async def refund(order_id: str) -> dict[str, Any]:
        """Refund an order."""
        executed.append(order_id)
        return {"refunded": order_id}

    def ask(request: Any) -> Message:
        order = request.messages[-1].text.split()[-1]
        return Message.assistant(None, [tool_call("refund", {"order_id": order}, call_id="r1")])

    provider = SimulatedProvider(
        scripted([ask, Message.assistant("done")]),
        rng=random.Random(1),
        clock=clock,
        sleep=simulated_sleep(clock),
    )
    return Agent(
        AgentConfig.from_data({"model": {"provider": "simulated", "name": "sim-1"}}),
        [Tool(refund, side_effect="write", requires_approval=True)],
        provider,
        name="support",
        store=server.store,
        project_id=server.project,
        clock=clock,
        sleep=simulated_sleep(clock),
    )


async def test_review_commands_walk_a_refund_through_the_queue(live_server: LiveServer) -> None:
    executed: list[str] = []
    agent = refunder(live_server, executed)
    first = await agent.run("refund A-1", run_id="cli-run-1")
    second = await agent.run("refund A-2", run_id="cli-run-2")
    assert first.review is not None and second.review is not None

    code, out = run(live_server, "review", "list")
    assert code == 0, out
    assert first.review.review_id in out and second.review.review_id in out
    assert 'refund({"order_id": "A-1"})' in out
    assert "2 pending, 0 approved, 0 rejected; human override rate n/a" in out

    code, out = run(live_server, "review", "show", first.review.review_id)
    assert code == 0 and json.loads(out)["arguments"] == {"order_id": "A-1"}

    code, out = run(
        live_server, "review", "approve", first.review.review_id, "-r", "ok", "--reviewer", "ana"
    )
    assert code == 0, out
    assert f"approved {first.review.review_id} (run cli-run-1) by ana" in out
    code, out = run(live_server, "review", "reject", second.review.review_id, "--reason", "no")
    assert code == 0 and "rejected" in out
    code, out = run(live_server, "review", "approve", second.review.review_id)
    assert code == 1
    assert "server answered 409" in out and "already rejected" in out

    code, out = run(live_server, "review", "list", "--status", "all", "--json")
    document = json.loads(out[: out.rindex("}") + 1])
    assert [item["status"] for item in document["items"]] == ["approved", "rejected"]
    assert document["stats"]["override_rate"] == 0.5

    await agent.resume_decided()
    assert executed == ["A-1"]


def test_an_unknown_review_is_a_clear_error(live_server: LiveServer) -> None:
    code, out = run(live_server, "review", "approve", "rv_missing")
    assert code == 1 and "server answered 404" in out and "rv_missing" in out

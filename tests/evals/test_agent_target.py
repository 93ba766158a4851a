"""A suite whose target is the runtime's Agent, built from the config by a factory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.evals.helpers import write_suite
from tuneloop.config.model import AgentConfig
from tuneloop.errors import ConfigError
from tuneloop.evals import load_suite, run_suite_sync
from tuneloop.evals.replay import candidate_outcome
from tuneloop.evals.target import agent_target

FACTORY = '''
import random, re
from tuneloop.clock import FakeClock
from tuneloop.runtime import Agent, Message, SimulatedProvider, Tool, simulated_sleep
from tuneloop.runtime.providers import LatencyModel, tool_call

BUILT = []


def policy(request, rng):
    last = request.messages[-1]
    if last.role == "user":
        order = re.search(r"[A-Z]-\\d{4}", last.text).group(0)
        call = tool_call("lookup_order", {"order_id": order}, call_id="c1")
        return Message.assistant(None, [call])
    return Message.assistant("Your order is " + ("shipped" if "shipped" in last.text else "lost"))


async def lookup_order(order_id: str) -> dict:
    """Look up an order.

    Args:
        order_id: the order's id.
    """
    return {"order_id": order_id, "status": "shipped"}


def build(config):
    BUILT.append(config)
    clock = FakeClock()
    provider = SimulatedProvider(policy, rng=random.Random(1), clock=clock,
                                 sleep=simulated_sleep(clock), latency=LatencyModel(10, 0, 0, 0))
    return Agent(config, [Tool(lookup_order)], provider, name="support", clock=clock,
                 sleep=simulated_sleep(clock))
'''

CONFIG = {"model": {"provider": "simulated", "name": "sim-1"}, "prompts": {"system": "Help."}}


def test_an_agent_target_answers_every_case_with_one_agent_per_config(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "model: {provider: simulated, name: sim-1}\nprompts: {system: Help.}\n"
    )
    cases = [
        {
            "id": f"c{n}",
            "input": f"Where is order A-100{n}?",
            "expected": {
                "contains": ["shipped"],
                "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": f"A-100{n}"}}],
            },
        }
        for n in range(4)
    ]
    path = write_suite(
        tmp_path,
        cases=cases,
        suite={
            "name": "agent-suite",
            "target": {"agent": "MODULE:build"},
            "config": "config.yaml",
            "evaluators": [{"name": "contains"}, {"name": "trajectory"}],
        },
        target_source=FACTORY,
    )
    suite = load_suite(path)
    run = run_suite_sync(suite, repeat=2, progress=False)
    assert run.gate is not None and run.overall.pass_rate == 1.0, [
        (c.case_id, [t.error or t.scores for t in c.trials]) for c in run.cases
    ]
    trial = run.cases[0].trials[0]
    assert trial.output == "Your order is shipped"
    assert (
        trial.tool_calls[0]["name"] == "lookup_order" and trial.tool_calls[0]["status"] == "success"
    )
    import sys

    module = sys.modules[suite.spec.target.agent.split(":")[0]]  # type: ignore[union-attr]
    assert len(module.BUILT) == 1  # eight trials, one agent


def test_the_target_spec_names_exactly_one_kind(tmp_path: Path) -> None:
    for target in ({"callable": "m:f", "agent": "m:g"}, {"timeout_s": 3}):
        path = write_suite(
            tmp_path,
            cases=[{"id": "a", "input": "x", "expected": "x"}],
            suite={"name": "s", "target": target, "evaluators": [{"name": "exact_match"}]},
        )
        with pytest.raises(ConfigError, match="exactly one of 'callable'"):
            load_suite(path)


def test_a_factory_must_return_something_that_runs_and_results_give_their_outcome() -> None:
    run = agent_target(lambda config: object(), what="factory")
    with pytest.raises(ConfigError, match="has no run\\(\\) method"):
        asyncio.run(run("hi", AgentConfig.from_data(CONFIG)))

    class Echo:
        def run(self, text: str) -> dict[str, str]:
            return {"output": text, "outcome": "escalated"}

    answer = asyncio.run(agent_target(lambda config: Echo(), what="f")("hi", None))
    assert answer == {"output": "hi", "outcome": "escalated"}
    assert candidate_outcome(answer) == "escalated"

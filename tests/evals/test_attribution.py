"""Failure attribution: a judge (the simulated provider) labels who caused each failed case."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.evals.stored_helpers import EXAMPLES, example_config
from tuneloop.clock import FakeClock
from tuneloop.errors import ConfigError, ProviderServerError
from tuneloop.evals import load_suite, load_target, run_suite_sync
from tuneloop.evals.attribution import FailureAttributor, parse_attribution
from tuneloop.evals.documents import parse_run_document
from tuneloop.evals.results import EvalRun
from tuneloop.runtime.providers.base import ChatRequest, Message
from tuneloop.runtime.providers.simulated import LatencyModel, SimulatedProvider
from tuneloop.runtime.timing import simulated_sleep

PROMPTS: list[str] = []


def judge_policy(request: ChatRequest, _rng: random.Random) -> Message:
    """Blames the agent when it called no tool, the environment otherwise; one bad answer."""
    prompt = request.messages[-1].text
    PROMPTS.append(prompt)
    if "order-total" in prompt:
        return Message.assistant("I think the agent did it.")  # no JSON: a judge error
    if "## Tool calls made" not in prompt:
        label = {"responsible": "agent", "fault": "wrong tool", "reasoning": "It never looked up."}
    else:
        label = {"responsible": "environment", "fault": "other", "reasoning": "A tool failed."}
    return Message.assistant(f"```json\n{json.dumps(label)}\n```")


def provider(policy: Any = judge_policy) -> SimulatedProvider:
    clock = FakeClock()
    return SimulatedProvider(
        policy,
        rng=random.Random(1),
        clock=clock,
        sleep=simulated_sleep(clock),
        latency=LatencyModel(0.0, 0.0, 0.0, 0.0),
    )


def attributed_suite(tmp_path: Path, **attribution: Any) -> Path:
    suite = {
        "name": "support",
        "dataset": str(EXAMPLES / "cases.jsonl"),
        "target": {"callable": "support_agent:answer"},
        "evaluators": [{"name": "contains"}, {"name": "trajectory"}, {"name": "safety"}],
        "attribution": {"provider": "simulated", "model": "judge-1", **attribution},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_failed_cases_are_labelled_and_the_label_is_kept_with_the_case(tmp_path: Path) -> None:
    PROMPTS.clear()
    suite = load_suite(attributed_suite(tmp_path, max_cases=4))
    target = load_target(load_suite(EXAMPLES / "support.yaml"))
    asked: list[tuple[str, dict[str, Any]]] = []

    def providers(name: str, options: Any) -> SimulatedProvider:
        asked.append((name, dict(options)))
        return provider()

    run = run_suite_sync(
        suite,
        config=example_config("config_broken.yaml"),
        target=target,
        providers=providers,
        progress=False,
    )
    assert asked == [("simulated", {})]
    failed = [case for case in run.cases if case.status != "pass"]
    assert len(failed) > 4 and len(PROMPTS) == 4  # at most max_cases judge calls
    labelled = [case for case in run.cases if case.attribution is not None]
    assert [case.case_id for case in labelled] == [case.case_id for case in failed[:4]]
    shipped = run.case("order-status-shipped")
    assert shipped is not None and shipped.attribution is not None
    assert (shipped.attribution.responsible, shipped.attribution.fault) == ("agent", "wrong_tool")
    assert (
        shipped.attribution.reasoning == "It never looked up."
        and shipped.attribution.model == "judge-1"
    )
    total = run.case("order-total")
    assert total is not None and total.attribution is not None
    assert total.attribution.responsible is None and "no JSON object" in (
        total.attribution.error or ""
    )
    prompt = next(p for p in PROMPTS if "order-status-shipped" in p)
    assert (
        "Where is my order A-1001?" in prompt
        and "## Failed checks" in prompt
        and '"A-1001"' in prompt
    )
    again = EvalRun.from_json(run.to_json())
    assert again.case("order-status-shipped") == shipped
    assert parse_run_document(json.loads(run.to_json())).to_dict() == run.to_dict()
    assert any(case.status == "pass" for case in run.cases)
    assert all(case.attribution is None for case in run.cases if case.status == "pass")


def test_attribution_can_be_turned_off_and_a_failing_judge_does_not_fail_the_run(
    tmp_path: Path,
) -> None:
    PROMPTS.clear()
    suite = load_suite(attributed_suite(tmp_path, max_cases=2))
    target = load_target(load_suite(EXAMPLES / "support.yaml"))
    broken = example_config("config_broken.yaml")
    off = run_suite_sync(
        suite,
        config=broken,
        target=target,
        providers=lambda *_: provider(),
        attribute=False,
        progress=False,
    )
    assert PROMPTS == [] and all(case.attribution is None for case in off.cases)

    def down(_request: ChatRequest, _rng: random.Random) -> Message:
        raise ProviderServerError("judge API answered 503")

    failing = run_suite_sync(
        suite, config=broken, target=target, providers=lambda *_: provider(down), progress=False
    )
    labels = [case.attribution for case in failing.cases if case.attribution is not None]
    assert len(labels) == 2
    assert all(label.error and "503" in label.error and label.fault is None for label in labels)
    assert failing.gate is not None  # the run was still judged and reported


def test_answers_are_read_leniently_and_strictly_checked() -> None:
    label = parse_attribution(
        'Sure: {"responsible": "Environment", "fault_type": "Goal partly completed"}'
    )
    assert (label.responsible, label.fault, label.error) == (
        "environment",
        "goal_partly_completed",
        None,
    )
    wrong = parse_attribution('{"responsible": "the weather", "fault": "wrong-argument"}', trial=2)
    assert wrong.responsible is None and wrong.fault == "wrong_argument" and wrong.trial == 2
    assert "'responsible' 'the weather' is not one of" in (wrong.error or "")


def test_a_suite_with_a_bad_attribution_section_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    document = yaml.safe_load(attributed_suite(tmp_path).read_text())
    document["attribution"]["temperature"] = 2
    bad.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"unknown key 'attribution\.temperature'"):
        load_suite(bad)
    suite = load_suite(attributed_suite(tmp_path, provider="nope"))
    with pytest.raises(ConfigError, match="unknown provider 'nope'"):
        run_suite_sync(suite, config=example_config(), target=lambda *_: None, progress=False)


def test_an_attributor_labels_nothing_in_a_run_that_passed(tmp_path: Path) -> None:
    import asyncio

    from tests.evals.stored_helpers import make_run

    run = make_run({"a": [True]})
    attributor = FailureAttributor(provider(), model="judge-1")
    assert asyncio.run(attributor.annotate(run, [])) is run

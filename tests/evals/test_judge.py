"""LLM-as-judge through the runtime's simulated provider: reasoning kept, bad answers contained."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.evals.helpers import case, score, write_suite
from tuneloop.clock import FakeClock
from tuneloop.errors import ConfigError
from tuneloop.evals.evaluators.base import BuildContext, EvalContext
from tuneloop.evals.evaluators.judge import Judge, JudgeParams, parse_judgement
from tuneloop.evals.pipeline import run_suite_sync
from tuneloop.evals.suite import load_suite
from tuneloop.evals.target import to_target_result
from tuneloop.runtime.providers.base import ChatRequest, Message
from tuneloop.runtime.providers.simulated import FailureModel, SimulatedProvider
from tuneloop.runtime.timing import simulated_sleep


def simulated(
    answer: Callable[[ChatRequest], str], *, failures: FailureModel | None = None
) -> Callable[[str, Mapping[str, Any]], SimulatedProvider]:
    """A provider factory whose simulated model answers ``answer(request)``."""
    seen: list[ChatRequest] = []

    def policy(request: ChatRequest, rng: random.Random) -> Message:
        seen.append(request)
        return Message.assistant(answer(request))

    def factory(name: str, options: Mapping[str, Any]) -> SimulatedProvider:
        clock = FakeClock()
        provider = SimulatedProvider(
            policy,
            rng=random.Random(1),
            clock=clock,
            sleep=simulated_sleep(clock),
            failures=failures,
        )
        provider.seen = seen  # type: ignore[attr-defined]
        return provider

    return factory


def judge(answer: Callable[[ChatRequest], str], **params: Any) -> Judge:
    options = {"provider": "simulated", "model": "judge-1", **params}
    return Judge(
        "judge", JudgeParams.model_validate(options), BuildContext(providers=simulated(answer))
    )


def test_a_parsable_verdict_scores_and_keeps_the_reasoning() -> None:
    evaluator = judge(lambda _: '{"reasoning": "Accurate and polite.", "score": 4}')
    result = score(evaluator, "Your order ships tomorrow.", "It ships tomorrow.")
    assert result.status == "pass"
    assert result.score == pytest.approx(0.75)  # (4 - 1) / (5 - 1)
    assert result.details["reasoning"] == "Accurate and polite."


def test_the_prompt_carries_rubric_input_reference_tool_calls_and_answer() -> None:
    evaluator = judge(lambda _: '{"reasoning": "ok", "score": 5}', rubric="Must cite the order id.")
    ctx = EvalContext(
        case(input="Where is A-1?", expected={"output": "A-1 shipped"}),
        to_target_result({"output": "A-1 shipped", "tool_calls": [{"name": "lookup"}]}),
    )
    import asyncio

    asyncio.run(evaluator.evaluate(ctx))
    request: ChatRequest = evaluator._provider.seen[0]  # type: ignore[attr-defined]
    prompt = request.messages[-1].text
    for part in ("Must cite the order id.", "Where is A-1?", "A-1 shipped", '"lookup"'):
        assert part in prompt
    assert request.model == "judge-1" and request.temperature == 0.0
    assert "score" in request.messages[0].text


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('Here you go:\n```json\n{"score": 2, "reasoning": "vague"}\n```', (2.0, "vague")),
        ('I think {"score": "3", "explanation": "fine"} overall.', (3.0, "fine")),
    ],
)
def test_verdicts_inside_prose_or_fences_parse(answer: str, expected: tuple[float, str]) -> None:
    assert parse_judgement(answer, 1, 5) == expected


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("The answer is great, 5/5!", "holds no JSON object"),
        ('{"reasoning": "good"}', "no numeric 'score'"),
        ('{"score": 9, "reasoning": "wow"}', "off the scale"),
    ],
)
def test_an_unparsable_verdict_is_a_judge_error_not_a_crash(answer: str, problem: str) -> None:
    result = score(judge(lambda _: answer), "output", "reference")
    assert result.status == "error" and result.score is None
    assert result.explanation.startswith("judge error:") and problem in result.explanation


def test_provider_failures_are_judge_errors() -> None:
    evaluator = Judge(
        "judge",
        JudgeParams(provider="simulated", model="m"),
        BuildContext(providers=simulated(lambda _: "{}", failures=FailureModel(server_error=1.0))),
    )
    result = score(evaluator, "output", "reference")
    assert result.status == "error" and "ProviderServerError" in result.explanation


def test_samples_give_the_judge_variance() -> None:
    replies = iter(['{"score": 5, "reasoning": "a"}', '{"score": 3, "reasoning": "b"}', "junk"])
    evaluator = judge(lambda _: next(replies), samples=3, threshold=0.5)
    result = score(evaluator, "output", "reference")
    assert result.details["judge_scores"] == [1.0, 0.5]
    assert result.details["judge_variance"] == pytest.approx(0.0625)
    assert len(result.details["judge_errors"]) == 1
    assert result.score == pytest.approx(0.75) and result.passed


def test_judge_errors_leave_the_run_going_and_variance_is_reported(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path,
        cases=[{"id": f"c{i}", "input": f"q{i}", "expected": f"a{i}"} for i in range(3)],
        suite={
            "name": "judged",
            "target": {"callable": "MODULE:echo"},
            "evaluators": [{"name": "judge", "params": {"provider": "simulated", "model": "m"}}],
        },
        target_source="async def echo(text, config):\n    return text.replace('q', 'a')\n",
    )

    q2_calls = []

    def answer(request: ChatRequest) -> str:
        prompt = request.messages[-1].text
        if "q1" in prompt:
            return "no idea"
        if "q2" in prompt:  # an unreliable judge: it disagrees with itself
            q2_calls.append(1)
            return json.dumps({"score": 5 if len(q2_calls) % 2 else 1, "reasoning": "hm"})
        return '{"score": 5, "reasoning": "matches"}'

    run = run_suite_sync(load_suite(path), progress=False, providers=simulated(answer), repeat=2)
    statuses = {c.case_id: c.status for c in run.cases}
    assert statuses == {"c0": "pass", "c1": "error", "c2": "fail"}
    assert run.overall.evaluator_errors == 2
    c2 = run.case("c2")
    assert c2 is not None and c2.passes == 1  # one trial judged 5, the other 1
    # Only c0 (always 5) and c2 (5 then 1) have two judge scores; c1 never parsed.
    assert run.overall.judge_variance == pytest.approx((0.0 + 0.25) / 2)


def test_unknown_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown provider 'gemini'"):
        Judge("judge", JudgeParams(provider="gemini", model="m"), BuildContext())


def test_simulated_provider_by_name_with_a_policy_import_path(tmp_path: Path) -> None:
    (tmp_path / "judge_policy.py").write_text(
        "from tuneloop.runtime.providers.base import Message\n"
        "def always_three(request, rng):\n"
        '    return Message.assistant(\'{"score": 3, "reasoning": "meh"}\')\n'
    )
    params = JudgeParams(
        provider="simulated", model="m", options={"policy": "judge_policy:always_three"}
    )
    evaluator = Judge("judge", params, BuildContext(base_dir=tmp_path))
    assert score(evaluator, "x", "y").score == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="takes options policy"):
        Judge("judge", JudgeParams(provider="simulated", model="m"), BuildContext())

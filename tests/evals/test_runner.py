"""The runner: concurrency, timeouts, failing targets, pass^k, sinks, progress, tracing."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import httpx
import pytest
from rich.console import Console

from tests.conftest import LiveServer
from tests.evals.helpers import case
from tests.sdk.sdk_fakes import FAST_RETRY
from tuneloop.clock import FakeClock
from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.evals.evaluators.base import EvalContext, Score
from tuneloop.evals.evaluators.text import Contains, ContainsParams
from tuneloop.evals.results import CaseResult, EvalRun
from tuneloop.evals.runner import BoundEvaluator, RunHeader, Runner
from tuneloop.evals.target import as_async
from tuneloop.sdk import Client

CONTAINS = Contains("contains", ContainsParams())


def cases(n: int, **kwargs: Any) -> list[Any]:
    return [
        case(f"c{i}", input=f"answer {i}", expected={"contains": "answer"}, **kwargs)
        for i in range(n)
    ]


def run(runner: Runner, items: list[Any], config: Any = None, **kwargs: Any) -> EvalRun:
    return asyncio.run(runner.run(items, config, suite="s", **kwargs))


def test_concurrency_is_bounded_and_used() -> None:
    in_flight, peak = 0, 0

    async def target(text: str, config: Any) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return text

    result = run(Runner(target, [CONTAINS], concurrency=4, progress=False), cases(20))
    assert peak == 4
    assert result.overall.pass_rate == 1.0 and result.overall.cases == 20


def test_raising_and_hanging_targets_fail_their_case_and_the_run_goes_on() -> None:
    async def target(text: str, config: Any) -> Any:
        if text == "answer 1":
            raise ValueError("inventory service down")
        if text == "answer 2":
            await asyncio.sleep(3600)
        if text == "answer 3":
            return {"output": "x", "tool_calls": "not a list"}
        return text

    started = time.monotonic()
    result = run(Runner(target, [CONTAINS], timeout_s=0.2, progress=False), cases(5))
    assert time.monotonic() - started < 5
    by_id = {c.case_id: c.trials[0] for c in result.cases}
    assert (by_id["c1"].error_kind, by_id["c1"].error) == (
        "exception",
        "ValueError: inventory service down",
    )
    assert by_id["c2"].error_kind == "timeout" and "within 0.2 s" in (by_id["c2"].error or "")
    assert by_id["c3"].error_kind == "invalid_result" and "tool_calls" in (by_id["c3"].error or "")
    assert [by_id[c].passed for c in ("c0", "c4")] == [True, True]
    assert result.overall.target_errors == 3
    assert {c.case_id: c.status for c in result.cases}["c1"] == "error"


def test_a_synchronous_target_that_hangs_times_out_without_blocking() -> None:
    def target(text: str, config: Any) -> str:
        if text == "answer 0":
            time.sleep(3)
        return text

    started = time.monotonic()
    result = run(
        Runner(as_async(target, what="t"), [CONTAINS], timeout_s=0.2, progress=False), cases(3)
    )
    assert time.monotonic() - started < 2.5
    assert [c.trials[0].error_kind for c in result.cases] == ["timeout", None, None]


def test_repeats_give_pass_at_one_pass_k_and_the_unbiased_curve() -> None:
    attempts: dict[str, int] = {}

    async def flaky(text: str, config: Any) -> str:
        attempts[text] = attempts.get(text, 0) + 1
        # c0 always passes; c1 passes 2 of 4 trials; c2 never passes.
        if text == "answer 0" or (text == "answer 1" and attempts[text] % 2 == 0):
            return text
        return "nope"

    result = run(Runner(flaky, [CONTAINS], repeat=4, concurrency=1, progress=False), cases(3))
    assert [c.passes for c in result.cases] == [4, 2, 0]
    overall = result.overall
    assert overall.k == 4 and overall.trials == 12
    assert overall.pass_rate == pytest.approx((1 + 0.5 + 0) / 3)
    assert overall.pass_k == pytest.approx(1 / 3)
    # pass^2 for c1 = C(2,2)/C(4,2) = 1/6.
    assert overall.pass_hat[2] == pytest.approx((1 + 1 / 6 + 0) / 3)
    assert overall.pass_hat[4] == pytest.approx(overall.pass_k)
    assert [t.trial for t in result.cases[1].trials] == [0, 1, 2, 3]


def test_latency_comes_from_the_result_or_the_injected_clock() -> None:
    clock = FakeClock()

    async def target(text: str, config: Any) -> Any:
        clock.advance(250)
        if text == "answer 0":
            return {"output": text, "latency_ms": 40.0, "cost_usd": 0.002}
        return text

    result = run(Runner(target, [CONTAINS], clock=clock, progress=False), cases(2))
    assert [c.trials[0].latency_ms for c in result.cases] == [40.0, 250.0]
    assert result.overall.mean_cost_usd == pytest.approx(0.002)
    assert result.finished_ms - result.started_ms == 500


class Exploding:
    name = "exploding"

    async def evaluate(self, ctx: EvalContext) -> Score:
        raise RuntimeError("bug in my evaluator")


class Slow:
    name = "slow"

    async def evaluate(self, ctx: EvalContext) -> Score:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def test_evaluator_failures_are_error_scores_and_unchecked_cases_are_flagged() -> None:
    async def echo(text: str, config: Any) -> str:
        return text

    items = [*cases(1), case("bare", input="x")]
    runner = Runner(
        echo,
        [
            CONTAINS,
            BoundEvaluator(Exploding(), frozenset({"other"})),
            BoundEvaluator(Slow(), tags=frozenset({"slow"})),
        ],
        evaluator_timeout_s=0.1,
        progress=False,
    )
    result = run(
        runner, [*items, case("s", input="answer", expected={"contains": "a"}, tags=["slow"])]
    )
    bare = result.case("bare")
    assert bare is not None and bare.status == "error"
    assert "no evaluator checks case 'bare'" in bare.trials[0].scores[-1].explanation
    slow = result.case("s")
    assert slow is not None and slow.trials[0].scores[-1].status == "error"
    assert "took longer than 0.1 s" in slow.trials[0].scores[-1].explanation
    assert result.case("c0") is not None and result.case("c0").status == "pass"  # type: ignore[union-attr]

    runner = Runner(echo, [Exploding()], progress=False)
    exploded = run(runner, cases(1)).cases[0].trials[0].scores[0]
    assert (exploded.status, exploded.explanation) == ("error", "RuntimeError: bug in my evaluator")


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def on_start(self, header: RunHeader) -> None:
        self.events.append(("start", header))

    async def on_case(self, run_id: str, result: CaseResult) -> None:
        self.events.append(("case", (run_id, result)))

    async def on_finish(self, run: EvalRun) -> None:
        self.events.append(("finish", run))


def test_the_sink_sees_the_start_every_finished_case_and_the_gated_run() -> None:
    async def echo(text: str, config: Any) -> str:
        return text

    sink = RecordingSink()
    runner = Runner(echo, [CONTAINS], repeat=2, sink=sink, progress=False)
    from tuneloop.evals.results import GateReport

    result = run(runner, cases(3), version="v7", run_id="run-1", gate=lambda r: GateReport(()))
    kinds = [kind for kind, _ in sink.events]
    assert kinds == ["start", "case", "case", "case", "finish"]
    header = sink.events[0][1]
    assert (header.run_id, header.cases, header.repeat, header.version) == ("run-1", 3, 2, "v7")
    assert all(
        len(r.trials) == 2 and run_id == "run-1" for run_id, r in (e[1] for e in sink.events[1:4])
    )
    assert sink.events[-1][1] is result and result.gate is not None


def test_bad_arguments_and_inputs_are_refused() -> None:
    async def echo(text: str, config: Any) -> str:
        return text

    with pytest.raises(ConfigError, match="concurrency must be at least 1"):
        Runner(echo, [CONTAINS], concurrency=0)
    with pytest.raises(ConfigError, match="timeout_s must be > 0"):
        Runner(echo, [CONTAINS], timeout_s=0)
    with pytest.raises(InvalidInputError, match="nothing to run"):
        run(Runner(echo, [CONTAINS]), [])
    with pytest.raises(InvalidInputError, match="unique"):
        run(Runner(echo, [CONTAINS]), [case("a"), case("a")])


def test_the_progress_bar_is_drawn_when_asked() -> None:
    async def echo(text: str, config: Any) -> str:
        return text

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    run(Runner(echo, [CONTAINS], progress=True, console=console), cases(3))
    assert "3/3" in buffer.getvalue()
    quiet = io.StringIO()
    run(Runner(echo, [CONTAINS], console=Console(file=quiet)), cases(3))  # not a terminal
    assert quiet.getvalue() == ""


def test_each_trial_is_a_traced_run_that_identifies_suite_case_and_version(
    live_server: LiveServer,
) -> None:
    class SlowScorer:
        name = "slow_scorer"

        async def evaluate(self, ctx: EvalContext) -> Score:
            await asyncio.sleep(0.3)  # a judge, say: not part of the agent's latency
            return Score(self.name, "pass", 1.0)

    with Client(live_server.url, live_server.ingest_key, retry=FAST_RETRY) as client:

        async def target(text: str, config: Any) -> str:
            # The agent's own spans nest under the trial's run span.
            with client.tracer.start_as_current_span(
                "execute_tool lookup",
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"},
            ):
                await asyncio.sleep(0.01)
            if text == "answer 1":
                raise RuntimeError("boom")
            return text if text != "answer 2" else "wrong"

        runner = Runner(
            target, [CONTAINS, SlowScorer()], client=client, agent="support", progress=False
        )
        result = asyncio.run(
            runner.run(cases(3, category="orders"), None, suite="nightly", stage="post-merge",
                       version="v9", run_id="r-42")
        )  # fmt: skip
        assert client.flush(timeout_s=10.0)
    trace_ids = [c.trials[0].trace_id for c in result.cases]
    assert all(trace_id and len(trace_id) == 32 for trace_id in trace_ids)
    headers = live_server.headers()
    facts, roots = [], []
    for trace_id in trace_ids:
        response = httpx.get(f"{live_server.url}/api/v1/traces/{trace_id}", headers=headers)
        assert response.status_code == 200
        facts.append(response.json()["run"])
        roots.append(response.json()["spans"][0])
    assert [f["agent"] for f in facts] == ["support"] * 3
    assert [f["version"] for f in facts] == ["v9"] * 3
    assert [f["outcome"] for f in facts] == ["success", "failure", "success"]
    assert [f["tool_calls"] for f in facts] == [1, 1, 1]
    # The run lasts as long as the target, not the scoring after it.
    assert all(f["duration_ms"] < 250 for f in facts), [f["duration_ms"] for f in facts]
    attributes = roots[2]["attributes"]
    assert attributes["tuneloop.eval.case_id"] == "c2"
    assert attributes["tuneloop.eval.suite"] == "nightly"
    assert attributes["tuneloop.eval.run_id"] == "r-42"
    assert attributes["tuneloop.eval.category"] == "orders"
    assert attributes["tuneloop.eval.passed"] is False
    # A failing case is found by searching the server for its attributes.
    found = httpx.get(
        f"{live_server.url}/api/v1/traces",
        params=[("attr", "tuneloop.eval.run_id=r-42"), ("outcome", "failure")],
        headers=headers,
    ).json()["items"]
    assert [item["trace_id"] for item in found] == [trace_ids[1]]

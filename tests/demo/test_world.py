"""The simulated world: deterministic per seed, and shaped like the traffic it claims."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter

from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

from tests.sdk.sdk_fakes import API_KEY, BASE_URL, FAST_RETRY, FakeServer, attrs, by_name
from tuneloop import semconv
from tuneloop.clock import FakeClock
from tuneloop.demo.agent import play
from tuneloop.demo.script import AgentSettings, LlmStep, ScriptedRun, ToolSettings, ToolStep
from tuneloop.demo.world import DEFAULT_START_MS, scripted_runs
from tuneloop.sdk import Client

HOUR_MS = 3_600_000


def decisions(runs: list[ScriptedRun]) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    return [(r.unit_id, r.intent, r.routed_intent, r.outcome, tuple(_tools(r))) for r in runs]


def _tools(run: ScriptedRun) -> list[str]:
    return [s.tool for s in run.steps if isinstance(s, ToolStep)]


def tool_steps(runs: list[ScriptedRun], tool: str) -> list[ToolStep]:
    return [s for r in runs for s in r.steps if isinstance(s, ToolStep) and s.tool == tool]


def test_the_same_seed_scripts_the_same_runs() -> None:
    first = list(scripted_runs(seed=11, count=200))
    again = list(scripted_runs(seed=11, count=200))
    other = list(scripted_runs(seed=12, count=200))

    assert first == again
    assert decisions(first) != decisions(other)
    # A longer simulation starts with the same runs as a shorter one.
    assert list(scripted_runs(seed=11, count=50)) == first[:50]


def test_runs_follow_one_another_over_a_few_simulated_hours() -> None:
    runs = list(scripted_runs(seed=7, count=400))

    assert [r.index for r in runs] == list(range(400))
    assert runs[0].start_ms >= DEFAULT_START_MS
    for earlier, later in itertools.pairwise(runs):
        assert later.start_ms >= earlier.start_ms + earlier.duration_ms
    assert 2 * HOUR_MS <= runs[-1].start_ms - runs[0].start_ms <= 5 * HOUR_MS
    # Users come back: fewer users than sessions, fewer sessions than runs.
    users = {r.unit_id for r in runs}
    sessions = {r.session_id for r in runs}
    assert 50 < len(users) < len(sessions) < 400
    owners = {(r.session_id, r.unit_id) for r in runs}
    assert len(owners) == len(sessions)


def test_outcomes_tools_and_feedback_are_a_realistic_mix() -> None:
    runs = list(scripted_runs(seed=7, count=400))
    outcomes = Counter(r.outcome for r in runs)

    assert set(outcomes) == {"success", "failure", "escalated"}
    assert 0.75 < outcomes["success"] / 400 < 0.95
    assert set(Counter(r.intent for r in runs)) == {
        "order_status", "refund", "shipping_policy", "account",
    }  # fmt: skip
    lookups = tool_steps(runs, "lookup_order")
    lookup_503 = sum(a.error == "503" for s in lookups for a in s.attempts)
    assert 0.04 < lookup_503 / len(lookups) < 0.13
    assert all(s.attempts[0].retryable for s in lookups if s.failed)
    # A failed lookup leaves the agent nothing to say: the run aborts as a failure.
    aborted = [r for r in runs if r.aborted]
    assert aborted
    assert {r.outcome for r in aborted} == {"failure"}
    assert {_tools(r)[-1] for r in aborted} <= {"lookup_order", "search_policy"}
    assert all(not isinstance(r.steps[-1], LlmStep) for r in aborted)
    thumbs = Counter(r.thumbs for r in runs)
    assert 0.2 < (thumbs[0] + thumbs[1]) / 400 < 0.6
    assert thumbs[1] > thumbs[0] > 0


def test_policy_search_has_a_tail_past_its_timeout() -> None:
    runs = list(scripted_runs(seed=5, count=600))
    searches = tool_steps(runs, "search_policy")

    timeouts = [s for s in searches if s.final.error == "timeout"]
    assert 0.02 < len(timeouts) / len(searches) < 0.15
    assert {s.latency_ms for s in timeouts} == {3000.0}
    assert max(s.latency_ms for s in searches) == 3000.0


def test_retries_follow_the_tools_settings() -> None:
    base = AgentSettings()
    retrying = dataclasses.replace(
        base,
        version="v2",
        tools={**base.tools, "lookup_order": ToolSettings(max_retries=2, backoff_ms=100.0)},
    )
    runs = list(scripted_runs(seed=9, count=400, settings=retrying))
    lookups = tool_steps(runs, "lookup_order")

    retried = [s for s in lookups if s.retries]
    assert retried
    assert max(s.retries for s in lookups) <= 2
    for step in retried:
        assert step.backoff_ms == (100.0, 200.0)[: step.retries]
        assert all(a.error == "503" for a in step.attempts[:-1])
    failed_for_good = [s for s in lookups if s.failed]
    assert all(s.retries == 2 for s in failed_for_good)
    assert (
        len(failed_for_good) < len(tool_steps(list(scripted_runs(9, 400)), "lookup_order")) * 0.02
    )
    assert {r.settings.version for r in runs} == {"v2"}


def test_a_hotter_router_misroutes_more() -> None:
    def misrouted(temperature: float) -> int:
        settings = AgentSettings(router_temperature=temperature)
        return sum(r.misrouted for r in scripted_runs(seed=4, count=500, settings=settings))

    assert misrouted(0.0) < misrouted(0.7) < misrouted(1.5)


def test_playing_an_aborted_run_sends_its_spans_on_simulated_time() -> None:
    runs = list(scripted_runs(seed=7, count=400))
    script = next(r for r in runs if r.aborted and _tools(r)[-1] == "lookup_order")
    clock = FakeClock(DEFAULT_START_MS)
    server = FakeServer()
    with Client(
        BASE_URL, API_KEY, transport=server.transport, retry=FAST_RETRY, clock=clock
    ) as client:
        trace_id = play(client, clock, script)
        assert client.flush(timeout_s=5.0)

    spans = by_name(server.spans())
    root = spans["invoke_agent support"]
    assert root.trace_id.hex() == trace_id
    assert root.start_time_unix_nano == script.start_ms * 1_000_000
    duration_ns = root.end_time_unix_nano - root.start_time_unix_nano
    assert abs(duration_ns - script.duration_ms * 1_000_000) < 100
    assert root.status.code == PbStatus.StatusCode.STATUS_CODE_ERROR
    root_attrs = attrs(root.attributes)
    assert root_attrs[semconv.TL_RUN_OUTCOME] == "failure"
    assert root_attrs[semconv.TL_UNIT_ID] == script.unit_id
    assert root_attrs[semconv.TL_CONFIG_VERSION] == "v1"
    lookup = attrs(spans["execute_tool lookup_order"].attributes)
    assert lookup[semconv.TL_TOOL_STATUS] == "error"
    assert lookup[semconv.ERROR_TYPE] == "503"
    assert lookup[semconv.TL_TOOL_RETRYABLE] is True
    assert "chat gpt-4o" not in spans  # the run aborted before answering
    assert set(spans) == {
        "invoke_agent support",
        "guardrail pii",
        "chat gpt-4o-mini",
        "execute_tool lookup_order",
    }

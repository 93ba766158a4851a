"""`GET /api/v1/metrics` against figures computed independently from the generated runs."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from tests.conftest import LiveServer
from tests.otlp_factory import Api, agent_run, request, span
from tuneloop import semconv as sc
from tuneloop.analysis.quantiles import RELATIVE_ACCURACY
from tuneloop.settings import DEFAULT_PRICES
from tuneloop.telemetry.normalize import is_retryable

HOUR_MS = 3_600_000
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
ERROR_TYPES = ["503", "429", "TimeoutError", "ValueError", "400"]
GPT_4O = DEFAULT_PRICES["gpt-4o"]


@dataclass
class Generated:
    """One generated run, as a user would tally it by hand."""

    version: str
    variant: str
    started_ms: int
    duration_ms: float
    outcome: str
    tokens_in: int
    tokens_out: int
    cost: float
    tools: list[tuple[str, float, str | None]] = field(default_factory=list)


def stored_ms(duration_ms: float) -> float:
    return round(duration_ms * 1e6) / 1e6  # spans carry whole nanoseconds


def generate(rng: np.random.Generator, count: int, base_ms: int) -> tuple[list[Generated], list]:
    made, spans = [], []
    for i in range(count):
        version = "v1" if i % 2 else "v2"
        variant = "control" if i % 4 < 2 else "treatment"
        started_ms = base_ms + int(rng.integers(0, 3)) * HOUR_MS + int(rng.integers(0, HOUR_MS))
        duration = float(rng.lognormal(6.0 if version == "v1" else 5.5, 0.8))
        outcome = str(rng.choice(["success", "failure", "escalated"], p=[0.7, 0.2, 0.1]))
        calls = [(int(rng.integers(10, 3000)), int(rng.integers(1, 500))) for _ in range(i % 3)]
        run = agent_run(
            "planner",
            start_ns=started_ms * 1_000_000,
            duration_ms=duration,
            version=version,
            variant=variant,
            outcome=outcome,
            error="ValueError" if outcome == "failure" else None,
            llm=[("gpt-4o-2024-08-06", tokens_in, tokens_out) for tokens_in, tokens_out in calls],
        )
        generated = Generated(
            version=version,
            variant=variant,
            started_ms=started_ms,
            duration_ms=stored_ms(duration),
            outcome=outcome,
            tokens_in=sum(c[0] for c in calls),
            tokens_out=sum(c[1] for c in calls),
            cost=sum((a * GPT_4O.input_per_1k + b * GPT_4O.output_per_1k) / 1000 for a, b in calls),
        )
        for j in range(int(rng.integers(0, 4))):
            name = str(rng.choice(["search", "crm", "calc"]))
            tool_ms = float(rng.lognormal(3.0, 1.0))
            error_type = str(rng.choice(ERROR_TYPES)) if rng.random() < 0.25 else None
            attrs = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: name}
            if error_type:
                attrs[sc.ERROR_TYPE] = error_type
            run.children.append(
                span(
                    f"execute_tool {name}",
                    trace_id=run.trace_id,
                    parent=run.root.span_id,
                    start_ns=started_ms * 1_000_000 + j,
                    duration_ms=tool_ms,
                    attrs=attrs,
                    error=error_type,
                )
            )
            generated.tools.append((name, stored_ms(tool_ms), error_type))
        made.append(generated)
        spans.extend(run.spans)
    return made, spans


def assert_latency(reported: dict[str, float | None], durations: list[float]) -> None:
    exact = np.quantile(np.asarray(durations), list(PERCENTILES.values()), method="lower")
    for (name, _), truth in zip(PERCENTILES.items(), exact, strict=True):
        estimate = reported[name]
        assert estimate is not None
        assert abs(estimate - truth) <= RELATIVE_ACCURACY * (1 + 1e-9) * truth, (name, estimate)


def assert_run_figures(group: dict[str, Any], runs: list[Generated]) -> None:
    n = len(runs)
    tools = [tool for run in runs for tool in run.tools]
    errors = [tool for tool in tools if tool[2] is not None]
    retryable = [tool for tool in errors if is_retryable(tool[2])]
    assert group["runs"] == n
    assert group["task_success_rate"] == pytest.approx(
        sum(r.outcome == "success" for r in runs) / n
    )
    assert group["error_rate"] == pytest.approx(sum(r.outcome == "failure" for r in runs) / n)
    assert group["escalation_rate"] == pytest.approx(
        sum(r.outcome == "escalated" for r in runs) / n
    )
    assert group["mean_input_tokens"] == pytest.approx(sum(r.tokens_in for r in runs) / n)
    assert group["mean_tokens"] == pytest.approx(sum(r.tokens_in + r.tokens_out for r in runs) / n)
    assert group["total_cost_usd"] == pytest.approx(sum(r.cost for r in runs))
    assert group["mean_cost_usd"] == pytest.approx(sum(r.cost for r in runs) / n)
    assert group["tool_calls"] == len(tools)
    assert group["tool_error_rate"] == pytest.approx(len(errors) / len(tools))
    assert group["tool_errors_retryable"] == len(retryable)
    assert group["tool_errors_non_retryable"] == len(errors) - len(retryable)
    assert_latency(group["latency_ms"], [r.duration_ms for r in runs])


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[Api]:
    with Api(live_server) as client:
        yield client


@pytest.fixture
def generated(api: Api) -> list[Generated]:
    base_ms = (int(time.time() * 1000) // HOUR_MS - 5) * HOUR_MS
    made, spans = generate(np.random.default_rng(42), 240, base_ms)
    for start in range(0, len(spans), 400):
        assert api.export(request(*spans[start : start + 400])).status_code == 200
    # A second agent that must not leak into the planner's figures.
    other = agent_run("other", version="v1", duration_ms=5.0, tools=[("search", "503")] * 3)
    assert api.export(request(*other.spans)).status_code == 200
    return made


def by(runs: list[Generated], key: str) -> dict[str, list[Generated]]:
    groups: dict[str, list[Generated]] = defaultdict(list)
    for run in runs:
        groups[getattr(run, key)].append(run)
    return groups


def test_metrics_by_version_match_figures_computed_from_the_runs(
    api: Api, generated: list[Generated]
) -> None:
    body = api.json("metrics", agent="planner", group_by="version")
    assert body["group_by"] == ["version"]
    assert body["latency_relative_accuracy"] == RELATIVE_ACCURACY
    groups = {group["group"]["version"]: group for group in body["groups"]}
    expected = by(generated, "version")
    assert set(groups) == set(expected) == {"v1", "v2"}
    for version, runs in expected.items():
        assert_run_figures(groups[version], runs)


def test_metrics_by_variant_and_version_together(api: Api, generated: list[Generated]) -> None:
    body = api.json("metrics", agent="planner", group_by="variant,version")
    assert body["group_by"] == ["variant", "version"]
    cells: dict[tuple[str, str], list[Generated]] = defaultdict(list)
    for run in generated:
        cells[(run.variant, run.version)].append(run)
    reported = {(g["group"]["variant"], g["group"]["version"]): g for g in body["groups"]}
    assert set(reported) == set(cells)
    for cell, runs in cells.items():
        assert_run_figures(reported[cell], runs)


def test_metrics_without_an_agent_are_grouped_by_agent(
    api: Api, generated: list[Generated]
) -> None:
    body = api.json("metrics")
    assert body["group_by"] == ["agent"]
    groups = {group["group"]["agent"]: group for group in body["groups"]}
    assert set(groups) == {"planner", "other"}
    assert_run_figures(groups["planner"], generated)
    assert (groups["other"]["runs"], groups["other"]["tool_errors_retryable"]) == (1, 3)


def test_metrics_by_tool_report_each_tools_calls_errors_and_latency(
    api: Api, generated: list[Generated]
) -> None:
    body = api.json("metrics", agent="planner", group_by="tool")
    groups = {group["group"]["tool"]: group for group in body["groups"]}
    calls: dict[str, list[tuple[str, float, str | None]]] = defaultdict(list)
    for run in generated:
        for tool in run.tools:
            calls[tool[0]].append(tool)
    assert set(groups) == set(calls) == {"search", "crm", "calc"}
    for name, tool_calls in calls.items():
        errors = [t for t in tool_calls if t[2] is not None]
        retryable = [t for t in errors if is_retryable(t[2])]
        group = groups[name]
        assert group["tool_calls"] == len(tool_calls), name
        assert group["tool_error_rate"] == pytest.approx(len(errors) / len(tool_calls)), name
        assert group["tool_errors_retryable"] == len(retryable), name
        assert group["tool_errors_non_retryable"] == len(errors) - len(retryable), name
        assert_latency(group["latency_ms"], [t[1] for t in tool_calls])


def test_metrics_by_time_bucket(api: Api, generated: list[Generated]) -> None:
    body = api.json("metrics", agent="planner", group_by="time", bucket="1h")
    assert body["bucket_ms"] == HOUR_MS
    expected: dict[int, list[Generated]] = defaultdict(list)
    for run in generated:
        expected[run.started_ms // HOUR_MS * HOUR_MS].append(run)
    reported = {group["group"]["time"]: group for group in body["groups"]}
    assert set(reported) == set(expected)
    assert [g["group"]["time"] for g in body["groups"]] == sorted(expected)
    for bucket, runs in expected.items():
        assert_run_figures(reported[bucket], runs)


def test_metrics_filters_narrow_the_runs(api: Api, generated: list[Generated]) -> None:
    body = api.json("metrics", agent="planner", variant="treatment", group_by="version")
    treatment = [run for run in generated if run.variant == "treatment"]
    groups = {group["group"]["version"]: group for group in body["groups"]}
    for version, runs in by(treatment, "version").items():
        assert_run_figures(groups[version], runs)
    assert api.json("metrics", agent="planner", version="v9")["groups"] == []


def test_unknown_grouping_and_bad_bucket_are_400_naming_the_choices(api: Api) -> None:
    response = api.get("/api/v1/metrics", group_by="colour")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "cannot group by 'colour'; choose from agent, version, variant, experiment, tool, time"
    )
    bucket = api.get("/api/v1/metrics", group_by="time", bucket="fortnight")
    assert bucket.status_code == 400
    assert "invalid duration 'fortnight'" in bucket.json()["error"]["message"]

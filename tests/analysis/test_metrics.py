"""Run and tool aggregates: the figures they report, and merging in any order or grouping."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict
from functools import reduce
from operator import add
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop.analysis.metrics import RunAggregate, ToolAggregate, parse_duration_ms
from tuneloop.analysis.quantiles import bucket_of
from tuneloop.errors import InvalidInputError


def test_run_summary_reports_rates_means_and_tool_split() -> None:
    aggregate = RunAggregate(
        runs=8,
        successes=5,
        failures=2,
        escalations=1,
        errors=2,
        input_tokens=8000,
        output_tokens=800,
        cost_usd=0.4,
        tool_calls=20,
        tool_errors=5,
        tool_errors_retryable=3,
        latency=Counter({bucket_of(100.0): 4, bucket_of(1000.0): 4}),
    )
    summary = aggregate.summary()
    assert summary["runs"] == 8
    assert summary["task_success_rate"] == 5 / 8
    assert summary["failure_rate"] == 2 / 8
    assert summary["error_rate"] == 2 / 8
    assert summary["escalation_rate"] == 1 / 8
    assert summary["mean_input_tokens"] == 1000
    assert summary["mean_output_tokens"] == 100
    assert summary["mean_tokens"] == 1100
    assert summary["mean_cost_usd"] == pytest.approx(0.05)
    assert summary["total_cost_usd"] == pytest.approx(0.4)
    assert summary["tool_calls"] == 20
    assert summary["tool_error_rate"] == 0.25
    assert (summary["tool_errors_retryable"], summary["tool_errors_non_retryable"]) == (3, 2)
    assert summary["latency_ms"]["p50"] == pytest.approx(100.0, rel=0.01)
    assert summary["latency_ms"]["p99"] == pytest.approx(1000.0, rel=0.01)


def test_empty_aggregates_report_no_rates_rather_than_zero() -> None:
    summary = RunAggregate().summary()
    assert summary["runs"] == 0
    assert summary["task_success_rate"] is None
    assert summary["tool_error_rate"] is None
    assert summary["latency_ms"] == {"p50": None, "p90": None, "p95": None, "p99": None}
    tools = ToolAggregate().summary()
    assert tools["tool_calls"] == 0
    assert tools["mean_retries"] is None


def test_tool_summary() -> None:
    summary = ToolAggregate(
        calls=10, errors=4, errors_retryable=1, retries=5, latency=Counter({1: 10})
    ).summary()
    assert summary["tool_calls"] == 10
    assert summary["tool_error_rate"] == 0.4
    assert (summary["tool_errors_retryable"], summary["tool_errors_non_retryable"]) == (1, 3)
    assert summary["mean_retries"] == 0.5


_count = st.integers(0, 10_000)
_latency = st.dictionaries(st.integers(-700, 2000), st.integers(1, 50), max_size=6).map(Counter)
_run_aggregates = st.builds(
    RunAggregate,
    runs=_count,
    successes=_count,
    failures=_count,
    escalations=_count,
    errors=_count,
    input_tokens=st.integers(0, 10**9),
    output_tokens=st.integers(0, 10**9),
    cost_usd=st.floats(0, 1e4),
    tool_calls=_count,
    tool_errors=_count,
    tool_errors_retryable=_count,
    latency=_latency,
)
_tool_aggregates = st.builds(
    ToolAggregate,
    calls=_count,
    errors=_count,
    errors_retryable=_count,
    retries=_count,
    latency=_latency,
)


def _same(left: Any, right: Any) -> None:
    """Equal in every field; cost is a float sum, equal up to rounding."""
    left_fields, right_fields = asdict(left), asdict(right)
    left_cost = left_fields.pop("cost_usd", 0.0)
    right_cost = right_fields.pop("cost_usd", 0.0)
    assert left_fields == right_fields
    assert math.isclose(left_cost, right_cost, rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(_run_aggregates, _run_aggregates, _run_aggregates)
def test_run_aggregate_merge_is_associative(
    a: RunAggregate, b: RunAggregate, c: RunAggregate
) -> None:
    _same((a + b) + c, a + (b + c))


@settings(max_examples=200, deadline=None)
@given(st.lists(_run_aggregates, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_run_aggregate_merge_is_order_independent(parts: list[RunAggregate], rnd: Any) -> None:
    shuffled = list(parts)
    rnd.shuffle(shuffled)
    merged = reduce(add, parts)
    _same(merged, reduce(add, shuffled))
    assert merged.runs == sum(p.runs for p in parts)
    assert sum(merged.latency.values()) == sum(sum(p.latency.values()) for p in parts)
    summary, other = merged.summary(), reduce(add, shuffled).summary()
    assert summary["latency_ms"] == other["latency_ms"]
    assert summary["task_success_rate"] == other["task_success_rate"]


@settings(max_examples=200, deadline=None)
@given(_tool_aggregates, _tool_aggregates, _tool_aggregates)
def test_tool_aggregate_merge_is_associative(
    a: ToolAggregate, b: ToolAggregate, c: ToolAggregate
) -> None:
    _same((a + b) + c, a + (b + c))


@settings(max_examples=200, deadline=None)
@given(st.lists(_tool_aggregates, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_tool_aggregate_merge_is_order_independent(parts: list[ToolAggregate], rnd: Any) -> None:
    shuffled = list(parts)
    rnd.shuffle(shuffled)
    merged = reduce(add, parts)
    _same(merged, reduce(add, shuffled))
    assert merged.summary() == reduce(add, shuffled).summary()


def test_merging_leaves_its_operands_unchanged() -> None:
    a = RunAggregate(runs=1, latency=Counter({5: 1}))
    b = RunAggregate(runs=2, latency=Counter({5: 2}))
    merged = a + b
    assert (merged.runs, merged.latency) == (3, Counter({5: 3}))
    assert (a.runs, a.latency, b.runs, b.latency) == (1, Counter({5: 1}), 2, Counter({5: 2}))


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("30s", 30_000),
        ("5m", 300_000),
        ("24h", 86_400_000),
        ("7d", 604_800_000),
        ("2w", 1_209_600_000),
        ("1500", 1500),
        (" 1H ", 3_600_000),
    ],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "0h", "-5m", "1.5h", "h", "5 minutes", "10y"])
def test_parse_duration_refuses_nonsense(text: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid duration"):
        parse_duration_ms(text)

"""Per-unit sums from run facts written by the real ingest path, on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.otlp_factory import Run, agent_run, request
from tuneloop import semconv as sc
from tuneloop.analysis.quantiles import bucket_of, bucket_value
from tuneloop.settings import DEFAULT_PRICES
from tuneloop.stats import MeanSummary, QuantileSummary, RatioSummary
from tuneloop.store.experiment_reads import read_summaries, read_units
from tuneloop.store.ingest import prepare
from tuneloop.telemetry.normalize import Normalizer
from tuneloop.telemetry.pricing import PriceTable

PROJECT = "acme"
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
HOUR = 3_600_000
GPT_4O = DEFAULT_PRICES["gpt-4o"]


def usd(tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * GPT_4O.input_per_1k + tokens_out * GPT_4O.output_per_1k) / 1000


def run(
    at_ms: int,
    variant: str | None,
    unit: str | None,
    *,
    experiment: str = "exp-1",
    agent: str = "support",
    session: str | None = None,
    **kwargs: Any,
) -> Run:
    attrs = {}
    if unit is not None:
        attrs[sc.TL_UNIT_ID] = unit
    if session is not None:
        attrs[sc.TL_SESSION_ID] = session
    return agent_run(
        agent,
        start_ns=at_ms * 1_000_000,
        experiment=experiment,
        variant=variant,
        attrs=attrs,
        **kwargs,
    )


@pytest.fixture
def ingest(store: Any) -> Iterator[Any]:
    normalizer = Normalizer(prices=PriceTable(DEFAULT_PRICES))
    store.writer.start()

    def write(*runs: Run) -> None:
        spans = [s for r in runs for s in r.spans]
        batch = normalizer.normalize(request(*spans, service="svc"))
        store.writer.submit(prepare(PROJECT, batch.spans)).result(30)

    yield write
    store.writer.stop()


@pytest.fixture
def traffic(store: Any, ingest: Any) -> dict[str, Run]:
    runs = {
        "u1a": run(
            T0 + HOUR,
            "control",
            "u1",
            outcome="success",
            duration_ms=100.0,
            llm=[("gpt-4o", 1000, 200)],
            tools=["lookup"],
            session="s1",
        ),
        "u1b": run(
            T0 + 30 * HOUR,
            "control",
            "u1",
            outcome="failure",
            error="boom",
            duration_ms=300.0,
            tools=[("lookup", "timeout")],
            session="s2",
        ),
        "u2": run(T0 + 2 * HOUR, "control", "u2", outcome="escalated", duration_ms=50.0),
        "u3": run(
            T0 + 3 * HOUR,
            "treatment",
            "u3",
            outcome="success",
            duration_ms=80.0,
            llm=[("gpt-4o", 500, 100)],
        ),
        "u4": run(T0 + 5 * HOUR, "treatment", "u4", outcome="success", duration_ms=90.0),
        "u5c": run(T0 + HOUR, "control", "u5", outcome="success", duration_ms=70.0),
        "u5t": run(T0 + 2 * HOUR, "treatment", "u5", outcome="success", duration_ms=60.0),
        "anonymous": run(T0 + 4 * HOUR, "treatment", None, outcome="success"),
        "other_experiment": run(T0 + HOUR, "control", "u6", experiment="exp-0"),
        "late": run(T0 + 50 * HOUR, "control", "u1", outcome="failure"),
        "other_agent": run(T0 + HOUR, "control", "u7", agent="billing"),
    }
    ingest(*runs.values())
    now = T0 + 60 * HOUR
    store.add_feedback(
        PROJECT,
        trace_id=runs["u3"].hex,
        name="thumbs",
        value=1.0,
        comment=None,
        key_id="k",
        now_ms=now,
    )
    store.add_feedback(
        PROJECT,
        trace_id=runs["u3"].hex,
        name="thumbs",
        value=0.0,
        comment=None,
        key_id="k",
        now_ms=now,
    )
    store.add_feedback(
        PROJECT,
        trace_id=runs["u1a"].hex,
        name="stars",
        value=5.0,
        comment=None,
        key_id="k",
        now_ms=now,
    )
    return runs


def window(**kwargs: Any) -> dict[str, Any]:
    return {"since_ms": T0, "until_ms": T0 + 48 * HOUR, "experiment": "exp-1", **kwargs}


def test_units_sum_their_runs_in_the_window_and_shared_units_are_left_out(
    store: Any, traffic: dict[str, Run]
) -> None:
    table = read_units(
        store.engine,
        PROJECT,
        "support",
        by="variant",
        groups=["control", "treatment"],
        feedback_names=["thumbs"],
        **window(),
    )
    assert table.groups == ("control", "treatment")
    assert table.units == ("u1", "u2", "u3", "u4")
    assert table.group.tolist() == [0, 0, 1, 1]
    assert table.counts() == (2, 2)
    assert (table.excluded_units, table.runs_without_unit) == (1, 1)
    assert table.first_ms.tolist() == [T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR, T0 + 5 * HOUR]
    expected = {
        "runs": [2, 1, 1, 1],
        "successes": [1, 0, 1, 1],
        "errors": [1, 0, 0, 0],
        "escalations": [0, 1, 0, 0],
        "timed_runs": [2, 1, 1, 1],
        "duration_ms": [400, 50, 80, 90],
        "tokens": [1200, 0, 600, 0],
        "tool_calls": [2, 0, 0, 0],
        "tool_errors": [1, 0, 0, 0],
        "feedback:thumbs:sum": [0, 0, 1, 0],
        "feedback:thumbs:count": [0, 0, 2, 0],
    }
    for name, values in expected.items():
        assert table.columns[name].tolist() == pytest.approx(values), name
    assert table.columns["cost_usd"].tolist() == pytest.approx(
        [usd(1000, 200), 0.0, usd(500, 100), 0.0]
    )
    # Latency quantiles are over runs, with their hour: u5's runs count there.
    control = table.latency.summary(0)
    assert control == QuantileSummary.from_counts(
        {bucket_value(bucket_of(ms)): 1 for ms in (100.0, 300.0, 50.0, 70.0)}
    )
    assert table.latency.summary(0, before_ms=T0 + 2 * HOUR).n == 2


def test_sessions_are_units_and_summaries_by_version(store: Any, ingest: Any) -> None:
    ingest(
        run(T0 + HOUR, None, "u1", session="s1", version="v1", outcome="success"),
        run(T0 + HOUR, None, "u1", session="s1", version="v1", outcome="failure"),
        run(T0 + 2 * HOUR, None, "u1", session="s2", version="v1", outcome="success"),
        run(T0 + 2 * HOUR, None, "u2", version="v2", outcome="success"),
    )
    sessions = read_units(
        store.engine,
        PROJECT,
        "support",
        by="version",
        groups=["v1", "v2"],
        unit_type="session",
        since_ms=T0,
        until_ms=T0 + 3 * HOUR,
    )
    assert sessions.units == ("s1", "s2", "u2")
    assert sessions.columns["runs"].tolist() == [2, 1, 1]
    found = read_summaries(
        store.engine,
        PROJECT,
        "support",
        by="version",
        groups=["v1", "v2"],
        since_ms=T0,
        until_ms=T0 + 3 * HOUR,
        metrics=["task_success", "runs_per_unit"],
    )
    assert found.units == (1, 1)
    assert found.summary("v1", "task_success") == RatioSummary.from_values([2.0], [3.0])
    assert found.summary("v2", "runs_per_unit") == MeanSummary.from_values([1.0])
    empty = read_units(
        store.engine,
        PROJECT,
        "support",
        by="version",
        groups=["v9"],
        since_ms=T0,
        until_ms=T0 + 3 * HOUR,
    )
    assert (empty.size, empty.counts()) == (0, (0,))
    assert np.array_equal(empty.columns["runs"], np.zeros(0))

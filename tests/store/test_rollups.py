"""Hourly rollups always say what the fact rows say.

Metrics read whole hours from ``run_rollups`` / ``tool_rollups`` and the partial hours
at a window's edges from the fact rows. Whatever order spans arrive in (children
first, root last, retried, a root replaced), the rollups must equal a scan of the facts.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from tests.otlp_factory import new_span_id, span
from tests.store.test_tool_metrics import (
    BASE_MS,
    GROUPINGS,
    HOUR_MS,
    ORDERS,
    PROJECT,
    Send,
    workload,
)
from tuneloop import semconv as sc
from tuneloop.analysis.metrics import GroupBy, RunAggregate
from tuneloop.settings import DEFAULT_PRICES
from tuneloop.store import aggregates
from tuneloop.store.engine import _MIGRATIONS as MIGRATIONS
from tuneloop.store.engine import migrate
from tuneloop.store.ingest import write_spans
from tuneloop.store.queries import RunFilter
from tuneloop.store.schema import run_rollups, tool_rollups
from tuneloop.telemetry.normalize import Normalizer
from tuneloop.telemetry.pricing import PriceTable

RUN_GROUPINGS: list[tuple[GroupBy, ...]] = [
    ("agent",),
    ("agent", "version"),
    ("version", "variant"),
    ("experiment", "variant"),
    ("agent", "time"),
    (),
]
WINDOWS = [
    RunFilter(),
    RunFilter(agent="support"),
    RunFilter(agent="billing", version="v2"),
    RunFilter(variant="control", experiment="prompt"),
    # Whole hours only, partial hours only, and both.
    RunFilter(since_ms=BASE_MS + HOUR_MS, until_ms=BASE_MS + 2 * HOUR_MS),
    RunFilter(since_ms=BASE_MS + 10, until_ms=BASE_MS + HOUR_MS - 5),
    RunFilter(agent="support", since_ms=BASE_MS + HOUR_MS - 3, until_ms=BASE_MS + 2 * HOUR_MS + 7),
    RunFilter(since_ms=BASE_MS + HOUR_MS - 1),
    RunFilter(until_ms=BASE_MS + 2 * HOUR_MS - 1),
]


@pytest.fixture
def send(store: Any) -> Iterator[Send]:
    normalizer = Normalizer(prices=PriceTable(DEFAULT_PRICES))

    def write(*spans: Any) -> None:
        batch = normalizer.normalize(request_of(spans))
        with store.engine.begin() as conn:
            write_spans(conn, PROJECT, batch.spans)

    yield write


def request_of(spans: tuple[Any, ...]) -> Any:
    from tests.otlp_factory import request

    return request(*spans, service="svc")


def facts_runs(store: Any, where: RunFilter, group_by: tuple[GroupBy, ...]) -> dict[Any, Any]:
    query = aggregates._run_facts_query(PROJECT, where, group_by, HOUR_MS, store.dialect)
    with store.engine.connect() as conn:
        return aggregates._sum_runs(conn.execute(query))


def facts_tools(store: Any, where: RunFilter, group_by: tuple[GroupBy, ...]) -> dict[Any, Any]:
    query = aggregates._tool_facts_query(PROJECT, where, group_by, HOUR_MS, store.dialect)
    with store.engine.connect() as conn:
        return aggregates._sum_tools(conn.execute(query))


def same(got: dict[Any, RunAggregate], want: dict[Any, RunAggregate]) -> bool:
    """Equal, with cost compared to float rounding (rollups add and subtract it)."""
    if got.keys() != want.keys():
        return False
    for key, a in got.items():
        b = want[key]
        if abs(a.cost_usd - b.cost_usd) > 1e-9 * max(1.0, abs(b.cost_usd)):
            return False
        if (a.runs, a.successes, a.failures, a.escalations, a.errors, a.input_tokens) != (
            b.runs, b.successes, b.failures, b.escalations, b.errors, b.input_tokens,
        ) or (a.output_tokens, a.tool_calls, a.tool_errors, a.tool_errors_retryable, a.latency) != (
            b.output_tokens, b.tool_calls, b.tool_errors, b.tool_errors_retryable, b.latency,
        ):  # fmt: skip
            return False
    return True


def assert_rollups_match_facts(store: Any) -> None:
    for where in WINDOWS:
        for group_by in RUN_GROUPINGS:
            got = store.queries.run_aggregates(PROJECT, where, group_by, bucket_ms=HOUR_MS)
            assert same(got, facts_runs(store, where, group_by)), (where, group_by)
        for group_by in GROUPINGS:
            got_tools = store.queries.tool_aggregates(PROJECT, where, group_by, bucket_ms=HOUR_MS)
            assert got_tools == facts_tools(store, where, group_by), (where, group_by)


@pytest.mark.parametrize("order", ORDERS)
def test_rollups_match_the_facts_whichever_order_spans_arrive_in(
    store: Any, send: Send, order: str
) -> None:
    made = workload(seed=3, count=50)
    for run in made:
        ORDERS[order](send, run)
    everything = store.queries.run_aggregates(PROJECT, RunFilter(), (), bucket_ms=HOUR_MS)
    assert everything[()].runs == 50
    assert everything[()].input_tokens == 50 * 100
    assert_rollups_match_facts(store)


def test_spans_shuffled_across_requests_and_retried_still_match(store: Any, send: Send) -> None:
    rng = random.Random(5)
    made = workload(seed=9, count=40)
    pieces = [s for run in made for s in run.spans]
    rng.shuffle(pieces)
    for start in range(0, len(pieces), 7):
        send(*pieces[start : start + 7])
    # An exporter retrying a third of the requests must not count anything twice.
    for start in range(0, len(pieces), 21):
        send(*pieces[start : start + 7])
    assert store.queries.run_aggregates(PROJECT, RunFilter(), (), bucket_ms=HOUR_MS)[()].runs == 40
    assert_rollups_match_facts(store)


def test_a_replaced_root_moves_the_runs_contribution(store: Any, send: Send) -> None:
    made = workload(seed=1, count=5)
    for run in made:
        send(*run.spans)
    replaced = made[0]
    send(
        span(
            "invoke_agent triage",
            trace_id=replaced.trace_id,
            span_id=new_span_id(),
            start_ns=BASE_MS * 1_000_000 + 5,
            attrs={sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: "triage"},
        )
    )
    by_agent = store.queries.run_aggregates(PROJECT, RunFilter(), ("agent",), bucket_ms=HOUR_MS)
    assert by_agent[("triage",)].runs == 1
    assert sum(a.runs for a in by_agent.values()) == 5
    assert_rollups_match_facts(store)


def test_rollup_rows_are_few_and_never_negative(store: Any, send: Send) -> None:
    for run in workload(seed=2, count=60):
        ORDERS["root last"](send, run)
    with store.engine.connect() as conn:
        run_rows = conn.execute(sa.select(run_rollups)).all()
        tool_rows = conn.execute(sa.select(tool_rollups)).all()
    assert 0 < len(run_rows) <= 60
    assert all(row.runs >= 0 and row.tool_calls >= 0 for row in run_rows)
    assert all(row.calls >= 0 and row.errors <= row.calls for row in tool_rows)
    # Absent identities are stored as '' and read back as None.
    assert any(row.config_version == "" for row in run_rows)
    by_version = store.queries.run_aggregates(PROJECT, RunFilter(), ("version",), bucket_ms=HOUR_MS)
    assert (None,) in by_version and ("",) not in by_version


def test_upgrading_rolls_up_what_is_already_stored(store: Any, send: Send) -> None:
    made = workload(seed=4, count=30)
    for run in made:
        send(*run.spans)
    want_runs = store.queries.run_aggregates(
        PROJECT, RunFilter(), ("agent", "version"), bucket_ms=HOUR_MS
    )
    want_tools = store.queries.tool_aggregates(PROJECT, RunFilter(), ("tool",), bucket_ms=HOUR_MS)
    # As a database from before the rollups: empty them, then migrate down and up again.
    with store.engine.begin() as conn:
        conn.execute(run_rollups.delete())
        conn.execute(tool_rollups.delete())
    downgrade(store.engine, "0003")
    migrate(store.engine)
    got_runs = store.queries.run_aggregates(
        PROJECT, RunFilter(), ("agent", "version"), bucket_ms=HOUR_MS
    )
    assert same(got_runs, want_runs)
    assert (
        store.queries.tool_aggregates(PROJECT, RunFilter(), ("tool",), bucket_ms=HOUR_MS)
        == want_tools
    )


def downgrade(engine: sa.Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_time_buckets_shorter_than_an_hour_read_the_facts(store: Any, send: Send) -> None:
    for run in workload(seed=8, count=20):
        send(*run.spans)
    quarter = HOUR_MS // 4
    got = store.queries.run_aggregates(PROJECT, RunFilter(), ("time",), bucket_ms=quarter)
    query = aggregates._run_facts_query(PROJECT, RunFilter(), ("time",), quarter, store.dialect)
    with store.engine.connect() as conn:
        assert same(got, aggregates._sum_runs(conn.execute(query)))
    assert sum(a.runs for a in got.values()) == 20
    assert all(key[0] % quarter == 0 for key in got)

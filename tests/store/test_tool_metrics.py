"""Tool metrics read ``tool_calls`` alone: each row carries its run's identity.

Whatever order a run's spans arrive in, its tool calls end up with the identity its run
row has, and the query on tool_calls alone equals the join with ``runs``.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.otlp_factory import Run, agent_run, new_span_id, request, span
from tuneloop import semconv as sc
from tuneloop.analysis.metrics import GroupBy, ToolAggregate
from tuneloop.analysis.quantiles import bucket_of
from tuneloop.settings import DEFAULT_PRICES
from tuneloop.store.ingest import write_spans
from tuneloop.store.queries import RunFilter
from tuneloop.store.schema import runs, tool_calls
from tuneloop.telemetry.model import OUTCOMES
from tuneloop.telemetry.normalize import Normalizer, is_retryable
from tuneloop.telemetry.pricing import PriceTable

PROJECT = "acme"
HOUR_MS = 3_600_000
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ALL_TIME = 10**15

Send = Callable[..., None]


@pytest.fixture
def send(store: Any) -> Iterator[Send]:
    """Normalize spans and write them as one request, in one transaction."""
    normalizer = Normalizer(prices=PriceTable(DEFAULT_PRICES))

    def write(*spans: Span) -> None:
        batch = normalizer.normalize(request(*spans, service="svc"))
        assert batch.rejected.count == 0
        with store.engine.begin() as conn:
            write_spans(conn, PROJECT, batch.spans)

    yield write


def workload(seed: int, count: int = 40) -> list[Run]:
    """Runs of two agents over three hours, some starting just before an hour ends."""
    rng = random.Random(seed)
    made = []
    for i in range(count):
        variant = rng.choice(["control", "treatment", None])
        tools: list[str | tuple[str, str]] = [
            rng.choice(["search", "crm", "calc"])
            if rng.random() < 0.75
            else (rng.choice(["search", "crm"]), rng.choice(["503", "ValueError"]))
            for _ in range(rng.randrange(4))
        ]
        hour = BASE_MS + (i % 3) * HOUR_MS
        start_ms = hour + HOUR_MS - 2 if i % 5 == 0 else hour + rng.randrange(HOUR_MS - 10_000)
        made.append(
            agent_run(
                rng.choice(["support", "billing"]),
                start_ns=start_ms * 1_000_000,
                version=rng.choice(["v1", "v2", None]),
                variant=variant,
                experiment=None if variant is None else "prompt",
                outcome=rng.choice(OUTCOMES),
                llm=[("gpt-4o", 100, 10)],
                tools=tools,
                tool_ms=round(rng.lognormvariate(3.0, 1.0), 3),
            )
        )
    return made


def tools_of(run: Run) -> list[tuple[str, str | None]]:
    """(tool, error type) of each tool call in the run."""
    out = []
    for child in run.children:
        attrs = {kv.key: kv.value.string_value for kv in child.attributes}
        if attrs.get(sc.GEN_AI_OPERATION_NAME) == sc.OP_EXECUTE_TOOL:
            out.append((attrs[sc.GEN_AI_TOOL_NAME], attrs.get(sc.ERROR_TYPE)))
    return out


def expected_by_tool(made: list[Run], agent: str) -> dict[tuple[Any, ...], ToolAggregate]:
    """Tool aggregates tallied from the generated runs."""
    out: dict[tuple[Any, ...], ToolAggregate] = defaultdict(ToolAggregate)
    for run in made:
        root = {kv.key: kv.value.string_value for kv in run.root.attributes}
        if root[sc.GEN_AI_AGENT_NAME] != agent:
            continue
        for (name, error_type), tool_span in zip(tools_of(run), run.children[1:], strict=True):
            duration_ms = (tool_span.end_time_unix_nano - tool_span.start_time_unix_nano) / 1e6
            out[(name,)] += ToolAggregate(
                calls=1,
                errors=error_type is not None,
                errors_retryable=is_retryable(error_type),
                latency=Counter({bucket_of(duration_ms): 1}),
            )
    return dict(out)


def identities(store: Any) -> list[tuple[Any, ...]]:
    """Each stored tool call's identity next to its run's (None: the run has no root)."""
    run_identity = [runs.c.agent, runs.c.config_version, runs.c.experiment, runs.c.variant]
    tool_identity = [
        tool_calls.c.agent,
        tool_calls.c.config_version,
        tool_calls.c.experiment,
        tool_calls.c.variant,
    ]
    query = sa.select(runs.c.has_root, *run_identity, *tool_identity).select_from(
        tool_calls.join(
            runs,
            sa.and_(
                runs.c.project_id == tool_calls.c.project_id,
                runs.c.trace_id == tool_calls.c.trace_id,
            ),
        )
    )
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def assert_tools_carry_their_runs_identity(store: Any, *, calls: int) -> None:
    rows = identities(store)
    assert len(rows) == calls
    for has_root, *both in rows:
        run_side, tool_side = both[:4], both[4:]
        assert tool_side == (run_side if has_root else [None] * 4)


ORDERS: dict[str, Callable[[Send, Run], None]] = {
    "root first": lambda send, run: (send(run.root), send(*run.children)),
    "together": lambda send, run: send(*run.spans),
    "root last": lambda send, run: (send(*run.children), send(run.root)),
    # The model call and first tool call, the root, then the other tool calls.
    "root between": lambda send, run: (
        send(*run.children[:2]),
        send(run.root),
        run.children[2:] and send(*run.children[2:]),
    ),
}


@pytest.mark.parametrize("order", ORDERS)
def test_tool_metrics_are_the_same_whichever_order_the_root_arrives_in(
    store: Any, send: Send, order: str
) -> None:
    made = workload(seed=7)
    for run in made:
        ORDERS[order](send, run)
    calls = sum(len(tools_of(run)) for run in made)
    assert_tools_carry_their_runs_identity(store, calls=calls)
    for agent in ("support", "billing"):
        got = store.queries.tool_aggregates(
            PROJECT, RunFilter(agent=agent), ("tool",), bucket_ms=HOUR_MS
        )
        assert got == expected_by_tool(made, agent)
        assert sum(a.calls for a in got.values()) > 10


GROUPINGS: list[tuple[GroupBy, ...]] = [
    ("tool",),
    ("agent", "tool"),
    ("version", "tool"),
    ("tool", "variant"),
    ("experiment", "variant", "tool"),
    ("tool", "time"),
    ("agent",),
    ("version", "time"),
]
FILTERS = [
    RunFilter(),
    RunFilter(agent="support"),
    RunFilter(agent="support", version="v1"),
    RunFilter(agent="billing", variant="control", experiment="prompt"),
    RunFilter(since_ms=BASE_MS + HOUR_MS, until_ms=BASE_MS + 2 * HOUR_MS),
    RunFilter(agent="support", since_ms=BASE_MS + HOUR_MS - 1),
]


def test_tool_calls_alone_give_what_the_join_with_runs_gives(store: Any, send: Send) -> None:
    made = workload(seed=11, count=60)
    for run in made:
        send(*run.spans)
    # A run whose root never came: its tool calls count nowhere, on either path.
    rootless = agent_run("support", start_ns=(BASE_MS + 60_000) * 1_000_000, tools=["crm"] * 3)
    send(*rootless.children)
    assert len(identities(store)) == sum(len(tools_of(run)) for run in made) + 3
    for where in FILTERS:
        for group_by in GROUPINGS:
            alone = store.queries.tool_aggregates(PROJECT, where, group_by, bucket_ms=HOUR_MS)
            # An outcome filter needs the run row: the join. Each run has one outcome.
            joined: dict[tuple[Any, ...], ToolAggregate] = defaultdict(ToolAggregate)
            for outcome in OUTCOMES:
                part = store.queries.tool_aggregates(
                    PROJECT, replace(where, outcome=outcome), group_by, bucket_ms=HOUR_MS
                )
                for key, aggregate in part.items():
                    joined[key] += aggregate
            assert alone == dict(joined), (where, group_by)
            assert alone, (where, group_by)


def test_time_is_the_tool_calls_own_start(store: Any, send: Send) -> None:
    # The run starts 1 ms before the hour ends; its tool calls start in the next hour.
    run = agent_run(
        "support", start_ns=(BASE_MS + HOUR_MS - 1) * 1_000_000, tools=["search", "crm"]
    )
    send(*run.spans)
    by_time = store.queries.tool_aggregates(
        PROJECT, RunFilter(agent="support"), ("tool", "time"), bucket_ms=HOUR_MS
    )
    assert {key: a.calls for key, a in by_time.items()} == {
        ("search", BASE_MS + HOUR_MS): 1,
        ("crm", BASE_MS + HOUR_MS): 1,
    }
    for outcome in (None, "success"):
        where = RunFilter(agent="support", outcome=outcome, until_ms=BASE_MS + HOUR_MS)
        assert store.queries.tool_aggregates(PROJECT, where, ("tool",), bucket_ms=HOUR_MS) == {}


def test_a_replaced_root_restamps_the_runs_tool_calls(store: Any, send: Send) -> None:
    run = agent_run("support", version="v1", tools=["search", "crm"])
    send(*run.spans)
    second_root = span(
        "invoke_agent billing",
        trace_id=run.trace_id,
        span_id=new_span_id(),
        attrs={sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: "billing"},
    )
    send(second_root)
    assert (
        identities(store) == [(True, "billing", None, None, None, "billing", None, None, None)] * 2
    )
    everyone = store.queries.tool_aggregates(PROJECT, RunFilter(), ("agent",), bucket_ms=HOUR_MS)
    assert {key: a.calls for key, a in everyone.items()} == {("billing",): 2}


def test_a_retried_root_does_not_restamp_or_double_count(store: Any, send: Send) -> None:
    run = agent_run("support", version="v1", tools=["search"])
    send(*run.children)
    send(run.root)
    send(*run.spans)  # the exporter retries the whole run
    got = store.queries.tool_aggregates(
        PROJECT, RunFilter(agent="support"), ("version", "tool"), bucket_ms=HOUR_MS
    )
    assert {key: a.calls for key, a in got.items()} == {("v1", "search"): 1}
    assert identities(store) == [(True, "support", "v1", None, None, "support", "v1", None, None)]

"""Hourly and daily rollups always say what the fact rows say.

Metrics read whole days from the daily rollups, whole hours of partial days from the
hourly ones and the partial hours at a window's edges from the fact rows. Whatever
order spans arrive in (children first, root last, late after their day is rolled up,
retried, a root replaced), every tier must equal a scan of the facts.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.otlp_factory import Run, agent_run, new_span_id, span
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
from tuneloop.server.params import run_filter
from tuneloop.settings import DEFAULT_PRICES
from tuneloop.store import Store, aggregates
from tuneloop.store.aggregates import plan_window, usable_tiers
from tuneloop.store.engine import _MIGRATIONS as MIGRATIONS
from tuneloop.store.engine import create_store_engine, migrate
from tuneloop.store.ingest import write_spans
from tuneloop.store.queries import RunFilter
from tuneloop.store.rollups import DAILY, DAY_MS, HOURLY, RUN_SUMS, TIERS, TOOL_SUMS
from tuneloop.store.schema import run_rollups, run_rollups_daily, tool_rollups, tool_rollups_daily
from tuneloop.telemetry.model import OUTCOMES
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


def sender(store: Any) -> Send:
    """Normalize spans and write them as one request, in one transaction."""
    normalizer = Normalizer(prices=PriceTable(DEFAULT_PRICES))

    def write(*spans: Any) -> None:
        batch = normalizer.normalize(request_of(spans))
        with store.engine.begin() as conn:
            write_spans(conn, PROJECT, batch.spans)

    return write


@pytest.fixture
def send(store: Any) -> Iterator[Send]:
    yield sender(store)


def request_of(spans: tuple[Any, ...]) -> Any:
    from tests.otlp_factory import request

    return request(*spans, service="svc")


def facts_runs(
    store: Any, where: RunFilter, group_by: tuple[GroupBy, ...], bucket_ms: int = HOUR_MS
) -> dict[Any, Any]:
    query = aggregates._run_facts_query(PROJECT, where, group_by, bucket_ms, store.dialect)
    with store.engine.connect() as conn:
        return aggregates._sum_runs(conn.execute(query))


def facts_tools(
    store: Any, where: RunFilter, group_by: tuple[GroupBy, ...], bucket_ms: int = HOUR_MS
) -> dict[Any, Any]:
    query = aggregates._tool_facts_query(PROJECT, where, group_by, bucket_ms, store.dialect)
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


def assert_rollups_match_facts(
    store: Any, windows: list[RunFilter] = WINDOWS, buckets: tuple[int, ...] = (HOUR_MS,)
) -> None:
    """Every window and grouping; groupings by time once per time bucket in ``buckets``."""
    for where in windows:
        for i, bucket_ms in enumerate(buckets):
            for group_by in RUN_GROUPINGS:
                if i == 0 or "time" in group_by:
                    got = store.queries.run_aggregates(
                        PROJECT, where, group_by, bucket_ms=bucket_ms
                    )
                    want = facts_runs(store, where, group_by, bucket_ms)
                    assert same(got, want), (where, group_by, bucket_ms)
            for group_by in GROUPINGS:
                if i == 0 or "time" in group_by:
                    got_tools = store.queries.tool_aggregates(
                        PROJECT, where, group_by, bucket_ms=bucket_ms
                    )
                    want_tools = facts_tools(store, where, group_by, bucket_ms)
                    assert got_tools == want_tools, (where, group_by, bucket_ms)


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


def test_upgrading_rolls_up_what_is_already_stored(private_store: Any) -> None:
    send = sender(private_store)
    made = workload(seed=4, count=30)
    for run in made:
        send(*run.spans)
    queries = private_store.queries
    want_runs = queries.run_aggregates(
        PROJECT, RunFilter(), ("agent", "version"), bucket_ms=HOUR_MS
    )
    want_tools = queries.tool_aggregates(PROJECT, RunFilter(), ("tool",), bucket_ms=HOUR_MS)
    # As a database from before the rollups: empty them, then migrate down and up again.
    with private_store.engine.begin() as conn:
        conn.execute(run_rollups.delete())
        conn.execute(tool_rollups.delete())
    downgrade(private_store.engine, "0003")
    migrate(private_store.engine)
    got_runs = queries.run_aggregates(PROJECT, RunFilter(), ("agent", "version"), bucket_ms=HOUR_MS)
    assert same(got_runs, want_runs)
    assert queries.tool_aggregates(PROJECT, RunFilter(), ("tool",), bucket_ms=HOUR_MS) == want_tools
    assert_tiers_agree(private_store)


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


# --- tiers: whole days from the daily rollups ---------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def private_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store of its own (PostgreSQL: a private schema), free to migrate down."""
    if request.param == "sqlite":
        store = Store.open(f"sqlite:///{tmp_path / 'private.db'}")
        yield store
        store.close()
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"rollups_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = create_store_engine(
        url,
        connect_args={"options": f"-csearch_path={schema}"},
        json_serializer=lambda value: orjson.dumps(value).decode(),
        json_deserializer=orjson.loads,
    )
    try:
        migrate(engine)
        store = Store(engine)
        yield store
        store.close()
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def days_workload(seed: int, count: int = 45) -> list[Run]:
    """Runs of two agents over three days: some start 2 ms before midnight, so their tool
    calls (1, 2 and 3 ms after the run's start) fall on both sides of it."""
    rng = random.Random(seed)
    made = []
    for i in range(count):
        day = BASE_MS + (i % 3) * DAY_MS
        if i % 5 == 0:
            start_ms = day + DAY_MS - 2
        elif i % 5 == 1:
            start_ms = day + rng.randrange(24) * HOUR_MS + HOUR_MS - 2
        else:
            start_ms = day + rng.randrange(DAY_MS - 10_000)
        variant = rng.choice(["control", "treatment", None])
        made.append(
            agent_run(
                rng.choice(["support", "billing"]),
                start_ns=start_ms * 1_000_000,
                version=rng.choice(["v1", "v2", None]),
                variant=variant,
                experiment=None if variant is None else "prompt",
                outcome=rng.choice(OUTCOMES),
                llm=[("gpt-4o", 100, 10)],
                tools=[
                    rng.choice(["search", "crm"]) if rng.random() < 0.8 else ("crm", "503")
                    for _ in range(rng.randrange(4))
                ],
                tool_ms=round(rng.lognormvariate(3.0, 1.0), 3),
                duration_ms=round(rng.lognormvariate(6.0, 0.5), 3),
            )
        )
    return made


D = DAY_MS
DAY_WINDOWS = [
    RunFilter(),
    RunFilter(agent="support"),
    # One whole day; whole days with hours and partial hours on both sides.
    RunFilter(since_ms=BASE_MS + D, until_ms=BASE_MS + 2 * D),
    RunFilter(since_ms=BASE_MS + D - HOUR_MS - 5, until_ms=BASE_MS + 2 * D + HOUR_MS + 7),
    RunFilter(agent="billing", since_ms=BASE_MS + D - 3, until_ms=BASE_MS + 3 * D - 1),
    # Across midnight without a whole day; open at one end.
    RunFilter(since_ms=BASE_MS + 3 * HOUR_MS, until_ms=BASE_MS + D + 2 * HOUR_MS),
    RunFilter(variant="control", experiment="prompt", since_ms=BASE_MS + D - 1),
    RunFilter(version="v2", until_ms=BASE_MS + 2 * D + 1),
]


def tier_rows(store: Any, table: sa.Table, sums: tuple[str, ...], time: str) -> dict[Any, Any]:
    """Rows of a rollup table by (identity…, day, bucket), summed; all-zero rows left out."""
    keys = [c.name for c in table.columns if c.name not in sums and c.name != time]
    day = (table.c[time] // DAY_MS) * DAY_MS
    query = sa.select(*(table.c[k] for k in keys), day, *(table.c[n] for n in sums))
    found: dict[Any, list[float]] = defaultdict(lambda: [0.0] * len(sums))
    with store.engine.connect() as conn:
        for row in conn.execute(query):
            total = found[tuple(row[: len(keys) + 1])]
            for i, value in enumerate(row[len(keys) + 1 :]):
                total[i] += float(value)
    return {
        key: [round(v, 9) for v in values]
        for key, values in found.items()
        if any(abs(v) > 1e-9 for v in values)
    }


def assert_tiers_agree(store: Any) -> None:
    """Each daily row is the sum of its day's hourly rows, and no sum is negative."""
    for hourly, daily, sums in (
        (run_rollups, run_rollups_daily, RUN_SUMS),
        (tool_rollups, tool_rollups_daily, TOOL_SUMS),
    ):
        by_day = tier_rows(store, hourly, sums, "hour_ms")
        assert tier_rows(store, daily, sums, "day_ms") == by_day, daily.name
        assert by_day or daily is tool_rollups_daily, daily.name
        assert all(v >= -1e-9 for values in by_day.values() for v in values), daily.name


def test_a_window_reads_whole_days_then_whole_hours_then_facts() -> None:
    def plan(since: int | None, until: int | None, tiers: Any = TIERS) -> list[Any]:
        return [
            (None if part.tier is None else part.tier.period_ms, part.since_ms, part.until_ms)
            for part in plan_window(since, until, tiers)
        ]

    since, until = BASE_MS + D - HOUR_MS - 5, BASE_MS + 2 * D + HOUR_MS + 7
    assert plan(since, until) == [
        (None, since, BASE_MS + D - HOUR_MS),
        (HOUR_MS, BASE_MS + D - HOUR_MS, BASE_MS + D),
        (D, BASE_MS + D, BASE_MS + 2 * D),
        (HOUR_MS, BASE_MS + 2 * D, BASE_MS + 2 * D + HOUR_MS),
        (None, BASE_MS + 2 * D + HOUR_MS, until),
    ]
    # Open ends stay open: the unfinished day is in the daily rollups already.
    assert plan(None, None) == [(D, None, None)]
    assert plan(BASE_MS + 5, None) == [
        (None, BASE_MS + 5, BASE_MS + HOUR_MS),
        (HOUR_MS, BASE_MS + HOUR_MS, BASE_MS + D),
        (D, BASE_MS + D, None),
    ]
    assert plan(None, BASE_MS + HOUR_MS) == [
        (D, None, BASE_MS),
        (HOUR_MS, BASE_MS, BASE_MS + HOUR_MS),
    ]
    # Across midnight without a whole day, and inside one hour.
    assert plan(BASE_MS + D - 2 * HOUR_MS, BASE_MS + D + HOUR_MS) == [
        (HOUR_MS, BASE_MS + D - 2 * HOUR_MS, BASE_MS + D + HOUR_MS)
    ]
    assert plan(BASE_MS + 10, BASE_MS + 20) == [(None, BASE_MS + 10, BASE_MS + 20)]
    # Six-hour time buckets cannot come from days.
    assert plan(BASE_MS, BASE_MS + 3 * D, (HOURLY,)) == [(HOUR_MS, BASE_MS, BASE_MS + 3 * D)]


def test_tiers_answer_only_what_they_can() -> None:
    assert usable_tiers(RunFilter(), ("agent",), HOUR_MS) == (DAILY, HOURLY)
    assert usable_tiers(RunFilter(), ("time",), 2 * D) == (DAILY, HOURLY)
    assert usable_tiers(RunFilter(), ("time",), 6 * HOUR_MS) == (HOURLY,)
    assert usable_tiers(RunFilter(), ("time",), HOUR_MS // 4) == ()
    assert usable_tiers(RunFilter(outcome="success"), ("agent",), HOUR_MS) == ()
    assert usable_tiers(RunFilter(attributes=(("k", "v"),)), (), HOUR_MS) == ()


def test_every_tier_matches_the_facts_across_day_boundaries(store: Any, send: Send) -> None:
    made = days_workload(seed=21)
    for run in made:
        ORDERS["root last"](send, run)
    assert_tiers_agree(store)
    everything = store.queries.run_aggregates(PROJECT, RunFilter(), ("time",), bucket_ms=D)
    assert {key: a.runs for key, a in everything.items()} == {
        (BASE_MS,): 15,
        (BASE_MS + D,): 15,
        (BASE_MS + 2 * D,): 15,
    }
    assert_rollups_match_facts(store, DAY_WINDOWS, (HOUR_MS, 6 * HOUR_MS, D, 2 * D))


def test_late_spans_change_a_day_already_rolled_up(store: Any, send: Send) -> None:
    made = days_workload(seed=33, count=30)
    # The roots first: every day is rolled up before any model or tool call arrives.
    for run in made:
        send(run.root)
    before = store.queries.run_aggregates(PROJECT, RunFilter(), ("agent",), bucket_ms=HOUR_MS)
    assert sum(a.runs for a in before.values()) == 30
    assert sum(a.input_tokens for a in before.values()) == 0
    assert_tiers_agree(store)
    # Then the children, shuffled across requests, some of them retried.
    rng = random.Random(2)
    late = [child for run in made for child in run.children]
    rng.shuffle(late)
    for start in range(0, len(late), 5):
        send(*late[start : start + 5])
    send(*late[:5])
    after = store.queries.run_aggregates(PROJECT, RunFilter(), ("agent",), bucket_ms=HOUR_MS)
    assert sum(a.input_tokens for a in after.values()) == 30 * 100
    assert sum(a.tool_calls for a in after.values()) == sum(len(run.children) - 1 for run in made)
    assert_tiers_agree(store)
    assert_rollups_match_facts(store, DAY_WINDOWS, (D,))


def test_a_replaced_root_moves_the_run_to_another_day(store: Any, send: Send) -> None:
    made = days_workload(seed=5, count=9)
    for run in made:
        send(*run.spans)
    moved = made[0]  # starts 2 ms before the first midnight
    send(
        span(
            "invoke_agent triage",
            trace_id=moved.trace_id,
            span_id=new_span_id(),
            start_ns=(BASE_MS + 2 * D + 5) * 1_000_000,
            attrs={sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: "triage"},
        )
    )
    by_day = store.queries.run_aggregates(PROJECT, RunFilter(), ("agent", "time"), bucket_ms=D)
    assert by_day[("triage", BASE_MS + 2 * D)].runs == 1
    assert sum(a.runs for a in by_day.values()) == 9
    assert_tiers_agree(store)
    assert_rollups_match_facts(store, DAY_WINDOWS, (D,))


def statements_of(store: Any, read: Callable[[], object]) -> list[str]:
    """The tables each statement of ``read`` selects from."""
    seen: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.extend(re.findall(r"\bFROM (\w+)", statement))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        read()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    return seen


def test_the_metrics_endpoints_relative_windows_read_rollups_only(store: Any, send: Send) -> None:
    for run in days_workload(seed=8, count=30):
        send(*run.spans)
    now_ms = BASE_MS + 2 * D + 15 * HOUR_MS + 42 * 60_000 + 7
    where = run_filter(now_ms=now_ms, agent="support", since="2d", align_ms=HOUR_MS)
    assert where.since_ms == BASE_MS + 15 * HOUR_MS
    # Explicit times stay exact; without alignment, spans back from now too.
    assert run_filter(now_ms=now_ms, since="1767225600123", align_ms=HOUR_MS).since_ms == (
        BASE_MS + 123
    )
    assert run_filter(now_ms=now_ms, since="2d").since_ms == now_ms - 2 * D
    queries = store.queries

    def read() -> None:
        queries.run_aggregates(PROJECT, where, ("variant",), bucket_ms=HOUR_MS)
        queries.tool_aggregates(PROJECT, where, ("tool",), bucket_ms=HOUR_MS)

    # The first day's hours from the hourly tier, the next two days from the daily one.
    assert statements_of(store, read) == [
        "run_rollups",
        "run_rollups_daily",
        "tool_rollups",
        "tool_rollups_daily",
    ]
    got = queries.run_aggregates(PROJECT, where, ("variant",), bucket_ms=HOUR_MS)
    assert same(got, facts_runs(store, where, ("variant",)))
    assert sum(a.runs for a in got.values()) > 5
    # A window that is not on the hour reads its partial hours from the facts.
    exact = run_filter(now_ms=now_ms, agent="support", since="2d")
    tables = statements_of(
        store, lambda: queries.run_aggregates(PROJECT, exact, ("variant",), bucket_ms=HOUR_MS)
    )
    assert tables == ["runs", "run_rollups", "run_rollups_daily"]


def test_upgrading_fills_the_daily_tier_from_the_hourly_one(private_store: Any) -> None:
    send = sender(private_store)
    for run in days_workload(seed=13, count=30):
        send(*run.spans)
    want = {
        table.name: tier_rows(private_store, table, sums, "day_ms")
        for table, sums in ((run_rollups_daily, RUN_SUMS), (tool_rollups_daily, TOOL_SUMS))
    }
    assert all(want.values())
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    daily = next(
        script
        for script in ScriptDirectory.from_config(config).walk_revisions()
        if str(script.path).endswith("_daily_rollups.py")
    )
    assert isinstance(daily.down_revision, str)
    downgrade(private_store.engine, daily.down_revision)
    assert "run_rollups_daily" not in sa.inspect(private_store.engine).get_table_names()
    migrate(private_store.engine)
    for table, sums in ((run_rollups_daily, RUN_SUMS), (tool_rollups_daily, TOOL_SUMS)):
        assert tier_rows(private_store, table, sums, "day_ms") == want[table.name]
    assert_tiers_agree(private_store)
    assert_rollups_match_facts(private_store, DAY_WINDOWS, (D,))


def test_a_group_commit_sums_its_requests_rollups_once_per_project(store: Any) -> None:
    """The writer commits queued requests together, with one rollup change set per project."""
    from concurrent.futures import Future

    from tuneloop.store.ingest import IngestWriter, WriteResult, _Job
    from tuneloop.telemetry.rows import prepare

    normalizer = Normalizer(prices=PriceTable(DEFAULT_PRICES))
    rng = random.Random(11)
    pieces = [s for run in workload(seed=4, count=40) for s in run.spans]
    rng.shuffle(pieces)
    other = [s for run in workload(seed=5, count=6) for s in run.spans]
    requests = [(PROJECT, pieces[i : i + 9]) for i in range(0, len(pieces), 9)]
    requests.insert(3, ("other-project", other))
    requests.append(requests[1])  # an exporter's retry inside the same group
    jobs = []
    for project, spans in requests:
        prepared = prepare(project, normalizer.normalize(request_of(tuple(spans))).spans)
        jobs.append(_Job(prepared, Future()))
    writer = IngestWriter(store.engine)
    commits: list[Any] = []

    def committed(conn: Any) -> None:
        commits.append(conn)

    sa.event.listen(store.engine, "commit", committed)
    try:
        writer._commit(jobs)  # what the writer thread does with a group off its queue
    finally:
        sa.event.remove(store.engine, "commit", committed)
    assert len(commits) == 1  # one transaction: the group did not fall back to one by one
    results: list[WriteResult] = [job.future.result() for job in jobs]
    assert (results[-1].spans_written, results[-1].duplicates) == (0, len(requests[1][1]))
    assert sum(r.spans_written for r in results) == len(pieces) + len(other)
    totals = store.queries.run_aggregates(PROJECT, RunFilter(), (), bucket_ms=HOUR_MS)
    assert totals[()].runs == 40
    assert (
        store.queries.run_aggregates("other-project", RunFilter(), (), bucket_ms=HOUR_MS)[()].runs
        == 6
    )
    assert_rollups_match_facts(store)

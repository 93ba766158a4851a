"""Metrics query latency: GET /api/v1/metrics over 1,000,000 runs stored in SQLite.

Run: ``.venv/bin/python benchmarks/metrics_query.py [--runs 1000000] [--keep-db PATH]``.

Loading is setup, not what is measured. Run and tool-call fact rows go straight into
the ``runs`` and ``tool_calls`` tables with executemany, because the full ingest path
(which also writes ~6 span rows per run) loads ~5,000 runs/s here: over three minutes
for a million. The direct rows are checked against the real ingest: a sample of runs
is also written as ``NormalizedSpan`` objects through ``prepare`` and ``write_prepared``
into a scratch database (half of them with the root in a later request than its
children), and both sets of rows must be identical. The rollups ingest keeps, hourly and
daily, are computed with ingest's own code (``RollupDelta``) and checked the same way.
The ``spans`` table stays empty: the metrics endpoint reads facts and rollups only.
See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson
import sqlalchemy as sa
from _common import exit_on_sigterm, sqlite_bytes, start_tuneloop

from tuneloop import semconv as sc
from tuneloop.analysis.quantiles import bucket_of
from tuneloop.store import Store, create_store_engine
from tuneloop.store.ingest import prepare, write_prepared
from tuneloop.store.queries import Queries, RunFilter
from tuneloop.store.rollups import HOUR_MS, TIERS, RollupDelta, coarsen
from tuneloop.store.schema import runs, tool_calls
from tuneloop.telemetry.model import STATUS_CODES, LlmUsage, NormalizedSpan, RootFacts, ToolFact

PROJECT = "bench"
DAY_MS = 86_400_000
MS = 1_000_000
CHUNK = 20_000
CHECK_RUNS = 500

# --- workload --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent: its share of runs, experiment arms and what its runs look like."""

    name: str
    share: float
    experiment: str
    # (variant, share of units, version before day 9, version from day 9)
    arms: tuple[tuple[str, float, str, str], ...]
    tools: tuple[str, ...]
    mini_share: float  # runs on gpt-4o-mini rather than gpt-4o
    tool_ms: float  # median tool latency


AGENTS = (
    Agent(
        "support", 0.70, "support-prompt",
        (("control", 0.5, "v14", "v14.1"), ("concise-v2", 0.4, "v15", "v15"),
         ("tools-first", 0.1, "v16", "v16")),
        ("lookup_order", "get_shipping_status", "issue_refund", "update_address",
         "create_return", "search_kb", "escalate_to_human"),
        0.2, 120.0,
    ),
    Agent(
        "billing", 0.12, "billing-model",
        (("gpt-4o", 0.5, "v7", "v7"), ("gpt-4o-mini", 0.5, "v8", "v8.1")),
        ("lookup_account", "get_invoice", "apply_credit", "update_payment_method"),
        0.5, 90.0,
    ),
    Agent(
        "onboarding", 0.10, "onboarding-flow",
        (("control", 0.5, "v3", "v3"), ("checklist", 0.5, "v4", "v4")),
        ("create_account", "send_verification", "lookup_plan"),
        0.9, 150.0,
    ),
    Agent(
        "research", 0.08, "research-depth",
        (("shallow", 0.34, "v21", "v21"), ("balanced", 0.33, "v22", "v22"),
         ("deep", 0.33, "v23", "v23")),
        ("web_search", "fetch_page", "summarize_doc"),
        0.3, 800.0,
    ),
)  # fmt: skip
_AGENT_WEIGHTS = [agent.share for agent in AGENTS]
_PRICES = {"gpt-4o": (2.5e-6, 10e-6), "gpt-4o-mini": (0.15e-6, 0.6e-6)}  # USD per token
_TOOL_COUNTS = ((0, 1, 2, 3, 4), (0.08, 0.20, 0.42, 0.20, 0.10))  # mean ~2 calls per run
_TOOL_ERRORS = (("503", True), ("TimeoutError", True), ("ValidationError", False))
_RUN_ERRORS = ("RateLimitError", "TimeoutError", "ToolError")
_RESOURCE = {
    "service.version": "2.3.1",
    "deployment.environment": "prod",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.version": "1.27.0",
}


class Child(NamedTuple):
    """A child span of a run: a guardrail check, a model call or a tool call."""

    span_id: str
    kind: str  # "guardrail", "llm" or "tool"
    name: str  # model or tool name
    start_ns: int
    end_ns: int
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    tool_status: str = "success"
    error_type: str | None = None
    retryable: bool = False
    retries: int = 0


@dataclass(slots=True)
class Run:
    """Everything drawn for one run; rendered either as fact rows or as spans."""

    trace_id: str
    root_span_id: str
    agent: str
    version: str
    experiment: str
    variant: str
    unit_id: str
    session_id: str
    outcome: str
    failed: bool  # root span status "error"
    error_type: str | None
    start_ns: int
    end_ns: int
    children: list[Child]  # in end-time order, as an exporter sends them
    attributes: dict[str, Any]


def draw_run(rng: random.Random, start_ns: int, *, day: int) -> Run:
    """A realistic agent run starting at `start_ns`, `day` days into the window."""
    agent = rng.choices(AGENTS, _AGENT_WEIGHTS)[0]
    unit = rng.randrange(60_000)
    point, arm = (unit % 100) / 100, agent.arms[-1]
    for candidate in agent.arms:
        if point < candidate[1]:
            arm = candidate
            break
        point -= candidate[1]
    variant, version = arm[0], arm[2] if day < 9 else arm[3]
    model = "gpt-4o-mini" if rng.random() < agent.mini_share or variant == "gpt-4o-mini" else ""
    model = model or "gpt-4o"
    price_in, price_out = _PRICES[model]
    concise = 0.6 if variant in ("concise-v2", "shallow") else 1.0
    tools = rng.choices(*_TOOL_COUNTS)[0] + (1 if variant in ("tools-first", "deep") else 0)
    children: list[Child] = []
    t = start_ns + rng.randrange(1, 4 * MS)

    def span_id() -> str:
        return f"{rng.getrandbits(64):016x}"

    def add(kind: str, name: str, duration_ms: float, **facts: Any) -> None:
        nonlocal t
        end = t + int(duration_ms * MS)
        children.append(Child(span_id(), kind, name, t, end, **facts))
        t = end + rng.randrange(MS // 2, 3 * MS)

    def chat(turn: int) -> None:
        tokens_in = int(rng.lognormvariate(math.log(1200), 0.35)) + 400 * turn
        tokens_out = max(1, int(rng.lognormvariate(math.log(90), 0.6) * concise))
        per_token = 8 if model == "gpt-4o-mini" else 15
        duration = rng.lognormvariate(math.log(450), 0.4) + tokens_out * per_token
        cost = tokens_in * price_in + tokens_out * price_out
        add("llm", model, duration, input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost)

    add("guardrail", "pii", rng.lognormvariate(math.log(25), 0.5))
    chat(0)
    turn = 1
    for call in range(tools):
        tool = rng.choice(agent.tools)
        duration = rng.lognormvariate(math.log(agent.tool_ms), 0.8)
        if rng.random() < 0.06:
            error, retryable = rng.choice(_TOOL_ERRORS)
            facts = {"tool_status": "error", "error_type": error, "retryable": retryable}
            add("tool", tool, duration, retries=rng.randrange(3) if retryable else 0, **facts)
        else:
            add("tool", tool, duration)
        if call % 2 == 1 or call == tools - 1:
            chat(turn)
            turn += 1
    if rng.random() < 0.2:
        chat(turn)
    end_ns = t + int(rng.lognormvariate(math.log(150), 0.5) * MS)

    roll = rng.random()
    success = 0.85 + {"concise-v2": 0.02, "tools-first": -0.03, "deep": 0.03}.get(variant, 0.0)
    outcome = "success" if roll < success else "failure" if roll < success + 0.10 else "escalated"
    failed = outcome == "failure" and rng.random() < 0.35
    error_type = rng.choice(_RUN_ERRORS) if failed else None
    unit_id, session_id = f"user-{unit:05d}", f"sess-{rng.getrandbits(48):012x}"
    attributes: dict[str, Any] = {
        sc.SERVICE_NAME: f"{agent.name}-agent",
        **_RESOURCE,
        sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT,
        sc.GEN_AI_AGENT_NAME: agent.name,
        sc.TL_UNIT_ID: unit_id,
        sc.TL_SESSION_ID: session_id,
        sc.TL_CONFIG_VERSION: version,
        sc.FEATURE_FLAG_KEY: agent.experiment,
        sc.FEATURE_FLAG_RESULT_VARIANT: variant,
        sc.TL_RUN_OUTCOME: outcome,
    }
    if error_type is not None:
        attributes[sc.ERROR_TYPE] = error_type
    return Run(
        trace_id=f"{rng.getrandbits(128):032x}",
        root_span_id=span_id(),
        agent=agent.name,
        version=version,
        experiment=agent.experiment,
        variant=variant,
        unit_id=unit_id,
        session_id=session_id,
        outcome=outcome,
        failed=failed,
        error_type=error_type,
        start_ns=start_ns,
        end_ns=end_ns,
        children=children,
        attributes=attributes,
    )


def draw_runs(count: int, *, seed: int, end_ms: int, days: int = 14) -> Iterator[Run]:
    """`count` runs in start-time order, spread evenly over `days` days before `end_ms`."""
    rng = random.Random(seed)
    first_ns = (end_ms - days * DAY_MS) * MS
    step_ns = days * DAY_MS * MS / count
    for i in range(count):
        start_ns = first_ns + int((i + rng.random()) * step_ns)
        yield draw_run(rng, start_ns, day=int(i * days / count))


# --- rendering: fact rows (the fast path) and spans (the real ingest) --------------------


def fact_rows(project: str, run: Run) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The run's ``runs`` row and ``tool_calls`` rows, in schema column order."""
    llm_calls = input_tokens = output_tokens = tools = errors = retryable = 0
    cost = 0.0
    tool_rows = []
    for child in run.children:
        if child.kind == "llm":
            llm_calls += 1
            input_tokens += child.input_tokens
            output_tokens += child.output_tokens
            cost += child.cost_usd
        elif child.kind == "tool":
            tools += 1
            error = child.tool_status == "error"
            errors += error
            retryable += error and child.retryable
            duration = (child.end_ns - child.start_ns) / 1e6
            tool_rows.append(
                (
                    project, run.trace_id, child.span_id, child.name, child.tool_status,
                    child.error_type, child.retryable, duration, bucket_of(duration),
                    child.retries, child.start_ns // MS, run.agent, run.version, run.experiment,
                    run.variant,
                )
            )  # fmt: skip
    duration = (run.end_ns - run.start_ns) / 1e6
    run_row = (
        project, run.trace_id, True, run.root_span_id, run.agent, run.version, run.experiment,
        run.variant, run.unit_id, run.session_id, run.outcome,
        STATUS_CODES["error" if run.failed else "unset"], run.error_type, run.start_ns // MS,
        duration, bucket_of(duration), 0, 0, 0.0, llm_calls, input_tokens, output_tokens, cost,
        tools, errors, retryable, len(run.children) + 1, orjson.dumps(run.attributes).decode(),
    )  # fmt: skip
    return run_row, tool_rows


def spans_of(run: Run) -> list[NormalizedSpan]:
    """The run as the normalizer hands it to ingest: children first, the root last."""
    out = []
    for c in run.children:
        llm = LlmUsage(c.name, c.input_tokens, c.output_tokens, c.cost_usd)
        tool = ToolFact(
            c.name, c.tool_status, c.error_type, c.retryable,  # type: ignore[arg-type]
            (c.end_ns - c.start_ns) / 1e6, c.retries, c.start_ns // MS,
        )  # fmt: skip
        out.append(
            NormalizedSpan(
                run.trace_id, c.span_id, run.root_span_id, f"{c.kind} {c.name}",
                c.kind, c.start_ns, c.end_ns,  # type: ignore[arg-type]
                "error" if c.tool_status == "error" else "unset", "", {},
                llm=llm if c.kind == "llm" else None, tool=tool if c.kind == "tool" else None,
            )
        )  # fmt: skip
    root = RootFacts(
        run.agent, run.version, run.experiment, run.variant, run.unit_id, run.session_id,
        run.outcome, "error" if run.failed else "unset", run.error_type, run.start_ns // MS,
        (run.end_ns - run.start_ns) / 1e6, 0, 0, 0.0, run.attributes,
    )  # fmt: skip
    status = "error" if run.failed else "unset"
    name = f"invoke_agent {run.agent}"
    out.append(
        NormalizedSpan(
            run.trace_id, run.root_span_id, None, name, "agent", run.start_ns, run.end_ns,
            status, "", run.attributes, root=root,
        )
    )  # fmt: skip
    return out


def _insert(table: sa.Table) -> str:
    columns = ", ".join(column.name for column in table.columns)
    return f"INSERT INTO {table.name} ({columns}) VALUES ({', '.join('?' for _ in table.columns)})"


def load(db: Path, count: int, *, seed: int) -> list[Run]:
    """Create the schema, insert `count` runs' fact rows; returns the runs kept for the check."""
    Store.open(f"sqlite:///{db}").close()  # the real migrations build the schema
    sample: list[Run] = []
    end_ms = time.time_ns() // MS - 60_000
    with contextlib.closing(sqlite3.connect(db)) as conn:
        # Setup only: no fsync, a large cache for the random-order primary-key indexes.
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1000000")
        run_rows: list[tuple[Any, ...]] = []
        tool_rows: list[tuple[Any, ...]] = []
        # The rollups ingest keeps (every tier), accumulated with ingest's own code.
        rollups = RollupDelta(PROJECT)
        for i, run in enumerate(draw_runs(count, seed=seed, end_ms=end_ms), 1):
            if len(sample) < CHECK_RUNS:
                sample.append(run)
            run_row, tools = fact_rows(PROJECT, run)
            run_rows.append(run_row)
            tool_rows.extend(tools)
            add_rollups(rollups, run_row, tools)
            if len(run_rows) == CHUNK or i == count:
                with conn:
                    conn.executemany(_insert(runs), run_rows)
                    conn.executemany(_insert(tool_calls), tool_rows)
                run_rows.clear()
                tool_rows.clear()
            if i % 250_000 == 0:
                print(f"  {i:,} runs loaded", flush=True)
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as sa_conn:
        rollups.write(sa_conn)
    engine.dispose()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sample


RUN_COLUMNS = [column.name for column in runs.columns]
TOOL_COLUMNS = [column.name for column in tool_calls.columns]
TOOL_IDENTITY = ("agent", "config_version", "experiment", "variant")


def check_rows_match_ingest(db: Path, sample: list[Run], scratch: Path) -> None:
    """Write `sample` through the real ingest into `scratch`; its rows must equal the loaded."""
    store = Store.open(f"sqlite:///{scratch}")
    # Half the runs arrive whole; the other half's roots come in a later request, after
    # their tool calls are stored, as an exporter sending spans in end order does.
    whole, split = sample[: len(sample) // 2], sample[len(sample) // 2 :]
    first = [span for run in whole for span in spans_of(run)]
    first += [span for run in split for span in spans_of(run)[:-1]]
    roots = [spans_of(run)[-1] for run in split]
    try:
        with store.engine.begin() as conn:
            write_prepared(conn, prepare(PROJECT, first))
        with store.engine.begin() as conn:
            write_prepared(conn, prepare(PROJECT, roots))
    finally:
        store.close()
    ids = sorted(run.trace_id for run in sample)
    marks = ", ".join("?" for _ in ids)
    for table in ("runs", "tool_calls"):
        query = f"SELECT * FROM {table} WHERE trace_id IN ({marks}) ORDER BY trace_id, 3"
        got = []
        for path in (db, scratch):
            with contextlib.closing(sqlite3.connect(path)) as conn:
                got.append([repr(row) for row in conn.execute(query, ids)])
        loaded, ingested = got
        if loaded != ingested:
            diff = next(
                (a, b) for a, b in zip([*loaded, ""], [*ingested, ""], strict=True) if a != b
            )
            raise RuntimeError(f"{table} rows differ from the ingest path's:\n{diff[0]}\n{diff[1]}")
    # The loader's rollups for the sample must equal what ingest kept for it, in every tier.
    expected = sample_rollups(sample)
    with contextlib.closing(sqlite3.connect(scratch)) as conn:
        for tier in TIERS:
            for table, hourly in ((tier.runs, expected.runs), (tier.tools, expected.tools)):
                want = hourly if tier.period_ms == HOUR_MS else coarsen(hourly, tier.period_ms)
                width = len(next(iter(want.values())))
                rows = conn.execute(f"SELECT * FROM {table.name}").fetchall()
                have = {tuple(row[1:-width]): [round(v, 9) for v in row[-width:]] for row in rows}
                wanted = {key: [round(v, 9) for v in values] for key, values in want.items()}
                if have != wanted:
                    raise RuntimeError(f"{table.name} differs from the ingest path's")


def sample_rollups(sample: list[Run]) -> RollupDelta:
    """The rollups the loader computes, for the sample runs only."""
    rollups = RollupDelta(PROJECT)
    for run in sample:
        add_rollups(rollups, *fact_rows(PROJECT, run))
    return rollups


def add_rollups(rollups: RollupDelta, run_row: tuple[Any, ...], tools: list[Any]) -> None:
    """Add one loaded run and its tool calls to the rollups, with ingest's own code."""
    rollups.add_run(dict(zip(RUN_COLUMNS, run_row, strict=True)))
    for tool_row in tools:
        call = dict(zip(TOOL_COLUMNS, tool_row, strict=True))
        rollups.add_tool(
            tuple(call[name] for name in TOOL_IDENTITY),
            call["tool"],
            call["started_ms"],
            call["latency_bucket"],
            (call["status"] == "error", bool(call["retryable"]), call["retries"]),
        )


def stored_runs(db: Path) -> int:
    """Runs with a root span stored for the benchmark project."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        sql = "SELECT count(*) FROM runs WHERE project_id = ? AND has_root"
        return int(conn.execute(sql, (PROJECT,)).fetchone()[0])


def storage(db: Path) -> str:
    """Database size, tool-call rows, and each rollup tier's rows and size per run."""
    size = sqlite_bytes(db)
    runs_ = stored_runs(db)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        tools = conn.execute("SELECT count(*) FROM tool_calls").fetchone()[0]
        sizes = []
        for tier in TIERS:
            for table in (tier.runs, tier.tools):
                rows = conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()[0]
                try:
                    sql = "SELECT sum(pgsize) FROM dbstat WHERE name = ?"
                    pages = conn.execute(sql, (table.name,)).fetchone()[0]
                except sqlite3.OperationalError:  # SQLite built without the dbstat table
                    pages = None
                per_run = f"{pages / runs_:.0f} bytes/run" if pages and runs_ else "n/a"
                sizes.append(f"  {table.name}: {rows:,} rows, {per_run}")
    return (
        f"database: {size / 1e6:,.0f} MB ({size / runs_:,.0f} bytes/run), {tools:,} tool calls, "
        "spans table empty; rollup tiers:\n" + "\n".join(sizes)
    )


# --- measuring ---------------------------------------------------------------------------

CASES: tuple[tuple[str, dict[str, str]], ...] = (
    ("support, by variant", {"agent": "support", "group_by": "variant"}),
    ("support, by version", {"agent": "support", "group_by": "version"}),
    ("support, by tool", {"agent": "support", "group_by": "tool"}),
    ("support, by time (1d)", {"agent": "support", "group_by": "time", "bucket": "1d"}),
    ("all agents (by agent)", {}),
    # Spans back from now start on the hour: partial days hourly, whole days daily.
    ("support, by tool, 7d", {"agent": "support", "group_by": "tool", "since": "7d"}),
    ("all agents, 24h", {"since": "24h"}),
)
VARIANT_CASE, TOOL_CASE, AGENTS_CASE = CASES[0][0], CASES[2][0], CASES[4][0]
# Median warm latency each case must stay under, in seconds.
TARGETS_S = {VARIANT_CASE: 0.3, TOOL_CASE: 0.5, AGENTS_CASE: 0.25}


@dataclass(frozen=True, slots=True)
class Timing:
    """Latencies of one query over HTTP, in seconds."""

    label: str
    cold: float
    warm: list[float]
    groups: int
    body: dict[str, Any]

    @property
    def median(self) -> float:
        return statistics.median(self.warm)


def time_case(
    api: httpx.Client, label: str, params: dict[str, str], *, repeat: int, budget_s: float
) -> Timing:
    """One first call, then up to `repeat` more on the same keep-alive connection.

    Warm calls stop early (after at least 3) once the case has taken `budget_s`, so a
    slow query cannot stretch the run past a few minutes.
    """
    seconds: list[float] = []
    body: dict[str, Any] = {}
    started_case = time.perf_counter()
    while len(seconds) < repeat + 1:
        if len(seconds) > 3 and time.perf_counter() - started_case > budget_s:
            break
        started = time.perf_counter()
        response = api.get("/api/v1/metrics", params=params)
        seconds.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{label}: HTTP {response.status_code}: {response.text[:300]}")
        body = response.json()
    return Timing(label, seconds[0], seconds[1:], len(body["groups"]), body)


def query_only(db: Path, repeat: int, group_by: str) -> tuple[float, list[str]]:
    """Median seconds of the support query grouped by `group_by` in-process, and its plan.

    ``Queries.tool_aggregates`` for ``tool``, ``Queries.run_aggregates`` otherwise.
    """
    engine = create_store_engine(f"sqlite:///{db}")
    captured: list[tuple[str, Any]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
        captured.append((statement, params))

    queries, where = Queries(engine), RunFilter(agent="support")
    aggregates = queries.tool_aggregates if group_by == "tool" else queries.run_aggregates
    seconds = []
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            captured.clear()
            aggregates(PROJECT, where, (group_by,), bucket_ms=HOUR_MS)  # type: ignore[arg-type]
            seconds.append(time.perf_counter() - started)
        plan = []
        with engine.connect() as conn:
            # Every statement of the last call: one per tier (and facts) the window needs.
            for statement, params in list(captured):
                if "GROUP BY" in statement:
                    sql = f"EXPLAIN QUERY PLAN {statement}"
                    plan += [row[-1] for row in conn.exec_driver_sql(sql, params)]
    finally:
        engine.dispose()
    return statistics.median(seconds), plan


def check_counts(db: Path, timings: dict[str, Timing]) -> list[str]:
    """Compare the endpoint's counts with direct SQL on the same database."""
    problems = []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        base = "FROM runs WHERE project_id = ? AND has_root"
        expected = dict(
            conn.execute(
                f"SELECT variant, count(*) {base} AND agent = ? GROUP BY variant",
                (PROJECT, "support"),
            )
        )
        per_agent = dict(conn.execute(f"SELECT agent, count(*) {base} GROUP BY agent", (PROJECT,)))
        # Tool calls per tool from the join with runs, which the endpoint no longer reads.
        per_tool = dict(
            conn.execute(
                "SELECT t.tool, count(*) FROM tool_calls t JOIN runs r"
                " ON r.project_id = t.project_id AND r.trace_id = t.trace_id"
                " WHERE r.project_id = ? AND r.has_root AND r.agent = ? GROUP BY t.tool",
                (PROJECT, "support"),
            )
        )
    by_variant = {g["group"]["variant"]: g["runs"] for g in timings[VARIANT_CASE].body["groups"]}
    if by_variant != expected:
        problems.append(f"runs per variant: endpoint {by_variant}, SQL {expected}")
    by_agent = {g["group"]["agent"]: g["runs"] for g in timings[AGENTS_CASE].body["groups"]}
    if by_agent != per_agent:
        problems.append(f"runs per agent: endpoint {by_agent}, SQL {per_agent}")
    by_tool = {g["group"]["tool"]: g["tool_calls"] for g in timings[TOOL_CASE].body["groups"]}
    if by_tool != per_tool:
        problems.append(f"calls per tool: endpoint {by_tool}, SQL {per_tool}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Load (or reuse) the database, time the endpoint, print the table and the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10, help="warm calls per query")
    parser.add_argument(
        "--budget-s", type=float, default=30.0, help="stop a query's warm calls after this"
    )
    parser.add_argument("--keep-db", type=Path, help="SQLite file to load once and reuse")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--tuneloop-bin", type=Path, default=Path(sys.executable).parent / "tuneloop"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.repeat < 1:
        parser.error("--runs and --repeat must be positive")
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="tuneloop-metrics-") as tmp:
        home = Path(tmp)
        db = args.keep_db.resolve() if args.keep_db else home / "metrics.db"
        if db.exists():
            stored = stored_runs(db)
            if stored != args.runs:
                print(f"{db} holds {stored:,} runs, not {args.runs:,}: remove it or fix --runs")
                return 1
            print(f"reusing {db} ({stored:,} runs)")
        else:
            print(f"loading {args.runs:,} runs into {db} (runs + tool_calls rows, executemany)")
            started = time.perf_counter()
            sample = load(db, args.runs, seed=args.seed)
            print(f"loaded in {time.perf_counter() - started:.1f} s", flush=True)
            check_rows_match_ingest(db, sample, home / "ingest-check.db")
            print(f"rows of {len(sample)} sample runs equal the ingest path's (write_prepared)")

        target = start_tuneloop(
            home, args.tuneloop_bin, db=db, project=PROJECT, env={"TUNELOOP_INGEST_WORKERS": "0"}
        )
        try:
            target.api.timeout = httpx.Timeout(120.0)
            timings = {
                label: time_case(
                    target.api, label, params, repeat=args.repeat, budget_s=args.budget_s
                )
                for label, params in CASES
            }
        finally:
            target.api.close()
            target.rss.stop()
            target.server.stop()
        in_process = {group_by: query_only(db, 3, group_by) for group_by in ("variant", "tool")}
        problems = check_counts(db, timings)
        print(storage(db))
    report(timings, args.repeat, in_process, problems)
    return 1 if problems else 0


def report(
    timings: dict[str, Timing],
    repeat: int,
    in_process: dict[str, tuple[float, list[str]]],
    problems: list[str],
) -> None:
    """The latency table, the correctness check and the targets."""
    print(f"\nGET /api/v1/metrics over HTTP (keep-alive): first call, then up to {repeat} warm; ms")
    print(f"{'query':<26}{'groups':>7}{'first':>9}{'warm n':>8}{'median':>9}{'max':>9}")
    for t in timings.values():
        print(
            f"{t.label:<26}{t.groups:>7}{t.cold * 1e3:>9.0f}{len(t.warm):>8}"
            f"{t.median * 1e3:>9.0f}{max(t.warm) * 1e3:>9.0f}"
        )
    for group_by, (seconds, plan) in in_process.items():
        method = "tool_aggregates" if group_by == "tool" else "run_aggregates"
        print(
            f"in-process Queries.{method} (support, by {group_by}), median: {seconds * 1e3:.0f} ms"
        )
        print("  query plan: " + " | ".join(plan))
    for problem in problems:
        print(f"MISMATCH: {problem}")
    if not problems:
        print(
            "counts: runs per variant (support) and per agent, and tool calls per tool "
            "(support), equal direct SQL GROUP BY"
        )
    for label, target_s in TARGETS_S.items():
        median = timings[label].median
        verdict = "PASS" if median < target_s and not problems else "MISS"
        print(
            f"target: {label}, median warm < {target_s * 1e3:.0f} ms: "
            f"{median * 1e3:.0f} ms  {verdict}"
        )


if __name__ == "__main__":
    sys.exit(main())

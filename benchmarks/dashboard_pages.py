"""Dashboard page render times over 1,000,000 stored runs in SQLite, in-process.

Run: ``.venv/bin/python benchmarks/dashboard_pages.py [--runs 1000000] [--keep-db PATH]``.

The runs are loaded by ``metrics_query.load``: run and tool-call fact rows over 14 days,
four agents, and the rollups ingest would have kept, computed with ingest's own code.
On top of that, as a user's database would have: 200 recent runs with all their spans
through the real ingest path (``prepare`` and ``write_prepared``), a dozen of them
sharing a few sessions; and three versions of ``support`` with a channel move through
the config store. Each page is then requested through the ASGI app with Starlette's TestClient
(no network), signed in through the login form: one first call, then ``--repeat`` more;
the median and the slowest are printed against the 200 ms target, with the SQLite query
plan of every statement a page ran.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from metrics_query import PROJECT, Run, draw_runs, load, spans_of, stored_runs
from starlette.testclient import TestClient

from tuneloop import semconv as sc
from tuneloop.config.bundle import Bundle, apply_bundle
from tuneloop.config.model import AgentConfig
from tuneloop.server import create_app
from tuneloop.settings import load_settings
from tuneloop.store import Store
from tuneloop.store.ingest import prepare, write_prepared
from tuneloop.store.schema import run_rollups

TARGET_MS = 200.0
MS = 1_000_000
TRACED_RUNS = 200
SESSIONS = 4
SECRET = "benchmark-only-secret-key-0123456789abcdefgh"


# --- setup ---------------------------------------------------------------------------


def traced_runs(count: int, *, seed: int) -> list[Run]:
    """Recent runs to store with all their spans; the first dozen share a few sessions."""
    end_ms = time.time_ns() // MS - 5_000
    made = list(draw_runs(count, seed=seed, end_ms=end_ms, days=1))
    for i, run in enumerate(made[-12:]):
        session = f"bench-session-{i % SESSIONS}"
        run.session_id = session
        run.attributes = {**run.attributes, sc.TL_SESSION_ID: session}
    return made


def write_traces(store: Store, made: list[Run]) -> None:
    """Write ``made`` through the real ingest path (spans, facts and rollups)."""
    spans = [span for run in made for span in spans_of(run)]
    with store.engine.begin() as conn:
        write_prepared(conn, prepare(PROJECT, spans))


def write_configs(store: Store, now_ms: int) -> None:
    """Three versions of ``support`` (a bundle each) and production moved to the newest."""
    base = AgentConfig.from_data(
        {
            "model": {"provider": "openai", "name": "gpt-4o-mini"},
            "params": {"temperature": 0.7},
            "prompts": {"system": "You are a support agent.\nBe brief.\n"},
        }
    )
    store.configs.create_version(PROJECT, "support", base, author="bench", now_ms=now_ms - 3000)
    config, parent = base, "1.0.0"
    for i, temperature in enumerate((0.5, 0.3), 1):
        bundle = Bundle.from_data(
            {
                "bundle_id": f"bench-{i}",
                "version": "1.0.0",
                "recommendations": [
                    {
                        "type": "prompt_optimization",
                        "target": "system",
                        "change": [
                            {"op": "replace", "path": "/params/temperature", "value": temperature},
                            {
                                "op": "replace",
                                "path": "/prompts/system",
                                "value": f"You are a support agent.\nBe brief ({i}).\n",
                            },
                        ],
                        "rationale": "benchmark",
                        "expected_impact": "none",
                    }
                ],
            }
        )
        config = apply_bundle(config, bundle)
        version, _ = store.configs.create_version(
            PROJECT, "support", config, author="bench", now_ms=now_ms - 2000 + i,
            parents=[parent], bundle=bundle,
        )  # fmt: skip
        parent = version.label
    store.configs.move_channel(
        PROJECT, "support", "production", parent, expected="1.0.0", author="bench", now_ms=now_ms
    )


def prepare_db(db: Path, count: int, seed: int) -> None:
    """Load the facts, build the rollups, add traced runs and configs (once per file)."""
    print(f"loading {count:,} runs into {db} (metrics_query.load)", flush=True)
    started = time.perf_counter()
    load(db, count, seed=seed)
    print(f"  loaded in {time.perf_counter() - started:.0f} s", flush=True)
    store = Store.open(f"sqlite:///{db}")
    try:
        with store.engine.connect() as conn:
            rollups = conn.execute(sa.select(sa.func.count()).select_from(run_rollups)).scalar()
        if not rollups:
            raise RuntimeError("metrics_query.load left the rollups empty: pages would show 0")
        print(f"  {rollups:,} hourly run rollup rows", flush=True)
        write_traces(store, traced_runs(TRACED_RUNS, seed=seed + 1))
        write_configs(store, time.time_ns() // MS)
    finally:
        store.close()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# --- measuring -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Timing:
    """Render times of one page, in milliseconds."""

    label: str
    path: str
    first: float
    warm: list[float]
    plans: list[str]

    @property
    def median(self) -> float:
        return statistics.median(self.warm)


def pages(store: Store) -> list[tuple[str, str]]:
    """The pages to time, with ids picked from the data."""
    with store.engine.connect() as conn:
        trace_id = conn.execute(
            sa.text(
                "SELECT trace_id FROM spans WHERE project_id = :p GROUP BY trace_id "
                "ORDER BY count(*) DESC LIMIT 1"
            ),
            {"p": PROJECT},
        ).scalar_one()
    return [
        ("overview, 24 h", "/ui/"),
        ("overview, 7 d", "/ui/?window=7d"),
        ("overview, 30 d", "/ui/?window=30d"),
        ("traces, newest (24 h)", "/ui/traces"),
        ("traces, agent=billing", "/ui/traces?agent=billing"),
        ("traces, escalated (24 h)", "/ui/traces?outcome=escalated"),
        ("traces, one session", "/ui/traces?session_id=bench-session-1&since=all"),
        ("traces, one unit (24 h)", "/ui/traces?unit_id=user-00042"),
        ("traces, rare outcome, all", "/ui/traces?outcome=budget_exhausted&since=all"),
        ("trace waterfall", f"/ui/traces/{trace_id}"),
        ("session", "/ui/sessions/bench-session-1"),
        ("agent support, 24 h", "/ui/agents/support"),
        ("agent support, 7 d", "/ui/agents/support?window=7d"),
        ("agent billing, 24 h", "/ui/agents/billing"),
        ("diff 1.0.0 → 1.2.0", "/ui/agents/support/diff?from=1.0.0&to=1.2.0"),
    ]


def plans_of(db: Path, statements: list[tuple[str, Any]]) -> list[str]:
    """SQLite's plan for each statement, one line per statement."""
    out = []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        for statement, params in statements:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            rows = conn.execute(f"EXPLAIN QUERY PLAN {statement}", params or ()).fetchall()
            tables = re.findall(r"FROM (\w+)", statement)
            out.append(f"{','.join(dict.fromkeys(tables))}: " + " | ".join(r[-1] for r in rows))
    return out


def time_pages(db: Path, repeat: int) -> list[Timing]:
    """Sign in, then time every page through the ASGI app."""
    store = Store.open(f"sqlite:///{db}")
    now = time.time_ns() // MS
    store.keys.ensure_project(PROJECT, now_ms=now)
    admin = store.keys.create_key(PROJECT, "admin", name="dashboard bench", now_ms=now)
    captured: list[tuple[str, Any]] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
        captured.append((statement, params))

    with tempfile.TemporaryDirectory(prefix="tuneloop-dash-") as home:
        settings = load_settings(home=Path(home), ingest_workers=0, secret_key=SECRET)
        app = create_app(settings, store=store)
        timings = []
        with TestClient(app, base_url="http://bench.local") as client:
            form = client.get("/ui/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf is not None
            signed = client.post(
                "/ui/login",
                data={"csrf": csrf.group(1), "key": admin.secret},
                follow_redirects=False,
            )
            if signed.status_code != 303:
                raise RuntimeError(f"sign-in failed: {signed.status_code} {signed.text[:300]}")
            for label, path in pages(store):
                seconds = []
                for i in range(repeat + 1):
                    if i == 0:
                        captured.clear()
                    started = time.perf_counter()
                    response = client.get(path, follow_redirects=False)
                    seconds.append((time.perf_counter() - started) * 1e3)
                    if response.status_code != 200:
                        raise RuntimeError(f"{label}: HTTP {response.status_code}")
                    if i == 0:
                        first_statements = list(captured)
                timings.append(
                    Timing(label, path, seconds[0], seconds[1:], plans_of(db, first_statements))
                )
    store.close()
    return timings


def main(argv: Sequence[str] | None = None) -> int:
    """Load (or reuse) the database, time the pages, print the table and the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15, help="warm renders per page")
    parser.add_argument("--keep-db", type=Path, help="SQLite file to load once and reuse")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--plans", action="store_true", help="print every query plan")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.repeat < 1:
        parser.error("--runs and --repeat must be positive")
    with tempfile.TemporaryDirectory(prefix="tuneloop-dashboard-") as tmp:
        db = args.keep_db.resolve() if args.keep_db else Path(tmp) / "dashboard.db"
        if db.exists():
            stored = stored_runs(db)
            if stored != args.runs + TRACED_RUNS:
                print(f"{db} holds {stored:,} runs, not {args.runs + TRACED_RUNS:,}: remove it")
                return 1
            print(f"reusing {db} ({stored:,} runs)")
        else:
            prepare_db(db, args.runs, args.seed)
        timings = time_pages(db, args.repeat)
    report(timings, args.repeat, show_plans=args.plans)
    return 0 if all(t.median < TARGET_MS for t in timings) else 1


def report(timings: list[Timing], repeat: int, *, show_plans: bool) -> None:
    """The table of render times, the plans that scan, and the verdict."""
    print(f"\nGET through the ASGI app (TestClient, signed in): first, then {repeat} warm; ms")
    print(f"{'page':<28}{'first':>8}{'median':>8}{'max':>8}  target")
    for t in timings:
        verdict = "PASS" if t.median < TARGET_MS else "MISS"
        print(f"{t.label:<28}{t.first:>8.1f}{t.median:>8.1f}{max(t.warm):>8.1f}  {verdict}")
    print("\nquery plans (SQLite EXPLAIN QUERY PLAN of each page's statements):")
    for t in timings:
        scans = [p for p in t.plans if re.search(r"\bSCAN (runs|spans|tool_calls)\b(?! USING)", p)]
        shown = t.plans if show_plans else scans
        print(f"  {t.label}: {len(t.plans)} statements, {len(scans)} unindexed scans")
        for plan in shown:
            print(f"    {plan}")
    worst = max(timings, key=lambda t: t.median)
    print(
        f"\ntarget: every page's median under {TARGET_MS:.0f} ms: slowest is {worst.label!r} "
        f"at {worst.median:.1f} ms  {'PASS' if worst.median < TARGET_MS else 'MISS'}"
    )


if __name__ == "__main__":
    sys.exit(main())

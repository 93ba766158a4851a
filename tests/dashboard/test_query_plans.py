"""Every query a dashboard page runs on SQLite searches an index on the large tables.

SQLite plans these statements from the schema alone (tuneloop never runs ANALYZE), so
the plans here are the plans over a million runs: ``benchmarks/dashboard_pages.py``
prints them at that size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.dashboard.conftest import DashServer, make_server, sign_in

# Tables that grow with traffic; the small config tables may be scanned per agent.
LARGE = ("runs", "spans", "tool_calls", "feedback", "config_audit", "config_versions")
LARGE += tuple(f"{kind}_rollups{tier}" for kind in ("run", "tool") for tier in ("", "_daily"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashServer]:
    from tuneloop.store import Store

    home = tmp_path_factory.mktemp("dashboard-plans")
    store = Store.open(f"sqlite:///{home / 'tuneloop.db'}")
    uvicorn_server, thread, running = make_server(store, home)
    try:
        yield running
    finally:
        uvicorn_server.should_exit = True
        thread.join(10)
        store.close()


def pages(server: DashServer) -> list[str]:
    traces = server.seeded.traces
    return [
        "/ui/",
        "/ui/?window=7d",
        "/ui/?window=30d",
        "/ui/traces",
        "/ui/traces?agent=support&since=all",
        "/ui/traces?outcome=escalated&since=all",
        "/ui/traces?session_id=sess-42&since=all",
        "/ui/traces?version=1.0.0&variant=x&experiment=y",
        f"/ui/traces/{traces['first']}",
        "/ui/sessions/sess-42",
        "/ui/agents/support",
        "/ui/agents/support?window=7d",
        "/ui/agents/support/diff?from=1.0.0&to=1.1.0",
    ]


def test_each_page_searches_indexes_of_the_large_tables(server: DashServer) -> None:
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
        captured.append((statement, params))

    engine: sa.Engine = server.store.engine  # type: ignore[attr-defined]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert sign_in(client, server.admin_key).status_code == 303
        sa.event.listen(engine, "before_cursor_execute", capture)
        try:
            for path in pages(server):
                assert client.get(path).status_code == 200, path
        finally:
            sa.event.remove(engine, "before_cursor_execute", capture)
    selects = [(s, p) for s, p in captured if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) > 40
    touched: set[str] = set()
    indexes: set[str] = set()
    with engine.connect() as conn:
        for statement, params in selects:
            plan = [
                row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            ]
            for step in plan:
                scanned = re.match(r"SCAN (\w+)(?: USING (?:COVERING )?INDEX (\w+))?", step)
                searched = re.match(r"SEARCH (\w+) USING (?:COVERING )?INDEX (\w+)", step)
                if searched:
                    touched.add(searched.group(1))
                    indexes.add(searched.group(2))
                if scanned and scanned.group(1) in LARGE:
                    pytest.fail(f"{step!r} reads all of {scanned.group(1)}:\n{statement}")
    assert {"runs", "spans", "run_rollups", "tool_rollups", "config_audit"} <= touched
    # A session's runs, runs by outcome, and the 24-hour window of the rollups (all agents,
    # one agent) each have their own index (migration 0008); without it SQLite would walk
    # every run or rollup row of the project in time order.
    assert {
        "ix_runs_session",
        "ix_runs_outcome",
        "ix_run_rollups_time",
        "ix_run_rollups_agent_time",
        "ix_tool_rollups_agent_time",
    } <= indexes

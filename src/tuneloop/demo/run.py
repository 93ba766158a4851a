"""`tuneloop demo`: the real server, a simulated agent sending it traces, its metrics.

The world is a client like any other: it sends traces and feedback through
`tuneloop.sdk.Client` with an ingest key, and everything printed afterwards comes
from the server's REST API read with an admin key.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tuneloop.cli.api import Api
from tuneloop.cli.render import metrics_table
from tuneloop.clock import FakeClock, SystemClock
from tuneloop.demo.agent import AGENT, play, send_feedback
from tuneloop.demo.script import AgentSettings
from tuneloop.demo.server import EmbeddedServer
from tuneloop.demo.world import DEFAULT_RUNS_PER_HOUR, World
from tuneloop.errors import InvalidInputError
from tuneloop.sdk import Client, ClientStats
from tuneloop.server import create_app
from tuneloop.settings import load_settings
from tuneloop.store import Store

DEMO_DIR = Path(".tuneloop") / "demo"
DATABASE_FILE = "tuneloop.db"
PROJECT = "demo"
_FLUSH_EVERY_RUNS = 200


def run_demo(*, runs: int, keep_serving: bool, port: int, seed: int, console: Console) -> None:
    """Run the demo end to end: fresh database, server, simulated traffic, metrics.

    Args:
        runs: agent runs to simulate.
        keep_serving: keep the server up until Ctrl-C after printing the metrics.
        port: the server's port on 127.0.0.1; 0 picks a free one.
        seed: the seed of the simulated world; the same seed replays the same traffic.
        console: where to narrate.

    Raises:
        InvalidInputError: ``runs`` is not positive.
        ConfigError: the port is taken.
    """
    if runs < 1:
        raise InvalidInputError(f"--runs must be at least 1, got {runs}")
    started = time.perf_counter()
    database = _fresh_database(DEMO_DIR / DATABASE_FILE)
    store = Store.open(f"sqlite:///{database}")
    try:
        ingest_key, admin_key = _project_keys(store)
        console.print(
            f"[bold]1.[/] Fresh database [cyan]{database}[/] with project [bold]{PROJECT}[/] "
            "and its ingest and admin keys"
        )
        settings = load_settings(database_url=f"sqlite:///{database}", ingest_workers=1)
        with EmbeddedServer(create_app(settings, store=store), port=port) as server:
            console.print(
                f"[bold]2.[/] tuneloop server listening on [cyan]{server.url}[/] "
                "(OTLP ingest at /v1/traces, REST API at /api/v1)"
            )
            stats = _simulate(server.url, ingest_key, runs=runs, seed=seed, console=console)
            console.print(
                f"[bold]4.[/] SDK delivered {stats.spans_exported:,} spans "
                f"({stats.spans_dropped} dropped, {stats.spans_failed} failed) and "
                f"{stats.feedback_sent} feedback scores ({stats.feedback_failed} failed)"
            )
            _report(server.url, admin_key, console)
            console.print(f"[dim]demo finished in {time.perf_counter() - started:.1f}s[/]")
            _how_to_query(
                console,
                url=server.url if keep_serving else None,
                database=database,
                admin_key=admin_key,
                ingest_key=ingest_key,
            )
            if keep_serving:
                server.wait()
        console.print("Server stopped.")
    finally:
        store.close()


def _how_to_query(
    console: Console, *, url: str | None, database: Path, admin_key: str, ingest_key: str
) -> None:
    """Tell the user how to query the demo's data: live, or by serving its database."""
    if url is None:
        served = load_settings()
        url = f"http://{served.host}:{served.port}"
        console.print(
            "\nThe data stays in the demo database. To query it, serve it "
            "(or rerun with [bold]--serve[/]):\n"
            f"  tuneloop serve --database-url sqlite:///{database}"
        )
    else:
        console.print(f"\nServing on [cyan]{url}[/] until Ctrl-C. Query it:")
    console.print(
        f"  tuneloop metrics --url {url} --api-key {admin_key} --agent {AGENT} -g tool\n"
        f"  tuneloop traces --url {url} --api-key {admin_key} --outcome failure\n"
        f"  ingest key for your own traces: {ingest_key}",
        soft_wrap=True,
    )


def _fresh_database(path: Path) -> Path:
    """Delete the previous demo database (and its SQLite side files); make the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return path


def _project_keys(store: Store) -> tuple[str, str]:
    now = SystemClock().now_ms()
    store.keys.ensure_project(PROJECT, name="Demo project", now_ms=now)
    ingest = store.keys.create_key(PROJECT, "ingest", name="demo agent", now_ms=now)
    admin = store.keys.create_key(PROJECT, "admin", name="demo admin", now_ms=now)
    return ingest.secret, admin.secret


def _simulate(url: str, ingest_key: str, *, runs: int, seed: int, console: Console) -> ClientStats:
    """Drive the world's runs through an SDK client on simulated time; its final stats."""
    # The simulated traffic ends about now, so relative windows (--since 24h) find it.
    span_ms = round(runs / DEFAULT_RUNS_PER_HOUR * 3_600_000)
    start_ms = SystemClock().now_ms() - span_ms
    world = World(seed, start_ms=start_ms)
    clock = FakeClock(start_ms)
    agent_settings = AgentSettings()
    console.print(
        f"[bold]3.[/] Simulating {runs} runs of the [bold]{AGENT}[/] agent "
        f"(config {agent_settings.version}, seed {seed}) over simulated time, "
        "sent through the SDK"
    )
    with (
        Client(
            url,
            ingest_key,
            clock=clock,
            service_name="support-agent",
            max_queue_spans=65_536,
            resource_attributes={"deployment.environment": "demo"},
        ) as client,
        Progress(
            TextColumn("    {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("agent runs", total=runs)
        for done in range(1, runs + 1):
            script = world.next_run(agent_settings)
            trace_id = play(client, clock, script)
            send_feedback(client, script, trace_id)
            # Backpressure: never let the buffer outgrow what the server keeps up with.
            if done % _FLUSH_EVERY_RUNS == 0:
                client.flush(timeout_s=60.0)
            progress.advance(task)
        client.flush(timeout_s=60.0)
        return client.stats


def _report(url: str, admin_key: str, console: Console) -> None:
    """Print what the platform measured, read from its REST API."""
    api = Api(load_settings(url=url, api_key=admin_key))
    try:
        usage: dict[str, Any] = api.get("/api/v1/usage")
        console.print(
            f"[bold]5.[/] The platform stored {usage['runs']:,} runs, {usage['spans']:,} spans "
            f"and {usage['tool_calls']:,} tool calls (GET /api/v1/usage)"
        )
        for group in ("version", "tool"):
            document = api.get("/api/v1/metrics", [("agent", AGENT), ("group_by", group)])
            console.print(metrics_table(document))
    finally:
        api.close()

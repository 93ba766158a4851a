"""`tuneloop demo`: the whole loop in one command, on the embedded server, in simulated time.

A fresh SQLite database and the real server (its controller and jobs on the demo's
clock); a support agent on tuneloop's runtime, configured and traced through the SDK;
simulated customers and backends it knows nothing about. Then eight acts, each
printed from the server's API: baseline, recommendations, the candidate bundle, the
eval gate, an A/B experiment, a canary rollout, a bad bundle rolled back on its own,
and the before/after table with the dashboard's address.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from rich.console import Console

from tuneloop.clock import FakeClock, SystemClock
from tuneloop.demo import acts, shipping
from tuneloop.demo.acts import HOUR_MS, Stage
from tuneloop.demo.api import Platform
from tuneloop.demo.customers import Customers
from tuneloop.demo.llm import WorldModel
from tuneloop.demo.narrate import Narrator
from tuneloop.demo.server import EmbeddedServer
from tuneloop.demo.services import Services
from tuneloop.demo.support import AGENT, SupportAgent
from tuneloop.demo.traffic import Traffic
from tuneloop.errors import RuntimeFailure
from tuneloop.runtime import simulated_sleep
from tuneloop.sdk import Client
from tuneloop.server import create_app
from tuneloop.settings import load_settings
from tuneloop.store import Store

DEMO_DIR = Path(".tuneloop") / "demo"
DATABASE_FILE = "tuneloop.db"
PROJECT = "demo"
RUNS_PER_HOUR = 600.0
TICK_MS = 5 * 60_000
# Simulated time starts this long before now, so the acts end before now.
SIMULATED_SPAN_MS = 12 * HOUR_MS
_STATE_REFRESH_S = 0.05


@dataclass(frozen=True, slots=True)
class DemoReport:
    """Every act's result, as the server answered, and where the server was."""

    url: str
    admin_key: str
    baseline: acts.Baseline
    findings: acts.Findings
    candidate: acts.Candidate
    gates: acts.Gates
    experiment: shipping.Experiment
    rollout: shipping.Rollout
    bad: shipping.BadRollout
    final: dict[str, Any]
    labels: dict[str, str]
    seconds: float


def run_demo(*, keep_serving: bool, port: int, seed: int, console: Console) -> DemoReport:
    """Run the eight acts on a fresh database; keep serving afterwards if asked.

    Args:
        keep_serving: keep the server (and dashboard) up until Ctrl-C at the end.
        port: the server's port on 127.0.0.1; 0 picks a free one.
        seed: the simulated world's seed; the same seed tells the same story.
        console: where to narrate.

    Raises:
        ConfigError: the port is taken.
        TuneloopError: a step the demo depends on failed (the message says which).
    """
    started = time.perf_counter()
    database = _fresh_database(DEMO_DIR / DATABASE_FILE)
    store = Store.open(f"sqlite:///{database}")
    try:
        ingest_key, admin_key = _project_keys(store)
        settings = load_settings(
            database_url=f"sqlite:///{database}",
            home=DEMO_DIR,
            ingest_workers=0,  # decode on a server thread: no worker process to start
            controller_interval_s=0,  # the demo ticks the controller on simulated time
            recommend_interval_s=0,  # and asks for recommendations itself
        )
        start_ms = (SystemClock().now_ms() - SIMULATED_SPAN_MS) // HOUR_MS * HOUR_MS
        clock = FakeClock(start_ms)
        app = create_app(settings, store=store, clock=clock)
        with EmbeddedServer(app, port=port) as server:
            console.print(
                f"tuneloop server on [cyan]{server.url}[/] (fresh database {database}); "
                f"simulated time starts at {acts.iso(start_ms)}"
            )
            report = asyncio.run(
                _acts(server.url, ingest_key, admin_key, app, clock, seed, Narrator(console))
            )
            report = replace(report, seconds=time.perf_counter() - started)
            _goodbye(console, report, keep_serving)
            if keep_serving:
                # Simulated time ended before now: from here the server answers on real time.
                app.state.clock = SystemClock()
                server.wait()
        console.print("Server stopped.")
        return report
    finally:
        store.close()


async def _acts(
    url: str,
    ingest_key: str,
    admin_key: str,
    app: FastAPI,
    clock: FakeClock,
    seed: int,
    say: Narrator,
) -> DemoReport:
    sleep = simulated_sleep(clock)
    with Platform(url, admin_key) as platform:
        first = acts.push_initial_config(platform)
        with _client(url, ingest_key, clock) as client:
            if not client.wait_for_state(timeout_s=30.0, agent=AGENT):
                raise RuntimeFailure(f"the SDK could not fetch the agent's state from {url}")
            agent = SupportAgent(
                client,
                Services(seed + 1, sleep=sleep),
                WorldModel(seed + 2, sleep=sleep),
                clock=clock,
                sleep=sleep,
                rng=random.Random(seed + 3),
            )
            traffic = Traffic(
                clock=clock,
                customers=Customers(seed, start_ms=clock.now_ms(), runs_per_hour=RUNS_PER_HOUR),
                agent=agent,
                client=client,
                controller=_controller_hook(app),
                tick_every_ms=TICK_MS,
            )
            try:
                return await _play(Stage(platform, traffic), say, first, url, admin_key)
            finally:
                traffic.close()


def _client(url: str, ingest_key: str, clock: FakeClock) -> Client:
    """The agent's SDK client: spans on the demo's clock, its state checked often."""
    state_dir = DEMO_DIR / "state"
    shutil.rmtree(state_dir, ignore_errors=True)
    return Client(
        url,
        ingest_key,
        clock=clock,
        service_name="support-agent",
        agents=[AGENT],
        max_queue_spans=131_072,
        state_dir=state_dir,
        state_refresh_s=_STATE_REFRESH_S,
        resource_attributes={"deployment.environment": "demo"},
    )


async def _play(
    stage: Stage, say: Narrator, first: dict[str, Any], url: str, admin_key: str
) -> DemoReport:
    platform = stage.platform
    since = stage.traffic.now_ms
    say.act(1, f"Baseline: version {first['label']} serves customers")
    baseline = await acts.baseline(stage)
    say.baseline(baseline, acts.labels(platform))

    say.act(2, "Recommendations found in the traces")
    findings = acts.recommend(stage, since)
    say.findings(findings)

    say.act(3, "Accepted into a candidate version")
    candidate = acts.accept_all(stage, findings)
    say.candidate(candidate)
    version = candidate.version["version"]

    say.act(4, "The eval gate: the candidate, and a harmful variant")
    gates = await acts.gate(stage, version)
    say.gates(gates)

    say.act(5, "A/B experiment: sequential analysis until a decision")
    experiment = await shipping.experiment(stage, version, baseline.health)
    say.experiment(experiment)

    if experiment.action != "ship":
        raise RuntimeFailure(
            "the experiment did not ship the candidate, so the demo stops here: "
            + experiment.results["recommendation"]["message"]
        )

    say.act(6, "Canary rollout 5 -> 25 -> 50 -> 100 %")
    body = shipping.rollout_body(
        version,
        control_rate=_control_rate(experiment.results),
        lift=shipping.treatment_lift(experiment.results),
    )
    rollout = await shipping.roll_out(stage, {**body, "rollout_id": shipping.CANARY_ID})
    say.rollout(rollout)
    if rollout.status != "promoted":
        raise RuntimeFailure(
            f"the rollout ended {rollout.status}, not promoted, so the demo stops here: "
            f"{rollout.document.get('reason')}"
        )

    say.act(7, "A subtly bad bundle: passes the offline gate, rolled back in production")
    bad = await shipping.bad_rollout(stage, body)
    say.bad_rollout(bad)

    say.act(8, "Before and after")
    final = shipping.before_after(stage, since)
    labels = acts.labels(platform)
    say.final(final, labels)
    return DemoReport(
        url, admin_key, baseline, findings, candidate, gates, experiment, rollout, bad, final,
        labels, 0.0,
    )  # fmt: skip


def _control_rate(results: dict[str, Any]) -> float:
    """The control's task success in the experiment's results (it shipped: it has one)."""
    primary = next(m for m in results["metrics"] if m["role"] == "primary")
    return float(primary["values"][0]["value"])


def _controller_hook(app: FastAPI) -> Callable[[], bool]:
    """One tick of the server's controller; True when it moved an allocation."""

    def tick() -> bool:
        report = app.state.controller.tick()
        return any(
            decision["applied"] and decision["action"] != "hold" for decision in report.decisions
        )

    return tick


def _goodbye(console: Console, report: DemoReport, keep_serving: bool) -> None:
    console.print(f"\n[dim]The demo took {report.seconds:.0f} s of real time.[/]")
    if keep_serving:
        console.print(
            f"Dashboard: [cyan]{report.url}/ui/[/]; sign in with the admin key "
            f"[bold]{report.admin_key}[/]. Serving until Ctrl-C.",
            soft_wrap=True,
        )
    else:
        console.print(
            f"Dashboard (while it runs): {report.url}/ui/; serve the demo's data again with "
            f"`tuneloop serve --database-url sqlite:///{DEMO_DIR / DATABASE_FILE}` and sign in "
            f"with the admin key {report.admin_key}.",
            soft_wrap=True,
        )


def _fresh_database(path: Path) -> Path:
    """Delete the previous demo database (and its SQLite side files); make the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return path


def _project_keys(store: Store) -> tuple[str, str]:
    """The demo project's ingest key (the agent's) and admin key (the demo's)."""
    now = SystemClock().now_ms()
    store.keys.ensure_project(PROJECT, name="Demo project", now_ms=now)
    ingest = store.keys.create_key(PROJECT, "ingest", name="support agent", now_ms=now)
    admin = store.keys.create_key(PROJECT, "admin", name="demo admin", now_ms=now)
    return ingest.secret, admin.secret

"""Demo-world traffic for the recommendation tests, generated once per session (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.recommend.traffic import AGENT, PROJECT, Traffic, send_demo_traffic
from tuneloop.analysis.recommend import Options, TraceWindow
from tuneloop.settings import DEFAULT_PRICES
from tuneloop.store import Store
from tuneloop.store.recommend_reads import read_window

RUNS = 2000
OPTIONS = Options(prices=DEFAULT_PRICES)


@dataclass(frozen=True)
class World:
    """A store holding one world's traffic, and the window read back from it."""

    store: Store
    traffic: Traffic
    window: TraceWindow


def _world(tmp: Path, *, faulty: bool, seed: int) -> Iterator[World]:
    store = Store.open(f"sqlite:///{tmp / 'tuneloop.db'}")
    store.keys.ensure_project(PROJECT, now_ms=0)
    traffic = send_demo_traffic(store, runs=RUNS, seed=seed, faulty=faulty, state_dir=str(tmp))
    window = read_window(
        store.engine,
        PROJECT,
        AGENT,
        version=traffic.version,
        since_ms=traffic.start_ms,
        until_ms=traffic.end_ms,
    )
    yield World(store, traffic, window)
    store.close()


@pytest.fixture(scope="session")
def faulty_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """2,000 runs of the demo world with its four known faults."""
    yield from _world(tmp_path_factory.mktemp("faulty"), faulty=True, seed=11)


@pytest.fixture(scope="session")
def healthy_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """2,000 runs of the same world, fault-free and served by a well-tuned config."""
    yield from _world(tmp_path_factory.mktemp("healthy"), faulty=False, seed=11)

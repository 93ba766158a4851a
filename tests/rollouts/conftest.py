"""A real server on each engine whose controller the test drives, on a fake clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import start_server
from tuneloop.clock import FakeClock
from tuneloop.server.controller import Controller
from tuneloop.store import Store

from .traffic import PROJECT


@dataclass
class Served:
    """The server's URL, keys, store, clock, and the app's controller."""

    url: str
    admin_key: str
    ingest_key: str
    store: Store
    clock: FakeClock
    app: Any

    @property
    def controller(self) -> Controller:
        controller: Controller = self.app.state.controller
        return controller

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def served(store: Store) -> Iterator[Served]:
    """The full server over HTTP with ``controller_interval_s=0``: ticks come from the test."""
    from tuneloop.server import create_app
    from tuneloop.settings import load_settings

    now = int(time.time() * 1000)
    store.keys.ensure_project(PROJECT, now_ms=now)
    ingest = store.keys.create_key(PROJECT, "ingest", now_ms=now)
    admin = store.keys.create_key(PROJECT, "admin", now_ms=now)
    settings = load_settings(
        ingest_workers=0,
        controller_interval_s=0,
        recommend_interval_s=0,
        webhook_max_attempts=3,
        webhook_timeout_s=2,
    )
    clock = FakeClock()
    app = create_app(settings, store=store, clock=clock)
    server, thread, url = start_server(app)
    try:
        yield Served(url, admin.secret, ingest.secret, store, clock, app)
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(10)

"""A live server whose clock the test moves, so simulated traffic can span days."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import LiveServer, start_server
from tuneloop.clock import FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clocked_server(store: Any, fake_clock: FakeClock) -> Iterator[LiveServer]:
    """The full server over HTTP on each engine, on simulated time, with project 'acme'."""
    from tuneloop.server import create_app
    from tuneloop.settings import load_settings

    now = fake_clock.now_ms()
    store.keys.ensure_project("acme", now_ms=now)
    ingest = store.keys.create_key("acme", "ingest", now_ms=now)
    admin = store.keys.create_key("acme", "admin", now_ms=now)
    settings = load_settings(max_body_bytes=4 * 1024 * 1024, ingest_workers=0)
    app = create_app(settings, store=store, clock=fake_clock)
    server, thread, url = start_server(app)
    try:
        yield LiveServer(url, "acme", ingest.secret, admin.secret, store)
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(10)

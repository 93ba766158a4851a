"""Shared fixtures: real SQLite and PostgreSQL stores, a real server, no network."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

POSTGRES_ENV = "TUNELOOP_TEST_POSTGRES_URL"
_LOOPBACK = ("127.", "::1", "localhost")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that tries to reach past loopback."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        if isinstance(address, tuple) and not str(address[0]).startswith(_LOOPBACK):
            raise AssertionError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{POSTGRES_ENV} is not set: PostgreSQL tests must run in CI")
        pytest.skip(f"{POSTGRES_ENV} not set (run `make test` to start PostgreSQL)")
    return url


@pytest.fixture(scope="session")
def _postgres_store(postgres_url: str) -> Iterator[object]:
    from tuneloop.store import Store
    from tuneloop.store.schema import metadata

    store = Store.open(postgres_url)
    with store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    yield store
    store.engine.dispose()


def _wipe(store: object) -> None:
    from tuneloop.store.schema import metadata

    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A migrated, empty store on each engine tuneloop supports."""
    from tuneloop.store import Store

    if request.param == "sqlite":
        sqlite_store = Store.open(f"sqlite:///{tmp_path / 'tuneloop.db'}")
        yield sqlite_store
        sqlite_store.close()
        return
    pg_store = request.getfixturevalue("_postgres_store")
    try:
        yield pg_store
    finally:
        pg_store.writer.stop()  # type: ignore[attr-defined]
        _wipe(pg_store)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[object]:
    """A migrated, empty SQLite store (for tests about one engine only)."""
    from tuneloop.store import Store

    store = Store.open(f"sqlite:///{tmp_path / 'tuneloop.db'}")
    yield store
    store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A real uvicorn server on loopback, with a project and its keys."""

    url: str
    project: str
    ingest_key: str
    admin_key: str
    store: object

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def new_project(self, project: str) -> tuple[str, str]:
        """Create another project; returns its (ingest, admin) keys."""
        now = int(time.time() * 1000)
        self.store.keys.ensure_project(project, now_ms=now)  # type: ignore[attr-defined]
        ingest = self.store.keys.create_key(project, "ingest", now_ms=now)  # type: ignore[attr-defined]
        admin = self.store.keys.create_key(project, "admin", now_ms=now)  # type: ignore[attr-defined]
        return ingest.secret, admin.secret


def start_server(app: object) -> tuple[object, threading.Thread, str]:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def live_server(store: object) -> Iterator[LiveServer]:
    """The full server over HTTP on each engine, with a project 'acme' and its keys."""
    from tuneloop.server import create_app
    from tuneloop.settings import load_settings

    now = int(time.time() * 1000)
    store.keys.ensure_project("acme", now_ms=now)  # type: ignore[attr-defined]
    ingest = store.keys.create_key("acme", "ingest", now_ms=now)  # type: ignore[attr-defined]
    admin = store.keys.create_key("acme", "admin", now_ms=now)  # type: ignore[attr-defined]
    settings = load_settings(max_body_bytes=1024 * 1024, ingest_workers=0)
    app = create_app(settings, store=store)  # type: ignore[arg-type]
    server, thread, url = start_server(app)
    try:
        yield LiveServer(url, "acme", ingest.secret, admin.secret, store)
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(10)

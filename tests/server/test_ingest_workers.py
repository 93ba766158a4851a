"""Ingest through worker processes: the path `tuneloop serve` takes by default."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import start_server
from tests.otlp_factory import agent_run, post_traces, request, stored_counts


def _worker_pids() -> list[int]:
    """The ingest worker processes this process (the test server) started."""
    pids = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if b"tuneloop.server.ingest_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    pids.append(int(pid))
    return pids


def _unread_input(pid: int) -> int:
    """Bytes waiting in a process's standard input pipe."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        (count,) = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))
    finally:
        os.close(fd)
    return int(count)


@pytest.fixture
def pooled(tmp_path: Path) -> Iterator[tuple[str, str, str, Any]]:
    from tuneloop.server import create_app
    from tuneloop.settings import load_settings
    from tuneloop.store import Store

    store = Store.open(f"sqlite:///{tmp_path / 'pool.db'}")
    now = int(time.time() * 1000)
    store.keys.ensure_project("acme", now_ms=now)
    ingest = store.keys.create_key("acme", "ingest", now_ms=now).secret
    admin = store.keys.create_key("acme", "admin", now_ms=now).secret
    app = create_app(load_settings(ingest_workers=1), store=store)
    server, thread, url = start_server(app)
    try:
        yield url, ingest, admin, store
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(10)
        store.close()


def test_worker_processes_store_spans_and_facts(pooled: tuple[str, str, str, Any]) -> None:
    url, ingest, _admin, store = pooled
    runs = [agent_run(llm=[("gpt-4o", 300, 60)], tools=["lookup"]) for _ in range(20)]
    spans = [span for run in runs for span in run.spans]
    response = post_traces(url, ingest, request(*spans), compress=True)
    assert response.status_code == 200
    assert stored_counts(store, "acme") == {
        "spans": 60,
        "runs": 20,
        "tool_calls": 20,
        "feedback": 0,
    }


def test_malformed_input_from_a_worker_is_a_400_naming_the_problem(
    pooled: tuple[str, str, str, Any],
) -> None:
    url, ingest, _admin, store = pooled
    response = post_traces(url, ingest, b"\x0a\xff\xff\xff\xff\x0f")
    assert response.status_code == 400
    assert b"not a valid OTLP ExportTraceServiceRequest" in response.content
    assert stored_counts(store, "acme") == {"spans": 0, "runs": 0, "tool_calls": 0, "feedback": 0}


def test_a_killed_worker_is_replaced_and_ingest_goes_on(
    pooled: tuple[str, str, str, Any],
) -> None:
    url, ingest, _admin, store = pooled
    assert post_traces(url, ingest, request(*agent_run().spans)).status_code == 200
    workers = _worker_pids()
    assert workers, "expected an ingest worker process"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    statuses = []
    for _ in range(3):
        response = post_traces(url, ingest, request(*agent_run().spans))
        statuses.append(response.status_code)
        if response.status_code == 200:
            break
    # The request that met the dead worker may get a retryable 503; then ingest resumes.
    assert statuses[-1] == 200
    assert set(statuses[:-1]) <= {503}
    assert stored_counts(store, "acme")["runs"] == 2
    assert httpx.get(f"{url}/readyz").status_code == 200


def test_a_worker_dying_mid_request_is_a_503_then_ingest_goes_on(
    pooled: tuple[str, str, str, Any],
) -> None:
    url, ingest, _admin, store = pooled
    (pid,) = _worker_pids()
    os.kill(pid, signal.SIGSTOP)  # the worker takes the next request and never answers
    answers: list[int] = []
    body = request(*agent_run().spans)
    sender = threading.Thread(
        target=lambda: answers.append(post_traces(url, ingest, body).status_code)
    )
    sender.start()
    deadline = time.monotonic() + 30
    while _unread_input(pid) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    sender.join(30)
    assert answers == [503]
    assert post_traces(url, ingest, request(*agent_run().spans)).status_code == 200
    assert _worker_pids() != [pid]
    assert stored_counts(store, "acme")["runs"] == 1

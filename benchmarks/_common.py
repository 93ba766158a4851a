"""Shared helpers for benchmark scripts: servers under test, memory, storage, OTLP sending.

Everything here is bounded: every wait has a deadline and every process started
through `ServerProcess` is stopped on exit, even when the benchmark fails.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

PHOENIX_VERSION = "20.26.1"
WORK_DIR = Path(__file__).resolve().parent / ".work"
PHOENIX_VENV = WORK_DIR / "phoenix-venv"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_RETRYABLE = (429, 503)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A server started in its own process group, stopped at the latest on interpreter exit."""

    def __init__(
        self, argv: Sequence[str], *, env: dict[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        atexit.register(self.stop)

    @property
    def pid(self) -> int:
        """Process id of the server's root process."""
        return self.proc.pid

    def alive(self) -> bool:
        """Whether the root process is still running."""
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the server wrote, for error messages."""
        if not self._log.closed:
            self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGINT the process group, then SIGTERM, then SIGKILL; idempotent."""
        if self._log.closed:
            return
        for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait_s)
        # Stragglers the root left behind in its group (uvicorn/multiprocessing workers).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
        atexit.unregister(self.stop)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `finally` blocks and atexit stop child servers."""

    def _raise(_signum: int, _frame: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, _raise)


def wait_ready(url: str, server: ServerProcess, *, timeout_s: float) -> float:
    """Poll `url` until it answers 200; returns seconds waited. Fails fast if the server dies."""
    started = time.monotonic()
    deadline = started + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not server.alive():
                raise RuntimeError(
                    f"server exited with code {server.proc.returncode} before it was ready:\n"
                    f"{server.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s:\n{server.log_tail()}")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                kids.extend(int(part) for part in handle.read().split())
    return kids


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _pss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def _hwm_bytes(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _tree(root: int) -> list[int]:
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        if pid not in pids:
            pids.append(pid)
            stack.extend(_children(pid))
    return pids


def tree_cpu_seconds(root: int) -> float:
    """User plus system CPU time used so far by a process and its live descendants."""
    return sum(_cpu_seconds(pid) for pid in _tree(root))


def tree_rss_bytes(root: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    return sum(_rss_bytes(pid) for pid in _tree(root))


def tree_pss_bytes(root: int) -> int:
    """Proportional set size of a process tree: shared pages split between their users."""
    return sum(_pss_bytes(pid) for pid in _tree(root))


class PeakRss:
    """Samples a process tree's resident memory every `interval_s` in a daemon thread.

    Summed RSS counts pages shared between the processes (libraries, a forked parent's
    memory) once per process; PSS, sampled alongside, splits them and is the fairer figure
    for a server with worker processes.
    """

    def __init__(self, root_pid: int, *, interval_s: float = 0.05) -> None:
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.peak_pss_bytes = 0
        self.samples = 0
        self._root_hwm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def start(self) -> PeakRss:
        """Start sampling in the background."""
        self._thread.start()
        return self

    def __enter__(self) -> PeakRss:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self.root_pid))
            self.peak_pss_bytes = max(self.peak_pss_bytes, tree_pss_bytes(self.root_pid))
            self._root_hwm = max(self._root_hwm, _hwm_bytes(self.root_pid))
            self.samples += 1
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        """Stop sampling (call before the process exits: VmHWM vanishes with it)."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()

    @property
    def peak(self) -> int:
        """Peak of the sampled tree RSS, never below the root process's own high-water mark."""
        return max(self.peak_bytes, self._root_hwm)


def sqlite_bytes(db_path: Path) -> int:
    """Size of a SQLite database (main file plus -wal) after a truncating WAL checkpoint.

    Call it once the server is stopped so nothing holds the database open.
    """
    if db_path.exists():
        with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return sum(
        path.stat().st_size
        for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-journal"))
        if path.exists()
    )


def sqlite_rows(db_path: Path, table: str) -> int | None:
    """Rows in `table` of a SQLite file, or None when the file or table is missing."""
    if not db_path.exists():
        return None
    with contextlib.closing(sqlite3.connect(db_path, timeout=30)) as conn:
        try:
            row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        except sqlite3.OperationalError:
            return None
    return int(row[0])


@dataclass(frozen=True, slots=True)
class Batch:
    """One pre-encoded OTLP export request."""

    body: bytes
    spans: int


@dataclass(slots=True)
class SendResult:
    """What happened while sending a list of batches."""

    batches_ok: int = 0
    spans_ok: int = 0
    spans_rejected: int = 0
    retries: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    unsent_batches: int = 0
    first_send: float | None = None
    last_ok: float | None = None

    @property
    def non_200(self) -> int:
        """Requests that finally failed (retried 429/503 that later succeeded not included)."""
        return sum(self.failures.values())

    @property
    def accepted(self) -> int:
        """Spans the server acknowledged and did not report as rejected."""
        return self.spans_ok - self.spans_rejected

    @property
    def accept_seconds(self) -> float:
        """Wall time from the first send to the last successful response."""
        if self.first_send is None or self.last_ok is None:
            return 0.0
        return self.last_ok - self.first_send


def _retry_after(response: httpx.Response, attempt: int) -> float:
    header = response.headers.get("retry-after", "")
    if header.strip().isdigit():
        return float(header)
    # No usable header: capped exponential backoff with jitter.
    return min(2.0, 0.1 * 2.0**attempt) * random.uniform(0.75, 1.25)


def send_batches(
    url: str,
    batches: Sequence[Batch],
    *,
    headers: dict[str, str],
    workers: int = 4,
    deadline: float,
    request_timeout_s: float = 60.0,
) -> SendResult:
    """POST every batch with `workers` keep-alive clients in threads.

    429 and 503 are retried after Retry-After (or a short backoff) until `deadline`
    (a `time.monotonic()` value); batches not sent by then count as unsent. Timeouts and
    other errors are not retried: the server may have stored the batch.
    """
    result = SendResult()
    lock = threading.Lock()
    indices = itertools.count()
    all_headers = {"Content-Type": "application/x-protobuf", **headers}

    def record(*, ok: Batch | None = None, rejected: int = 0, failure: str | None = None) -> None:
        now = time.monotonic()
        with lock:
            if ok is not None:
                result.batches_ok += 1
                result.spans_ok += ok.spans
                result.spans_rejected += rejected
                result.last_ok = now if result.last_ok is None else max(result.last_ok, now)
            if failure is not None:
                result.failures[failure] += 1

    def post(client: httpx.Client, batch: Batch) -> None:
        for attempt in itertools.count():
            try:
                response = client.post(url, content=batch.body, headers=all_headers)
            except httpx.HTTPError as exc:
                record(failure=type(exc).__name__)
                return
            if response.status_code == 200:
                record(ok=batch, rejected=_rejected_spans(response))
                return
            pause = _retry_after(response, attempt)
            if response.status_code not in _RETRYABLE or time.monotonic() + pause > deadline:
                record(failure=f"HTTP {response.status_code}")
                return
            with lock:
                result.retries += 1
            time.sleep(pause)

    def worker() -> None:
        with httpx.Client(timeout=request_timeout_s, limits=httpx.Limits(max_connections=1)) as c:
            while (index := next(indices)) < len(batches):
                if time.monotonic() > deadline:
                    with lock:
                        result.unsent_batches += 1
                    continue
                post(c, batches[index])

    threads = [
        threading.Thread(target=worker, name=f"sender-{n}", daemon=True) for n in range(workers)
    ]
    result.first_send = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def _rejected_spans(response: httpx.Response) -> int:
    if not response.content or "protobuf" not in response.headers.get("content-type", ""):
        return 0
    try:
        parsed = ExportTraceServiceResponse.FromString(response.content)
    except Exception:  # a malformed body is not a rejection we can count
        return 0
    return int(parsed.partial_success.rejected_spans)


def poll_until(
    count: Callable[[], int | None], target: int, *, deadline: float, interval_s: float
) -> tuple[int, float]:
    """Call `count` until it reaches `target` or `deadline` passes.

    Returns the last count and the `time.monotonic()` at which it was read.
    A `None` from `count` (a failed query) is retried.
    """
    last, seen_at = 0, time.monotonic()
    while True:
        value = count()
        seen_at = time.monotonic()
        if value is not None:
            last = value
            if value >= target:
                return last, seen_at
        if seen_at + interval_s > deadline:
            return last, seen_at
        time.sleep(interval_s)


# --- servers under test ----------------------------------------------------------------


class PeerUnavailable(Exception):
    """The comparison server could not be installed or started."""


@dataclass(slots=True)
class Target:
    """A running server and how to talk to it."""

    name: str
    server: ServerProcess
    rss: PeakRss
    traces_url: str
    headers: dict[str, str]
    api: httpx.Client
    count_spans: Callable[[httpx.Client], int | None]
    db_path: Path
    poll_interval_s: float


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return {**env, **extra}


def start_tuneloop(
    home: Path,
    tuneloop_bin: Path,
    *,
    db: Path | None = None,
    project: str = "bench",
    env: dict[str, str] | None = None,
) -> Target:
    """Create an admin key for `project`, then start ``tuneloop serve`` on a free loopback port.

    The SQLite database is `db` (default ``home/bench.db``); `env` adds ``TUNELOOP_*``
    settings to the server's environment.
    """
    db = db if db is not None else home / "bench.db"
    env = _clean_env(
        TUNELOOP_HOME=str(home), TUNELOOP_DATABASE_URL=f"sqlite:///{db}", **(env or {})
    )
    if not tuneloop_bin.exists():
        raise RuntimeError(f"{tuneloop_bin} not found: install the project into .venv")
    created = subprocess.run(
        [tuneloop_bin, "keys", "create", "--project", project, "--scope", "admin", "--plain"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    key = created.stdout.strip()
    if created.returncode != 0 or not key or len(key.split()) != 1:
        raise RuntimeError(
            f"`tuneloop keys create` failed (exit {created.returncode}): "
            f"{(created.stderr or created.stdout).strip()[-800:]}"
        )
    port = free_port()
    server = ServerProcess(
        [str(tuneloop_bin), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        log_path=home / "server.log",
    )
    rss = PeakRss(server.pid).start()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    api = httpx.Client(base_url=base, headers=headers, timeout=30)

    def count(client: httpx.Client) -> int | None:
        try:
            response = client.get("/api/v1/usage")
            return int(response.json()["spans"]) if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    try:
        wait_ready(f"{base}/readyz", server, timeout_s=120)
    except BaseException:
        api.close()
        rss.stop()
        server.stop()
        raise
    return Target("tuneloop", server, rss, f"{base}/v1/traces", headers, api, count, db, 0.05)


def ensure_phoenix() -> Path:
    """The `phoenix` executable of a throwaway venv with arize-phoenix==PHOENIX_VERSION."""
    python = PHOENIX_VENV / "bin" / "python"
    check = "import phoenix.server.main, importlib.metadata as m; print(m.version('arize-phoenix'))"

    def installed() -> str | None:
        if not python.exists():
            return None
        probe = subprocess.run(
            [python, "-c", check], capture_output=True, text=True, timeout=300, check=False
        )
        return probe.stdout.strip() if probe.returncode == 0 else None

    if installed() != PHOENIX_VERSION:
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        log = WORK_DIR / "phoenix-install.log"
        print(f"installing arize-phoenix=={PHOENIX_VERSION} into {PHOENIX_VENV} (log: {log}) ...")
        steps = [
            [sys.executable, "-m", "venv", str(PHOENIX_VENV)],
            [str(python), "-m", "pip", "install", "-q", f"arize-phoenix=={PHOENIX_VERSION}"],
        ]
        with log.open("w") as out:
            for step in steps:
                try:
                    done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    raise PeerUnavailable(f"`{' '.join(step)}`: {exc}") from exc
                if done.returncode != 0:
                    raise PeerUnavailable(f"`{' '.join(step)}` failed; see {log}")
        if (version := installed()) != PHOENIX_VERSION:
            raise PeerUnavailable(f"phoenix venv imports version {version!r}; see {log}")
    return PHOENIX_VENV / "bin" / "phoenix"


def start_phoenix(home: Path) -> Target:
    """``phoenix serve`` with its defaults, isolated in `home`, on free loopback ports."""
    port = free_port()
    env = _clean_env(
        PHOENIX_WORKING_DIR=str(home),
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(port),
        PHOENIX_GRPC_PORT=str(free_port()),
        PHOENIX_TELEMETRY_ENABLED="false",
    )
    try:
        server = ServerProcess(
            [str(ensure_phoenix()), "serve"], env=env, log_path=home / "phoenix.log"
        )
    except OSError as exc:
        raise PeerUnavailable(f"cannot start phoenix: {exc}") from exc
    rss = PeakRss(server.pid).start()
    base = f"http://127.0.0.1:{port}"
    api = httpx.Client(base_url=base, timeout=60)
    # Project.recordCount counts rows of the spans table; Phoenix invalidates its cache on insert.
    query = {"query": "query { projects { edges { node { name recordCount } } } }"}

    def count(client: httpx.Client) -> int | None:
        try:
            response = client.post("/graphql", json=query)
            edges = response.json()["data"]["projects"]["edges"]
            return sum(int(edge["node"]["recordCount"]) for edge in edges)
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    try:
        wait_ready(f"{base}/healthz", server, timeout_s=180)
    except BaseException as exc:
        api.close()
        rss.stop()
        server.stop()
        if isinstance(exc, RuntimeError | TimeoutError):
            raise PeerUnavailable(str(exc)) from exc
        raise
    db = home / "phoenix.db"
    return Target("Phoenix", server, rss, f"{base}/v1/traces", {}, api, count, db, 1.0)

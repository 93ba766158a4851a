"""Decode, normalize and prepare OTLP requests in worker processes.

Turning protobuf into rows is pure-Python CPU work (about 30 µs a span); the database
write is not. Doing the first in worker processes lets ingest use every core while one
writer thread in the server keeps SQLite's single-writer rule and commits in groups.
With ``workers=0`` the same work runs on a thread of the server process instead.

Each worker is a small process (see `tuneloop.server.ingest_worker`) serving one request
at a time over pipes. Requests wait in a thread pool with one thread per worker: a
thread takes an idle worker, sends the request and reads the answer, so a request whose
client has gone away still completes and never leaves a worker out of step. A worker
found dead is replaced; the request that met it is answered 503 (retryable).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import queue
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, cast

from starlette.concurrency import run_in_threadpool

from tuneloop.errors import RuntimeFailure, StoreBusyError
from tuneloop.server.ingest_worker import (
    READY,
    WORKER_CODE,
    read_frame,
    settings_frame,
    write_frame,
)
from tuneloop.telemetry.prepare import NormalizerSpec, Prepared, prepare_request

if TYPE_CHECKING:
    from tuneloop.telemetry.otlp import Encoding

_STOP_TIMEOUT_S = 10.0


class _Worker:
    """One worker process; used by one thread at a time."""

    def __init__(self, settings: bytes) -> None:
        # The worker gets the server's import path, so it imports this very tuneloop.
        path = [entry or os.getcwd() for entry in sys.path]
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE, *path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._requests = cast(IO[bytes], self.process.stdin)
        self._answers = cast(IO[bytes], self.process.stdout)
        self._settings = settings
        with contextlib.suppress(OSError):  # it died at once: wait_ready says so
            write_frame(self._requests, settings)

    def wait_ready(self) -> None:
        """Block until the worker has imported what it needs and built its Normalizer."""
        if read_frame(self._answers) != READY:
            code = self.process.wait()
            raise RuntimeFailure(
                f"an ingest worker process exited with code {code} while starting; its error "
                "is in the server's log (set TUNELOOP_INGEST_WORKERS=0 to ingest without "
                "worker processes)"
            )

    def call(self, request: bytes) -> bytes | None:
        """Send one request; its answer, or None when the worker died."""
        try:
            write_frame(self._requests, request)
            return read_frame(self._answers)
        except OSError:  # broken pipe: it died before reading
            return None

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def close(self) -> None:
        """Ask the worker to exit (end of its input); kill it if it does not."""
        with contextlib.suppress(OSError):
            self._requests.close()
        try:
            self.process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._answers.close()


class IngestPreparer:
    """Runs prepare_request in worker processes (or a thread when ``workers`` is 0)."""

    def __init__(self, spec: NormalizerSpec, *, workers: int) -> None:
        self._workers = workers
        self._settings = settings_frame(spec)
        self._normalizer = spec.build()
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._running: list[_Worker] = []
        self._threads: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the worker processes now, so the first request does not wait for them."""
        if self._workers <= 0:
            return
        with self._lock:
            if self._threads is not None:
                return
            # All start at once (their imports overlap), then each is waited for.
            workers = [_Worker(self._settings) for _ in range(self._workers)]
            try:
                for worker in workers:
                    worker.wait_ready()
            except BaseException:
                for worker in workers:
                    worker.close()
                raise
            for worker in workers:
                self._idle.put(worker)
            self._running = workers
            self._threads = ThreadPoolExecutor(self._workers, thread_name_prefix="ingest-worker")

    def pids(self) -> list[int]:
        """Process ids of the worker processes."""
        with self._lock:
            return [worker.process.pid for worker in self._running]

    async def prepare(
        self,
        project_id: str,
        body: bytes,
        content_encoding: str | None,
        encoding: Encoding,
        limit: int,
    ) -> Prepared:
        """Prepare one request off the event loop."""
        threads = self._threads
        if threads is None:
            return await run_in_threadpool(
                prepare_request,
                self._normalizer,
                project_id,
                body,
                content_encoding,
                encoding,
                limit,
            )
        request = (project_id, body, content_encoding, encoding, limit)
        return await asyncio.wrap_future(threads.submit(self._call, request))

    def _call(self, request: tuple[object, ...]) -> Prepared:
        # Pickling happens here too, off the event loop.
        frame = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        # As many threads as workers: an idle worker is always there.
        worker = self._idle.get_nowait()
        try:
            if not worker.alive():
                # It died while idle (killed, out of memory): replace it and go on.
                worker = self._replace(worker)
            answer = worker.call(frame)
            if answer is None:
                worker = self._replace(worker)
                raise StoreBusyError("an ingest worker process died; retry the request")
        finally:
            self._idle.put(worker)
        reply = pickle.loads(answer)
        if reply[0] == "ok":
            prepared: Prepared = reply[1]
            return prepared
        _, error, remote_traceback = reply
        error.add_note(f"in the ingest worker process:\n{remote_traceback}")
        raise error

    def _replace(self, dead: _Worker) -> _Worker:
        dead.close()
        worker = _Worker(self._settings)
        worker.wait_ready()
        with self._lock:
            self._running = [worker if w is dead else w for w in self._running]
        return worker

    def close(self) -> None:
        """Stop the worker processes (after the requests they are preparing)."""
        with self._lock:
            threads, self._threads = self._threads, None
        if threads is None:
            return
        threads.shutdown(wait=True, cancel_futures=True)
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break
        with self._lock:
            self._running = []

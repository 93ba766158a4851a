"""Decode, normalize and prepare OTLP requests in worker processes.

Turning protobuf into rows is pure-Python CPU work (about 30 µs a span); the database
write is not. Doing the first in a process pool lets ingest use every core while one
writer thread in the server keeps SQLite's single-writer rule and commits in groups.
With ``workers=0`` the same work runs on a thread of the server process instead.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from starlette.concurrency import run_in_threadpool

from tuneloop.errors import StoreBusyError
from tuneloop.telemetry.otlp import Encoding
from tuneloop.telemetry.prepare import (
    NormalizerSpec,
    Prepared,
    init_worker,
    prepare_in_worker,
    prepare_request,
)


class IngestPreparer:
    """Runs prepare_request in a process pool (or a thread when ``workers`` is 0)."""

    def __init__(self, spec: NormalizerSpec, *, workers: int) -> None:
        self._spec = spec
        self._workers = workers
        self._normalizer = spec.build()
        self._pool: Executor | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the worker processes now, so the first request does not wait for them."""
        if self._workers <= 0:
            return
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self._workers,
                    # spawn, not fork: the server process runs threads.
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=init_worker,
                    initargs=(self._spec,),
                )
        # Warm every worker up (imports, normalizer) before serving.
        futures = [self._pool.submit(init_worker, self._spec) for _ in range(self._workers)]
        for future in futures:
            future.result()

    async def prepare(
        self,
        project_id: str,
        body: bytes,
        content_encoding: str | None,
        encoding: Encoding,
        limit: int,
    ) -> Prepared:
        """Prepare one request off the event loop."""
        pool = self._pool
        if pool is None:
            return await run_in_threadpool(
                prepare_request,
                self._normalizer,
                project_id,
                body,
                content_encoding,
                encoding,
                limit,
            )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                pool, prepare_in_worker, project_id, body, content_encoding, encoding, limit
            )
        except BrokenProcessPool:
            # A worker died (killed, out of memory): replace the pool; the client retries.
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            self.start()
            raise StoreBusyError("an ingest worker process died; retry the request") from None

    def close(self) -> None:
        """Stop the worker processes."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

"""A batching span processor that exports OTLP/HTTP protobuf from a daemon thread."""

from __future__ import annotations

import gzip
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from tuneloop.sdk._http import Sender
from tuneloop.sdk._stats import Recorder, shielded

TRACES_PATH = "/v1/traces"
# After the deadline, how long close() still waits for the export thread to notice.
_JOIN_GRACE_S = 0.2
_OTLP_HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}


class OtlpExporter:
    """Encodes spans as an OTLP ``ExportTraceServiceRequest``, gzips it and posts it."""

    def __init__(self, sender: Sender, recorder: Recorder) -> None:
        self._sender = sender
        self._recorder = recorder

    @property
    def recorder(self) -> Recorder:
        """Where failures are counted."""
        return self._recorder

    @shielded(default=0)
    def export(self, spans: Sequence[ReadableSpan]) -> int:
        """Send ``spans``; return how many the server accepted (0 on any failure)."""
        body = gzip.compress(encode_spans(spans).SerializeToString(), compresslevel=6, mtime=0)
        delivery = self._sender.post(
            TRACES_PATH, content=body, headers=_OTLP_HEADERS, what=f"{len(spans)} spans"
        )
        if delivery.response is None:
            return 0
        try:
            answer = ExportTraceServiceResponse.FromString(delivery.response.content)
        except DecodeError:
            # Not an OTLP answer (a proxy's page, say): a 2xx still means accepted.
            return len(spans)
        rejected = min(len(spans), max(0, int(answer.partial_success.rejected_spans)))
        if rejected:
            reason = answer.partial_success.error_message or "no reason given"
            self._recorder.error(
                "partial success",
                f"tuneloop server rejected {rejected} of {len(spans)} spans: {reason}",
                attempt=False,
            )
        return len(spans) - rejected

    def cancel(self) -> None:
        """Give up retrying: the export under way fails at its next wait."""
        self._sender.cancel()


@dataclass(slots=True)
class _Waiter:
    """A flush under way: it waits for spans numbered below ``target``."""

    target: int
    lost: bool = False


class BatchProcessor(SpanProcessor):
    """Buffers ended spans and exports them in batches from a daemon thread.

    The buffer holds at most ``max_queue_spans``; when it is full the *oldest* span is
    dropped (and counted), because the freshest spans matter most to rollouts and
    experiments once the server is reachable again. A batch leaves when
    ``max_export_batch`` spans are waiting, every ``flush_interval_s`` otherwise, and at
    once on `force_flush`. Spans are encoded and sent on the export thread only: ending
    a span costs the host one append under a lock.
    """

    def __init__(
        self,
        exporter: OtlpExporter,
        recorder: Recorder,
        *,
        max_queue_spans: int,
        max_export_batch: int,
        flush_interval_s: float,
    ) -> None:
        self._exporter = exporter
        self._recorder = recorder
        self._max_queue = max_queue_spans
        self._max_batch = min(max_export_batch, max_queue_spans)
        self._interval = flush_interval_s
        self._init_state()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork)

            def after_fork_in_child() -> None:
                if (method := ref()) is not None:
                    method()

            os.register_at_fork(after_in_child=after_fork_in_child)

    def _init_state(self, *, start: bool = True) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[ReadableSpan] = deque()
        self._enqueued = 0  # spans ever accepted into the buffer
        self._taken = 0  # spans ever removed from it: to export, or dropped
        self._in_flight = 0  # spans being exported right now
        self._batch_start = 0  # number of the first span in flight
        # Spans are numbered in the order they were queued; every span numbered below
        # _settled is exported, failed or dropped. Flush waits on it.
        self._settled = 0
        self._flush_target = 0  # the worker drains until _taken reaches this
        self._waiters: list[_Waiter] = []  # flushes under way
        self._closed = False  # no more spans accepted
        self._stopping = False  # the worker exits
        self._abandoned = False  # close() counted the batch in flight as failed
        self._thread = threading.Thread(target=self._work, name="tuneloop-export", daemon=True)
        if start:
            self._thread.start()

    def _after_fork(self) -> None:
        # The export thread does not survive fork(); the child starts afresh, unless
        # the client was already shut down.
        closed = self._closed
        self._init_state(start=not closed)
        self._closed = self._stopping = closed

    @property
    def recorder(self) -> Recorder:
        """Where failures are counted."""
        return self._recorder

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    @shielded(default=None)
    def on_end(self, span: ReadableSpan) -> None:
        """Queue an ended, sampled span for export; drop the oldest if the buffer is full."""
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        dropped = closed = False
        with self._cond:
            if self._closed:
                dropped = closed = True
            else:
                if len(self._queue) >= self._max_queue:
                    self._queue.popleft()
                    self._lose(self._taken)
                    self._taken += 1
                    if not self._in_flight:
                        self._settled = self._taken
                    dropped = True
                self._queue.append(span)
                self._enqueued += 1
                if len(self._queue) == self._max_batch:
                    self._cond.notify_all()
        if dropped:
            self._recorder.count(dropped=1)
            if closed:
                self._recorder.error(
                    "span after shutdown",
                    f"tuneloop SDK: span {span.name!r} ended after shutdown; it is dropped",
                    attempt=False,
                )
            else:
                self._recorder.error(
                    "buffer full",
                    f"tuneloop SDK: span buffer full ({self._max_queue} spans); dropping the "
                    "oldest. The server is slow or unreachable, or raise max_queue_spans",
                    attempt=False,
                )

    @shielded(default=False)
    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export the spans still buffered or in flight at the call.

        Returns:
            True once they are all delivered; False at the timeout, after shutdown, or
            if any of them was dropped or given up on.
        """
        deadline = time.monotonic() + timeout_millis / 1000
        with self._cond:
            if self._stopping:
                return False
            waiter = _Waiter(self._enqueued)
            self._waiters.append(waiter)
            try:
                self._flush_target = max(self._flush_target, waiter.target)
                self._cond.notify_all()
                while self._settled < waiter.target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(remaining)
            finally:
                self._waiters.remove(waiter)
        return not waiter.lost

    def _lose(self, first: int) -> None:
        """Tell flushes waiting on spans numbered ``first`` and after that some were lost."""
        for waiter in self._waiters:
            if first < waiter.target:
                waiter.lost = True

    @shielded(default=None)
    def close(self, timeout_s: float) -> None:
        """Refuse new spans, export what is buffered within ``timeout_s``, stop the thread.

        Spans still undelivered at the deadline count as failed.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
        started = time.monotonic()
        self.force_flush(int(timeout_s * 1000))
        with self._cond:
            self._stopping = True
            leftover = len(self._queue)
            self._queue.clear()
            if leftover:
                self._lose(self._taken)
            self._taken += leftover
            if not self._in_flight:
                self._settled = self._taken
            self._cond.notify_all()
        # Waits between retries end now; an attempt under way runs to its own timeout.
        self._exporter.cancel()
        self._thread.join(max(_JOIN_GRACE_S, timeout_s - (time.monotonic() - started)))
        with self._cond:
            if self._in_flight:  # an HTTP attempt outlived the deadline: give up on it
                leftover += self._in_flight
                self._lose(self._batch_start)
                self._in_flight = 0
                self._abandoned = True
                self._settled = self._taken
        if leftover:
            self._recorder.count(failed=leftover)
            self._recorder.error(
                "shutdown",
                f"tuneloop SDK: {leftover} spans were not exported before shutdown",
                attempt=False,
            )

    def shutdown(self) -> None:
        """`close` with a 5 s deadline (called by the tracer provider)."""
        self.close(5.0)

    def _work(self) -> None:
        next_tick = time.monotonic() + self._interval
        while True:
            with self._cond:
                while not self._stopping:
                    if len(self._queue) >= self._max_batch or self._flush_target > self._taken:
                        break
                    remaining = next_tick - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._stopping:
                    return
                batch = [
                    self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))
                ]
                self._batch_start = self._taken
                self._taken += len(batch)
                self._in_flight = len(batch)
                if len(self._queue) < self._max_batch and self._flush_target <= self._taken:
                    next_tick = time.monotonic() + self._interval
            accepted = self._exporter.export(batch) if batch else 0
            with self._cond:
                counted = self._abandoned
                if accepted < len(batch):
                    self._lose(self._batch_start)
                self._in_flight = 0
                # One worker, batches in order: everything taken so far is now settled.
                self._settled = self._taken
                self._cond.notify_all()
            if batch and not counted:
                self._recorder.count(exported=accepted, failed=len(batch) - accepted)

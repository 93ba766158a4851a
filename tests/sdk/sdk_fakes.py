"""Test doubles for SDK tests: a recording fake server behind httpx.MockTransport."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from tuneloop.sdk import RetryPolicy

BASE_URL = "http://tuneloop.test"
API_KEY = "tl-test-key"
# Real backoff shape, tiny waits: tests never sleep long.
FAST_RETRY = RetryPolicy(
    max_attempts=4,
    initial_backoff_s=0.001,
    max_backoff_s=0.005,
    max_elapsed_s=5.0,
    request_timeout_s=2.0,
)

Reply = httpx.Response | Exception | int


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def attrs(items: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in items if isinstance(kv, KeyValue)}


@dataclass
class FakeServer:
    """Answers scripted replies in order, then ``default``; records every request."""

    replies: list[Reply] = field(default_factory=list)
    default: Reply = 200
    requests: list[httpx.Request] = field(default_factory=list)
    accepted: list[httpx.Request] = field(default_factory=list)
    on_request: Callable[[httpx.Request], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            reply = self.replies.pop(0) if self.replies else self.default
        if self.on_request is not None:
            self.on_request(request)
        if isinstance(reply, Exception):
            raise reply
        response = httpx.Response(reply) if isinstance(reply, int) else reply
        if response.is_success:
            with self._lock:
                self.accepted.append(request)
        return response

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def trace_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == "/v1/traces"]

    def exports(self, *, accepted_only: bool = True) -> list[ExportTraceServiceRequest]:
        """Trace exports received, decoded: those answered 2xx, or all attempts."""
        chosen = self.accepted if accepted_only else self.requests
        return [
            ExportTraceServiceRequest.FromString(gzip.decompress(r.content))
            for r in chosen
            if r.url.path == "/v1/traces"
        ]

    def spans(self) -> list[PbSpan]:
        """Spans the server accepted."""
        return spans_of(self.exports())

    def feedback_bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.url.path == "/api/v1/feedback"]


def spans_of(exports: list[ExportTraceServiceRequest]) -> list[PbSpan]:
    return [
        span
        for export in exports
        for resource_spans in export.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def by_name(spans: list[PbSpan]) -> dict[str, PbSpan]:
    return {span.name: span for span in spans}

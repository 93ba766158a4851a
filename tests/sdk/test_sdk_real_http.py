"""The real httpx path against a real loopback HTTP server."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.sdk.sdk_fakes import FAST_RETRY, attrs, spans_of
from tuneloop import semconv
from tuneloop.sdk import Client


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recording:
    received: list[Received] = field(default_factory=list)
    busy_replies: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: _RecordingServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        recording = self.server.recording
        recording.received.append(Received(self.path, dict(self.headers.items()), body))
        if recording.busy_replies:
            recording.busy_replies -= 1
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = (
            ExportTraceServiceResponse().SerializeToString() if self.path == "/v1/traces" else b"{}"
        )
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True
    recording: Recording


@pytest.fixture
def http_server() -> Iterator[tuple[str, Recording]]:
    server = _RecordingServer(("127.0.0.1", 0), _Handler)
    server.recording = Recording()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}", server.recording
    server.shutdown()
    server.server_close()
    thread.join(5.0)


def test_spans_and_feedback_reach_a_real_http_server(
    http_server: tuple[str, Recording],
) -> None:
    url, recording = http_server
    recording.busy_replies = 1  # the first export is answered 503, then retried
    with Client(url, "real-key", flush_interval_s=60, retry=FAST_RETRY) as client:
        with client.run("support", unit_id="u-1") as run, run.tool_call("lookup_order") as tool:
            tool.result()
        assert client.flush(timeout_s=10.0)
        assert client.feedback(run.trace_id, "thumbs", 1.0, "great")

    traces = [r for r in recording.received if r.path == "/v1/traces"]
    assert len(traces) == 2
    last = traces[-1]
    assert last.headers["Content-Type"] == "application/x-protobuf"
    assert last.headers["Content-Encoding"] == "gzip"
    assert last.headers["Authorization"] == "Bearer real-key"
    request = ExportTraceServiceRequest.FromString(gzip.decompress(last.body))
    spans = {s.name: s for s in spans_of([request])}
    root, tool_span = spans["invoke_agent support"], spans["execute_tool lookup_order"]
    assert root.trace_id.hex() == run.trace_id
    assert tool_span.parent_span_id == root.span_id
    assert attrs(root.attributes)[semconv.TL_UNIT_ID] == "u-1"

    [feedback] = [r for r in recording.received if r.path == "/api/v1/feedback"]
    assert json.loads(feedback.body) == {
        "trace_id": run.trace_id,
        "name": "thumbs",
        "value": 1.0,
        "comment": "great",
    }
    stats = client.stats
    assert (stats.spans_exported, stats.export_errors, stats.feedback_sent) == (2, 1, 1)

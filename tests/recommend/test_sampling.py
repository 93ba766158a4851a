"""Head sampling in the SDK, and what analyses get from it: whole runs, and their weight."""

from __future__ import annotations

from pathlib import Path

import httpx
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from tuneloop import semconv
from tuneloop.analysis.recommend import analyze
from tuneloop.sdk import Client
from tuneloop.telemetry.otlp import decode_request, decompress


def test_sample_rate_keeps_whole_runs_by_trace_id_and_exports_the_rate(tmp_path: Path) -> None:
    exports = []

    def handle(request: httpx.Request) -> httpx.Response:
        raw = decompress(request.content, request.headers.get("content-encoding"), limit=1 << 24)
        exports.append(decode_request(raw, "protobuf"))
        return httpx.Response(200)

    runs = []
    with Client(
        "http://x.test",
        "k",
        transport=httpx.MockTransport(handle),
        sample_rate=0.1,
        state_dir=tmp_path,
    ) as client:
        for _ in range(1000):
            with client.run("support") as run:
                with run.llm_call("gpt-4o"):
                    pass
                with run.tool_call("lookup", {"id": 1}):
                    pass
            runs.append(run)
        assert client.flush(timeout_s=10)
    bound = TraceIdRatioBased.get_bound_for_rate(0.1)
    expected = {r.trace_id for r in runs if int(r.trace_id, 16) & (2**64 - 1) < bound}
    spans = [
        (resource_spans.resource, span)
        for export in exports
        for resource_spans in export.resource_spans
        for scope in resource_spans.scope_spans
        for span in scope.spans
    ]
    assert {span.trace_id.hex() for _, span in spans} == expected
    assert len(spans) == 3 * len(expected)  # a sampled run keeps every span
    assert 50 <= len(expected) <= 150
    for resource, _ in spans:
        attributes = {kv.key: kv.value for kv in resource.attributes}
        assert attributes[semconv.TL_SAMPLE_RATE].double_value == 0.1


def test_unsampled_clients_say_rate_one_and_windows_weigh_runs_by_it() -> None:
    from tests.recommend.test_analyzers import runs, window

    full = analyze(window(runs(150)), None)
    sampled = analyze(window(runs(150, weight=20.0)), None)
    assert (full.weighted_runs, sampled.weighted_runs) == (150, 3000)
    assert not any("head-sampled" in n for n in full.notes)

"""An OpenTelemetry application that knows nothing of tuneloop, pointed at it."""

from __future__ import annotations

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests.conftest import LiveServer


def test_plain_otel_exporter_spans_are_stored_and_runs_counted(live_server: LiveServer) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces",
        headers={"Authorization": f"Bearer {live_server.ingest_key}"},
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout-bot"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("some.app")
    for i in range(10):
        with tracer.start_as_current_span("handle_request") as root:
            with tracer.start_as_current_span(
                "chat gpt-4o-mini",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 200,
                    "gen_ai.usage.output_tokens": 40,
                },
            ):
                pass
            if i % 5 == 0:
                root.set_status(Status(StatusCode.ERROR, "upstream failed"))
    assert provider.force_flush(10_000)
    provider.shutdown()

    headers = live_server.headers()
    usage = httpx.get(f"{live_server.url}/api/v1/usage", headers=headers).json()
    assert usage == {"spans": 20, "runs": 10, "tool_calls": 0}
    metrics = httpx.get(f"{live_server.url}/api/v1/metrics", headers=headers).json()
    (group,) = metrics["groups"]
    assert group["group"] == {"agent": "checkout-bot"}
    assert group["runs"] == 10
    assert group["error_rate"] == 0.2
    assert group["task_success_rate"] == 0.8
    assert group["mean_input_tokens"] == 200
    # gpt-4o-mini list price: 0.00015 / 0.0006 USD per 1k tokens.
    assert abs(group["total_cost_usd"] - 10 * (200 * 0.00015 + 40 * 0.0006) / 1000) < 1e-12

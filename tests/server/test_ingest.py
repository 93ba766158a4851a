"""`POST /v1/traces` over real HTTP: encodings, compression, OTLP answers, feedback."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.conftest import LiveServer
from tests.otlp_factory import (
    JSON,
    PROTOBUF,
    Api,
    agent_run,
    export_response,
    request,
    span,
    stored_counts,
    to_otlp_json,
)
from tuneloop import semconv as sc
from tuneloop.settings import DEFAULT_PRICES

GPT_4O = DEFAULT_PRICES["gpt-4o"]


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[Api]:
    with Api(live_server) as client:
        yield client


def test_export_in_each_encoding_is_stored_and_answered_in_kind(api: Api) -> None:
    for fmt in ("protobuf", "json"):
        for compress in (False, True):
            run = agent_run(llm=[("gpt-4o", 1200, 300)], tools=["search", ("crm", "503")])
            response = api.export(request(*run.spans), fmt=fmt, compress=compress)
            case = f"{fmt}, gzip={compress}"
            assert response.status_code == 200, (case, response.content)
            expected_type = PROTOBUF if fmt == "protobuf" else JSON
            assert response.headers["content-type"] == expected_type, case
            assert not export_response(response).HasField("partial_success"), case
            item = api.json("traces", limit=1)["items"][0]
            assert item["trace_id"] == run.hex, case
            assert (item["input_tokens"], item["output_tokens"], item["tool_errors"]) == (
                1200,
                300,
                1,
            ), case
            assert item["cost_usd"] == pytest.approx(
                (1200 * GPT_4O.input_per_1k + 300 * GPT_4O.output_per_1k) / 1000
            ), case
    assert api.usage() == {"spans": 16, "runs": 4, "tool_calls": 8}


def test_deflate_and_content_type_parameters_are_accepted(api: Api) -> None:
    run = agent_run()
    response = api.export(
        zlib.compress(json.dumps(to_otlp_json(request(*run.spans))).encode()),
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Content-Encoding": "deflate",
        },
    )
    assert response.status_code == 200, response.content
    assert api.usage()["runs"] == 1


@pytest.mark.parametrize("fmt", ["protobuf", "json"])
def test_some_invalid_spans_give_partial_success_and_the_rest_is_stored(api: Api, fmt: str) -> None:
    run = agent_run(tools=["search"])
    no_trace = span("orphan", trace_id=b"")
    no_start = span("timeless", trace_id=run.trace_id, start_ns=0)
    response = api.export(request(*run.spans, no_trace, no_start), fmt=fmt)
    assert response.status_code == 200
    partial = export_response(response).partial_success
    assert partial.rejected_spans == 2
    assert "'orphan' has no valid trace id" in partial.error_message
    assert "'timeless' has no start time" in partial.error_message
    assert api.usage() == {"spans": 2, "runs": 1, "tool_calls": 1}


def test_all_spans_invalid_is_a_400_status_in_the_request_encoding(
    api: Api, live_server: LiveServer
) -> None:
    spans = [span(f"orphan-{i}", trace_id=b"") for i in range(7)]
    as_protobuf = api.export(request(*spans))
    as_json = api.export(request(*spans), fmt="json")

    assert (as_protobuf.status_code, as_json.status_code) == (400, 400)
    assert as_protobuf.headers["content-type"] == PROTOBUF
    assert as_json.headers["content-type"] == JSON
    for message in (Status.FromString(as_protobuf.content).message, as_json.json()["message"]):
        assert message.startswith("all 7 spans rejected: span 'orphan-0' has no valid trace id")
        assert "(and 2 more)" in message
    assert stored_counts(live_server.store, live_server.project)["spans"] == 0


def test_an_empty_export_is_accepted(api: Api) -> None:
    assert api.export(request()).status_code == 200
    assert api.export(b"{}", fmt="json").status_code == 200
    assert api.usage() == {"spans": 0, "runs": 0, "tool_calls": 0}


def test_root_in_a_later_request_completes_the_run(api: Api) -> None:
    run = agent_run("late", outcome="escalated", llm=[("gpt-4o", 10, 1)], tools=[("t", "429")])
    assert api.export(request(*run.children)).status_code == 200
    assert api.json("traces")["items"] == []
    assert api.export(request(run.root), fmt="json").status_code == 200

    (group,) = api.json("metrics")["groups"]
    assert group["group"] == {"agent": "late"}
    assert (group["runs"], group["escalation_rate"], group["mean_input_tokens"]) == (1, 1.0, 10)
    assert (group["tool_calls"], group["tool_errors_retryable"]) == (1, 1)


def test_exporter_retry_of_the_same_spans_is_not_double_counted(api: Api) -> None:
    body = request(*agent_run(llm=[("gpt-4o", 100, 10)], tools=["search"]).spans)
    for fmt in ("protobuf", "json", "protobuf"):
        assert api.export(body, fmt=fmt).status_code == 200
    assert api.usage() == {"spans": 3, "runs": 1, "tool_calls": 1}
    (group,) = api.json("metrics")["groups"]
    assert (group["runs"], group["mean_input_tokens"], group["tool_calls"]) == (1, 100, 1)


def test_otel_sdk_exporter_with_gzip_is_stored(api: Api, live_server: LiveServer) -> None:
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces",
        headers={"Authorization": f"Bearer {live_server.ingest_key}"},
        compression=Compression.Gzip,
    )
    provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: "gz-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    with (
        tracer.start_as_current_span(
            "invoke_agent", attributes={sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT}
        ),
        tracer.start_as_current_span(
            "execute_tool lookup",
            attributes={
                sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
                sc.GEN_AI_TOOL_NAME: "lookup",
            },
        ),
    ):
        pass
    provider.shutdown()
    assert api.usage() == {"spans": 2, "runs": 1, "tool_calls": 1}
    assert api.json("agents") == {"agents": ["gz-bot"]}


# -- feedback ----------------------------------------------------------------------------


def post_feedback(api: Api, body: Any, key: str | None = None) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    server = api.server
    return api.client.post(
        f"{server.url}/api/v1/feedback",
        content=content,
        headers={**server.headers(key or server.ingest_key), "Content-Type": "application/json"},
    )


def test_feedback_with_an_ingest_key_shows_on_the_trace(api: Api) -> None:
    run = agent_run()
    api.export(request(*run.spans))
    response = post_feedback(
        api, {"trace_id": run.hex.upper(), "name": "thumbs", "value": -1, "comment": "meh 🙃"}
    )
    assert response.status_code == 201
    assert isinstance(response.json()["feedback_id"], int)
    trace = api.json(f"traces/{run.hex}")
    assert [(f["name"], f["value"], f["comment"]) for f in trace["feedback"]] == [
        ("thumbs", -1.0, "meh 🙃")
    ]


_A = "a" * 32
INVALID_FEEDBACK: list[tuple[Any, str]] = [
    ({"trace_id": "xyz", "name": "n", "value": 1}, "body.trace_id"),
    ({"trace_id": _A, "value": 1}, "body.name"),
    ({"trace_id": _A, "name": "", "value": 1}, "body.name"),
    ({"trace_id": _A, "name": "n" * 129, "value": 1}, "body.name"),
    ({"trace_id": _A, "name": "n", "value": "good"}, "body.value"),
    ({"trace_id": _A, "name": "n", "value": "inf"}, "body.value"),
    ({"trace_id": _A, "name": "n", "value": 1, "score": 2}, "body.score"),
    ({"trace_id": _A, "name": "n\x00", "value": 1}, "body.name"),
    ({"trace_id": _A, "name": "n", "value": 1, "comment": "\x00"}, "body.comment"),
    (b'{"trace_id": "' + _A.encode() + b'", "name": "n", "value": NaN}', "body.value"),
    (b'{"trace_id": "' + _A.encode() + b'", "name": "n", "value": Infinity}', "body.value"),
    (b'{"trace_id": "' + _A.encode() + b'", "name": "n", "value": -Infinity}', "body.value"),
]


def test_invalid_feedback_is_a_422_naming_the_field(api: Api, live_server: LiveServer) -> None:
    for body, field in INVALID_FEEDBACK:
        response = post_feedback(api, body)
        assert response.status_code == 422, body
        assert response.json()["error"]["message"].startswith(f"{field}:"), body
    assert stored_counts(live_server.store, live_server.project)["feedback"] == 0

"""Compact builders for OTLP trace exports (protobuf classes, semconv names) and their POSTs."""

from __future__ import annotations

import base64
import gzip
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tuneloop import semconv as sc

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def now_ns() -> int:
    return time.time_ns()


def new_trace_id() -> bytes:
    return os.urandom(16)


def new_span_id() -> bytes:
    return os.urandom(8)


def any_value(value: Any) -> AnyValue:
    """A Python value as an OTLP AnyValue (bool before int: bool is an int in Python)."""
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, Mapping):
        return AnyValue(kvlist_value=KeyValueList(values=key_values(value)))
    return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))


def key_values(attrs: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[KeyValue]:
    pairs = attrs.items() if isinstance(attrs, Mapping) else attrs
    return [KeyValue(key=key, value=any_value(value)) for key, value in pairs]


def span(
    name: str,
    *,
    trace_id: bytes,
    span_id: bytes | None = None,
    parent: bytes | None = None,
    start_ns: int | None = None,
    duration_ms: float = 10.0,
    attrs: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
    error: str | None = None,
    events: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> Span:
    """One span; ``error`` sets status ERROR with that message."""
    start = now_ns() if start_ns is None else start_ns
    status = (
        Status(code=Status.STATUS_CODE_ERROR, message=error)
        if error is not None
        else Status(code=Status.STATUS_CODE_OK)
    )
    return Span(
        trace_id=trace_id,
        span_id=span_id or new_span_id(),
        parent_span_id=parent or b"",
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=start + round(duration_ms * 1e6),
        attributes=key_values(attrs),
        status=status,
        events=[
            Span.Event(name=event, time_unix_nano=start, attributes=key_values(event_attrs))
            for event, event_attrs in events
        ],
    )


def request(
    *spans: Span, service: str | None = "test-service", resource: Mapping[str, Any] | None = None
) -> ExportTraceServiceRequest:
    """An export request holding ``spans`` under one resource and scope."""
    resource_attrs = dict(resource or {})
    if service is not None:
        resource_attrs.setdefault(sc.SERVICE_NAME, service)
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=key_values(resource_attrs)),
                scope_spans=[
                    ScopeSpans(scope=InstrumentationScope(name="tests"), spans=list(spans))
                ],
            )
        ]
    )


@dataclass
class Run:
    """One agent run: a root span and its children, all in one trace."""

    trace_id: bytes
    root: Span
    children: list[Span] = field(default_factory=list)

    @property
    def hex(self) -> str:
        return self.trace_id.hex()

    @property
    def spans(self) -> list[Span]:
        return [self.root, *self.children]


def agent_run(
    agent: str = "support-bot",
    *,
    start_ns: int | None = None,
    duration_ms: float = 100.0,
    version: str | None = None,
    variant: str | None = None,
    experiment: str | None = None,
    outcome: str | None = None,
    error: str | None = None,
    llm: Sequence[tuple[str, int, int]] = (),
    tools: Sequence[str | tuple[str, str]] = (),
    tool_ms: float = 5.0,
    attrs: Mapping[str, Any] | None = None,
) -> Run:
    """A GenAI-conventions agent run.

    ``llm`` holds (model, input tokens, output tokens) per model call; ``tools`` holds a
    tool name per successful call or (name, error.type) per failed one.
    """
    trace_id = new_trace_id()
    start = now_ns() if start_ns is None else start_ns
    root_attrs: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT,
        sc.GEN_AI_AGENT_NAME: agent,
    }
    for key, value in (
        (sc.TL_CONFIG_VERSION, version),
        (sc.FEATURE_FLAG_RESULT_VARIANT, variant),
        (sc.FEATURE_FLAG_KEY, experiment),
        (sc.TL_RUN_OUTCOME, outcome),
    ):
        if value is not None:
            root_attrs[key] = value
    root_attrs.update(attrs or {})
    root = span(
        f"invoke_agent {agent}",
        trace_id=trace_id,
        start_ns=start,
        duration_ms=duration_ms,
        attrs=root_attrs,
        error=error,
    )
    children = [
        span(
            f"chat {model}",
            trace_id=trace_id,
            parent=root.span_id,
            start_ns=start + 1000 * (i + 1),
            attrs={
                sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
                sc.GEN_AI_REQUEST_MODEL: model,
                sc.GEN_AI_USAGE_INPUT_TOKENS: tokens_in,
                sc.GEN_AI_USAGE_OUTPUT_TOKENS: tokens_out,
            },
        )
        for i, (model, tokens_in, tokens_out) in enumerate(llm)
    ]
    for i, tool in enumerate(tools):
        name, error_type = (tool, None) if isinstance(tool, str) else tool
        tool_attrs = {sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: name}
        if error_type is not None:
            tool_attrs[sc.ERROR_TYPE] = error_type
        children.append(
            span(
                f"execute_tool {name}",
                trace_id=trace_id,
                parent=root.span_id,
                start_ns=start + 1_000_000 * (i + 1),
                duration_ms=tool_ms,
                attrs=tool_attrs,
                error=error_type,
            )
        )
    return Run(trace_id, root, children)


# -- encodings ---------------------------------------------------------------------------

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def to_otlp_json(req: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP JSON: protobuf JSON mapping (camelCase) with ids in hex instead of base64."""
    document = json_format.MessageToDict(req)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for one in scope_spans.get("spans", []):
                for key in _ID_KEYS:
                    if key in one:
                        one[key] = base64.b64decode(one[key]).hex()
    return document


def encode(
    body: ExportTraceServiceRequest | bytes | dict[str, Any], fmt: str = "protobuf"
) -> bytes:
    """The bytes of an export: a request object in ``fmt``, a dict as JSON, bytes as given."""
    if isinstance(body, ExportTraceServiceRequest):
        return body.SerializeToString() if fmt == "protobuf" else _dumps(to_otlp_json(body))
    if isinstance(body, dict):
        return _dumps(body)
    return body


def post_traces(
    base_url: str,
    key: str,
    body: ExportTraceServiceRequest | bytes | dict[str, Any],
    *,
    fmt: str = "protobuf",
    compress: bool = False,
    headers: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """POST an export to ``/v1/traces``; a request object is encoded as ``fmt`` says."""
    payload = encode(body, fmt)
    sent = {
        "Authorization": f"Bearer {key}",
        "Content-Type": PROTOBUF if fmt == "protobuf" else JSON,
    }
    if compress:
        payload = gzip.compress(payload)
        sent["Content-Encoding"] = "gzip"
    sent.update(headers or {})
    if client is not None:
        return client.post(f"{base_url}/v1/traces", content=payload, headers=sent)
    with loopback_client() as own:
        return own.post(f"{base_url}/v1/traces", content=payload, headers=sent)


def loopback_client() -> httpx.Client:
    # Plain HTTP to 127.0.0.1: skip loading the CA bundle (~30 ms per client).
    return httpx.Client(verify=False, timeout=30)


class Api:
    """An HTTP client for a live test server, with its project's keys at hand."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.client = loopback_client()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def get(self, path: str, *, key: str | None = None, **params: Any) -> httpx.Response:
        """GET ``path`` (under the server root) with the admin key unless ``key`` is given."""
        return self.client.get(
            f"{self.server.url}{path}", params=params, headers=self.server.headers(key)
        )

    def json(self, path: str, **params: Any) -> Any:
        """GET an /api/v1 path with the admin key; the body of a 200."""
        response = self.get(f"/api/v1/{path}", **params)
        assert response.status_code == 200, response.text
        return response.json()

    def export(
        self,
        body: ExportTraceServiceRequest | bytes | dict[str, Any],
        *,
        key: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """POST an export with the ingest key unless ``key`` is given."""
        return post_traces(
            self.server.url, key or self.server.ingest_key, body, client=self.client, **kwargs
        )

    def usage(self) -> dict[str, int]:
        usage: dict[str, int] = self.json("usage")
        return usage


def _dumps(document: Any) -> bytes:
    return json.dumps(document).encode()


def export_response(response: httpx.Response) -> ExportTraceServiceResponse:
    """The ExportTraceServiceResponse of a 200, whichever encoding it came in."""
    parsed = ExportTraceServiceResponse()
    if response.headers["content-type"].startswith(PROTOBUF):
        parsed.ParseFromString(response.content)
    else:
        json_format.Parse(response.content, parsed)
    return parsed


# -- what the store holds ------------------------------------------------------------------


def stored_counts(store: Any, project: str) -> dict[str, int]:
    """Rows of each table that belong to ``project``: the state a bad request must not touch."""
    from tuneloop.store.schema import feedback, runs, spans, tool_calls

    with store.engine.connect() as conn:
        return {
            table.name: conn.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.project_id == project)
            ).scalar_one()
            for table in (spans, runs, tool_calls, feedback)
        }

"""Turn OTLP spans into normalized spans and run / tool-call facts.

Reads OpenTelemetry GenAI attributes first, then the deprecated GenAI names, then
OpenInference, then ``tuneloop.*``. This is the ingest hot path: it runs once per
stored span, so it favours local lookups over abstraction.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tuneloop import semconv as sc
from tuneloop.telemetry.model import (
    AttributeValue,
    LlmUsage,
    NormalizedSpan,
    RootFacts,
    SpanKind,
    SpanStatus,
    ToolFact,
)
from tuneloop.telemetry.pricing import PriceTable

_OPERATION_KINDS: dict[str, SpanKind] = {
    sc.OP_INVOKE_AGENT: "agent",
    sc.OP_CREATE_AGENT: "agent",
    sc.OP_CHAT: "llm",
    sc.OP_TEXT_COMPLETION: "llm",
    sc.OP_GENERATE_CONTENT: "llm",
    sc.OP_EMBEDDINGS: "embedding",
    sc.OP_EXECUTE_TOOL: "tool",
}
_OPENINFERENCE_KINDS: dict[str, SpanKind] = {
    sc.OI_KIND_AGENT: "agent",
    sc.OI_KIND_LLM: "llm",
    sc.OI_KIND_TOOL: "tool",
    sc.OI_KIND_GUARDRAIL: "guardrail",
    sc.OI_KIND_RETRIEVER: "retrieval",
    sc.OI_KIND_EMBEDDING: "embedding",
}
_TUNELOOP_KINDS: frozenset[str] = frozenset(
    ("agent", "llm", "tool", "guardrail", "retrieval", "embedding", "other")
)
_STATUS: dict[int, SpanStatus] = {
    Status.STATUS_CODE_UNSET: "unset",
    Status.STATUS_CODE_OK: "ok",
    Status.STATUS_CODE_ERROR: "error",
}
_TOOL_STATUSES = frozenset((sc.TOOL_STATUS_SUCCESS, sc.TOOL_STATUS_PARTIAL, sc.TOOL_STATUS_ERROR))
# OTLP span flags: bit 8 says whether bit 9 (parent is remote) is known.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200

_RETRYABLE_CODES = frozenset((408, 425, 429, 500, 502, 503, 504))
_RETRYABLE_WORDS = re.compile(
    r"timeout|timed.?out|temporar|unavailable|rate.?limit|too.?many.?requests|throttl|"
    r"overload|connection|reset|retry|server.?error|bad.?gateway|gateway.?timeout",
    re.IGNORECASE,
)
_HTTP_CODE = re.compile(r"\b([1-5]\d\d)\b")
# Stored as signed 64-bit integers; OTLP times are unsigned.
_MAX_TIME_NS = 2**63 - 1
# A count above this (tokens of one call, retries) is garbage, and would overflow a column.
_MAX_COUNT = 2**31 - 1


def is_retryable(error_type: str | None) -> bool:
    """Classify an error as worth retrying, from its type or HTTP status code.

    Rate limits, timeouts, unavailability and 5xx are retryable; other 4xx and
    application errors are not. Spans may say so explicitly with
    ``tuneloop.tool.retryable``, which wins over this guess.
    """
    if not error_type:
        return False
    code = _HTTP_CODE.search(error_type)
    if code is not None:
        return int(code.group(1)) in _RETRYABLE_CODES
    return _RETRYABLE_WORDS.search(error_type) is not None


@dataclass(slots=True)
class Rejection:
    """Spans refused from one request, with the first reasons."""

    count: int = 0
    reasons: list[str] = field(default_factory=list)

    def add(self, reason: str) -> None:
        """Count one rejected span; keep the first few reasons for the response."""
        self.count += 1
        if len(self.reasons) < 5:
            self.reasons.append(reason)

    def message(self) -> str:
        """A one-line summary for OTLP partial_success.error_message."""
        more = (
            ""
            if self.count <= len(self.reasons)
            else f" (and {self.count - len(self.reasons)} more)"
        )
        return "; ".join(self.reasons) + more


@dataclass(slots=True)
class NormalizedBatch:
    """The result of normalizing one export request."""

    spans: list[NormalizedSpan]
    rejected: Rejection


class Normalizer:
    """Normalizes OTLP spans; holds the limits and the price table."""

    def __init__(
        self,
        *,
        prices: PriceTable,
        max_attribute_chars: int = 16_384,
        max_attributes_per_span: int = 512,
    ) -> None:
        self._prices = prices
        self._max_chars = max_attribute_chars
        self._max_attrs = max_attributes_per_span

    def normalize(self, request: ExportTraceServiceRequest) -> NormalizedBatch:
        """Normalize every span of a request; invalid spans are rejected, not fatal."""
        spans: list[NormalizedSpan] = []
        rejected = Rejection()
        for resource_spans in request.resource_spans:
            resource, _ = self._attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    problem = _invalid(span)
                    if problem is not None:
                        rejected.add(problem)
                        continue
                    spans.append(self._span(span, resource))
        return NormalizedBatch(spans, rejected)

    # -- attributes ---------------------------------------------------------------

    def _value(self, value: AnyValue, depth: int = 0) -> AttributeValue:
        which = value.WhichOneof("value")
        if which == "string_value":
            text = _text(value.string_value)
            if len(text) > self._max_chars:
                return text[: self._max_chars] + sc.TL_TRUNCATED_MARKER
            return text
        if which == "int_value":
            return value.int_value
        if which == "double_value":
            return value.double_value
        if which == "bool_value":
            return value.bool_value
        if depth >= 8:
            return sc.TL_TRUNCATED_MARKER
        if which == "array_value":
            items = value.array_value.values
            out = [self._value(item, depth + 1) for item in items[: self._max_attrs]]
            if len(items) > self._max_attrs:
                out.append(sc.TL_TRUNCATED_MARKER)
            return out
        if which == "kvlist_value":
            return self._attributes(value.kvlist_value.values, depth + 1)[0]
        if which == "bytes_value":
            return value.bytes_value[: self._max_chars // 2].hex()
        return None

    def _attributes(self, pairs: Any, depth: int = 0) -> tuple[dict[str, AttributeValue], int]:
        out: dict[str, AttributeValue] = {}
        dropped = len(pairs) - self._max_attrs
        if dropped > 0:
            pairs = pairs[: self._max_attrs]
        max_chars = self._max_chars
        kv: KeyValue
        for kv in pairs:
            key = kv.key
            if "\x00" in key:
                key = _text(key)
            if len(key) > 256:
                key = key[:256] + sc.TL_TRUNCATED_MARKER
            value = kv.value
            which = value.WhichOneof("value")
            # Scalars inline: this loop runs for every attribute of every span.
            if which == "string_value":
                text = value.string_value
                if "\x00" in text:
                    text = _text(text)
                out[key] = (
                    text if len(text) <= max_chars else text[:max_chars] + sc.TL_TRUNCATED_MARKER
                )
            elif which == "int_value":
                out[key] = value.int_value
            elif which == "bool_value":
                out[key] = value.bool_value
            elif which == "double_value":
                out[key] = value.double_value
            else:
                out[key] = self._value(value, depth)
        return out, max(dropped, 0)

    # -- one span -----------------------------------------------------------------

    def _span(self, span: Span, resource: dict[str, AttributeValue]) -> NormalizedSpan:
        attrs, dropped = self._attributes(span.attributes)
        dropped += span.dropped_attributes_count
        kind = _kind(attrs)
        status = _STATUS.get(span.status.code, "unset")
        status_message = _text(span.status.message[:2048])
        events = [
            {
                "name": _text(event.name[:256]),
                "time_ns": event.time_unix_nano,
                "attributes": self._attributes(event.attributes)[0],
            }
            for event in span.events[:128]
        ]
        trace_id = span.trace_id.hex()
        parent = span.parent_span_id.hex() if span.parent_span_id else None
        start_ns = span.start_time_unix_nano
        end_ns = max(span.end_time_unix_nano, start_ns)
        error_type = _error_type(attrs, events, status, status_message)

        llm: LlmUsage | None = None
        if kind == "llm" or kind == "embedding":
            llm = self._usage(attrs)
        tool: ToolFact | None = None
        if kind == "tool":
            tool = _tool_fact(span, attrs, status, error_type, start_ns, end_ns)

        root: RootFacts | None = None
        remote_parent = (span.flags & _HAS_IS_REMOTE) and (span.flags & _IS_REMOTE)
        is_root = parent is None or (kind == "agent" and bool(remote_parent))
        if is_root:
            root = _root_facts(
                span,
                attrs,
                resource,
                status,
                error_type,
                start_ns,
                end_ns,
                llm or self._usage(attrs),
            )
        return NormalizedSpan(
            trace_id=trace_id,
            span_id=span.span_id.hex(),
            parent_span_id=parent,
            name=_text(span.name[:512]),
            kind=kind,
            start_ns=start_ns,
            end_ns=end_ns,
            status=status,
            status_message=status_message,
            attributes=attrs,
            events=events,
            resource=resource if is_root else None,
            dropped_attributes=dropped,
            root=root,
            llm=llm,
            tool=tool,
        )

    def _usage(self, attrs: dict[str, AttributeValue]) -> LlmUsage:
        model = _first_str(
            attrs, sc.GEN_AI_RESPONSE_MODEL, sc.GEN_AI_REQUEST_MODEL, sc.OI_LLM_MODEL_NAME
        )
        input_tokens = _first_int(
            attrs,
            sc.GEN_AI_USAGE_INPUT_TOKENS,
            sc.GEN_AI_USAGE_PROMPT_TOKENS,
            sc.OI_LLM_TOKEN_COUNT_PROMPT,
        )
        output_tokens = _first_int(
            attrs,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS,
            sc.GEN_AI_USAGE_COMPLETION_TOKENS,
            sc.OI_LLM_TOKEN_COUNT_COMPLETION,
        )
        explicit = _number(attrs.get(sc.TL_COST_USD))
        cost = (
            explicit
            if explicit is not None and explicit >= 0
            else self._prices.cost(model, input_tokens, output_tokens)
        )
        return LlmUsage(model, input_tokens, output_tokens, cost)


def _invalid(span: Span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return f"span {span.name[:64]!r} has no valid trace id (16 non-zero bytes required)"
    if len(span.span_id) != 8 or not any(span.span_id):
        return f"span {span.name[:64]!r} has no valid span id (8 non-zero bytes required)"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"span {span.name[:64]!r} has a parent span id that is not 8 bytes"
    if span.parent_span_id == span.span_id:
        return f"span {span.name[:64]!r} is its own parent"
    if span.start_time_unix_nano == 0:
        return f"span {span.name[:64]!r} has no start time"
    if max(span.start_time_unix_nano, span.end_time_unix_nano) > _MAX_TIME_NS:
        return f"span {span.name[:64]!r} has a time past the year 2262"
    return None


def _text(value: str) -> str:
    # PostgreSQL text and json cannot hold NUL; store what both engines read back alike.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _kind(attrs: dict[str, AttributeValue]) -> SpanKind:
    explicit = attrs.get(sc.TL_SPAN_KIND)
    if isinstance(explicit, str) and explicit in _TUNELOOP_KINDS:
        return explicit  # type: ignore[return-value]
    operation = attrs.get(sc.GEN_AI_OPERATION_NAME)
    if isinstance(operation, str):
        kind = _OPERATION_KINDS.get(operation)
        if kind is not None:
            return kind
    oi_kind = attrs.get(sc.OI_SPAN_KIND)
    if isinstance(oi_kind, str):
        kind = _OPENINFERENCE_KINDS.get(oi_kind.upper())
        if kind is not None:
            return kind
    if sc.TL_GUARDRAIL_NAME in attrs:
        return "guardrail"
    # Before gen_ai.operation.name existed, GenAI semconv put gen_ai.system on model calls only.
    if sc.GEN_AI_SYSTEM in attrs:
        return "llm"
    return "other"


def _first_str(attrs: dict[str, AttributeValue], *keys: str) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value if isinstance(value, str) else str(value)
    return None


def _cut(value: str | None, length: int) -> str | None:
    return value if value is None or len(value) <= length else value[:length]


def _number(value: AttributeValue) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _first_int(attrs: dict[str, AttributeValue], *keys: str) -> int:
    for key in keys:
        number = _number(attrs.get(key))
        if number is not None and 0 <= number <= _MAX_COUNT:
            return int(number)
    return 0


def _error_type(
    attrs: dict[str, AttributeValue],
    events: list[dict[str, Any]],
    status: SpanStatus,
    status_message: str,
) -> str | None:
    explicit = attrs.get(sc.ERROR_TYPE)
    if explicit:
        return str(explicit)[:256]
    for event in events:
        if event["name"] == sc.EXCEPTION_EVENT:
            exc_type = event["attributes"].get(sc.EXCEPTION_TYPE)
            if exc_type:
                return str(exc_type)[:256]
    if status == "error":
        return (status_message or "error")[:256]
    return None


def _tool_fact(
    span: Span,
    attrs: dict[str, AttributeValue],
    status: SpanStatus,
    error_type: str | None,
    start_ns: int,
    end_ns: int,
) -> ToolFact:
    name = _first_str(attrs, sc.GEN_AI_TOOL_NAME, sc.OI_TOOL_NAME)
    if name is None:
        name = span.name.removeprefix(sc.OP_EXECUTE_TOOL).strip() or span.name
    declared = attrs.get(sc.TL_TOOL_STATUS)
    tool_status: Any
    if isinstance(declared, str) and declared in _TOOL_STATUSES:
        tool_status = declared
    else:
        tool_status = "error" if status == "error" else "success"
    explicit_retryable = attrs.get(sc.TL_TOOL_RETRYABLE)
    if tool_status != "error":
        retryable = False
    elif isinstance(explicit_retryable, bool):
        retryable = explicit_retryable
    else:
        retryable = is_retryable(error_type)
    retries = _first_int(attrs, sc.TL_TOOL_RETRIES)
    return ToolFact(
        tool=name[:256],
        status=tool_status,
        error_type=error_type if tool_status == "error" else None,
        retryable=retryable,
        duration_ms=(end_ns - start_ns) / 1e6,
        retries=retries,
        started_ms=start_ns // 1_000_000,
    )


def _root_facts(
    span: Span,
    attrs: dict[str, AttributeValue],
    resource: dict[str, AttributeValue],
    status: SpanStatus,
    error_type: str | None,
    start_ns: int,
    end_ns: int,
    usage: LlmUsage,
) -> RootFacts:
    agent = (
        _first_str(attrs, sc.GEN_AI_AGENT_NAME, sc.OI_AGENT_NAME)
        or _first_str(resource, sc.SERVICE_NAME)
        or span.name
    )
    declared = attrs.get(sc.TL_RUN_OUTCOME)
    if isinstance(declared, str) and declared:
        outcome = declared[:64]
    else:
        outcome = "failure" if status == "error" else "success"
    run_attributes = {**resource, **attrs}
    return RootFacts(
        agent=agent[:256],
        # Cut to their column widths: PostgreSQL refuses a longer value (and the whole batch).
        config_version=_cut(_first_str(attrs, sc.TL_CONFIG_VERSION, sc.FEATURE_FLAG_VERSION), 128),
        experiment=_cut(_first_str(attrs, sc.FEATURE_FLAG_KEY), 256),
        variant=_cut(_first_str(attrs, sc.FEATURE_FLAG_RESULT_VARIANT), 256),
        unit_id=_cut(_first_str(attrs, sc.TL_UNIT_ID, sc.OI_USER_ID), 256),
        session_id=_cut(
            _first_str(attrs, sc.TL_SESSION_ID, sc.GEN_AI_CONVERSATION_ID, sc.OI_SESSION_ID), 256
        ),
        outcome=outcome,
        status=status,
        error_type=error_type,
        started_ms=start_ns // 1_000_000,
        duration_ms=(end_ns - start_ns) / 1e6,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=usage.cost_usd,
        attributes=run_attributes,
    )

"""Decode OTLP/HTTP trace export bodies: protobuf or JSON, optionally gzip-compressed."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tuneloop.errors import MalformedPayloadError, PayloadTooLargeError

Encoding = Literal["protobuf", "json"]

PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf", "application/octet-stream")
JSON_TYPES = ("application/json",)


def encoding_of(content_type: str | None) -> Encoding | None:
    """The OTLP encoding a Content-Type header names, or None if unsupported."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in PROTOBUF_TYPES:
        return "protobuf"
    if media in JSON_TYPES:
        return "json"
    return None


def decompress(body: bytes, content_encoding: str | None, *, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip`` (or deflate) without inflating past ``limit`` bytes."""
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in ("gzip", "deflate"):
        raise MalformedPayloadError(
            f"unsupported Content-Encoding {coding!r}: send gzip, deflate or identity"
        )
    wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise MalformedPayloadError(f"body is not valid {coding}: {exc}") from exc
    if len(out) > limit:
        raise PayloadTooLargeError(
            f"decompressed body exceeds the limit of {limit} bytes "
            "(TUNELOOP_MAX_BODY_BYTES); send smaller batches"
        )
    if not inflater.eof:
        raise MalformedPayloadError(f"{coding} body is truncated")
    return out


def decode_request(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    """Parse an ExportTraceServiceRequest; raise MalformedPayloadError naming the problem."""
    request = ExportTraceServiceRequest()
    if encoding == "protobuf":
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise MalformedPayloadError(
                f"body is not a valid OTLP ExportTraceServiceRequest protobuf: {exc}"
            ) from exc
        return request
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedPayloadError(f"body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise MalformedPayloadError("body is not valid OTLP JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise MalformedPayloadError("OTLP JSON body must be an object with a 'resourceSpans' array")
    try:
        _hex_ids_to_base64(document)
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, _BadId, TypeError, AttributeError) as exc:
        raise MalformedPayloadError(f"invalid OTLP JSON: {exc}") from exc
    except RecursionError:
        raise MalformedPayloadError("invalid OTLP JSON: nested too deeply") from None
    return request


def encode_response(
    encoding: Encoding, *, rejected_spans: int = 0, error_message: str = ""
) -> bytes:
    """An ExportTraceServiceResponse, with partial_success when spans were rejected."""
    response = ExportTraceServiceResponse()
    if rejected_spans:
        response.partial_success.rejected_spans = rejected_spans
        response.partial_success.error_message = error_message
    if encoding == "protobuf":
        serialized: bytes = response.SerializeToString()
        return serialized
    return json.dumps(json_format.MessageToDict(response)).encode()


class _BadId(ValueError):
    pass


_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP JSON spells ids in hex where protobuf JSON expects base64; convert in place."""
    resource_spans = document.get("resourceSpans", document.get("resource_spans", []))
    if not isinstance(resource_spans, list):
        raise _BadId("'resourceSpans' must be an array")
    for resource_span in resource_spans:
        if not isinstance(resource_span, dict):
            raise _BadId("each entry of 'resourceSpans' must be an object")
        scope_spans = resource_span.get("scopeSpans", resource_span.get("scope_spans", []))
        if not isinstance(scope_spans, list):
            raise _BadId("'scopeSpans' must be an array")
        for scope_span in scope_spans:
            if not isinstance(scope_span, dict):
                raise _BadId("each entry of 'scopeSpans' must be an object")
            spans = scope_span.get("spans", [])
            if not isinstance(spans, list):
                raise _BadId("'spans' must be an array")
            for span in spans:
                if not isinstance(span, dict):
                    raise _BadId("each span must be an object")
                _convert_ids(span)
                for link in span.get("links", []) or []:
                    if isinstance(link, dict):
                        _convert_ids(link)


def _convert_ids(holder: dict[str, Any]) -> None:
    for key in _ID_FIELDS:
        value = holder.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise _BadId(f"{key} must be a hex string, got {type(value).__name__}")
        try:
            raw = bytes.fromhex(value)
        except ValueError as exc:
            raise _BadId(f"{key} {value[:40]!r} is not hex") from exc
        holder[key] = base64.b64encode(raw).decode()


def hex_id(raw: bytes) -> str:
    """Lower-case hex of an id."""
    return binascii.hexlify(raw).decode()

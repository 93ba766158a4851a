"""OTLP/HTTP body decoding: encodings, compression, limits, and JSON/protobuf equivalence."""

from __future__ import annotations

import gzip
import itertools
import json
import zlib
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.otlp_factory import agent_run, request, to_otlp_json
from tuneloop.errors import MalformedPayloadError, PayloadTooLargeError
from tuneloop.settings import DEFAULT_PRICES
from tuneloop.store.schema import runs, spans, tool_calls
from tuneloop.telemetry.normalize import Normalizer
from tuneloop.telemetry.otlp import decode_request, decompress, encode_response, encoding_of
from tuneloop.telemetry.pricing import PriceTable
from tuneloop.telemetry.rows import prepare


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/x-protobuf", "protobuf"),
        ("application/protobuf", "protobuf"),
        ("Application/X-Protobuf; charset=binary", "protobuf"),
        ("application/json", "json"),
        ("application/json; charset=utf-8", "json"),
        ("text/plain", None),
        ("application/xml", None),
        ("", None),
        (None, None),
    ],
)
def test_encoding_of_content_type(content_type: str | None, expected: str | None) -> None:
    assert encoding_of(content_type) == expected


# -- compression --------------------------------------------------------------------------

BODY = b"spans " * 1000


@pytest.mark.parametrize(
    ("coding", "compressed"),
    [
        ("gzip", gzip.compress(BODY)),
        ("GZIP", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),
        ("identity", BODY),
        (None, BODY),
    ],
)
def test_decompress_round_trips(coding: str | None, compressed: bytes) -> None:
    assert decompress(compressed, coding, limit=len(BODY)) == BODY


def test_unsupported_content_encoding_is_named() -> None:
    with pytest.raises(MalformedPayloadError, match="unsupported Content-Encoding 'br'"):
        decompress(BODY, "br", limit=10**6)


def test_body_that_is_not_gzip_is_malformed() -> None:
    with pytest.raises(MalformedPayloadError, match="not valid gzip"):
        decompress(b"plainly not gzip", "gzip", limit=10**6)


def test_truncated_gzip_is_malformed() -> None:
    with pytest.raises(MalformedPayloadError, match="truncated"):
        decompress(gzip.compress(BODY)[:-12], "gzip", limit=10**6)


def test_decompression_stops_at_the_limit() -> None:
    bomb = gzip.compress(bytes(8 * 1024 * 1024))  # 8 MiB of zeros in ~8 KiB
    with pytest.raises(PayloadTooLargeError, match="limit of 1048576 bytes"):
        decompress(bomb, "gzip", limit=1024 * 1024)


def test_decompressed_body_exactly_at_the_limit_is_accepted() -> None:
    assert len(decompress(gzip.compress(BODY), "gzip", limit=len(BODY))) == len(BODY)


# -- decoding -----------------------------------------------------------------------------


def test_protobuf_and_otlp_json_decode_to_the_same_request() -> None:
    original = request(*agent_run(llm=[("gpt-4o", 10, 2)], tools=["search"]).spans)
    from_protobuf = decode_request(original.SerializeToString(), "protobuf")
    from_json = decode_request(json.dumps(to_otlp_json(original)).encode(), "json")
    assert from_protobuf == original
    assert from_json == original


def test_otlp_json_ids_are_hex_and_ints_may_be_numbers_or_strings() -> None:
    document = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "parentSpanId": "",
                                "name": "n",
                                "startTimeUnixNano": 1544712660000000000,
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [
                                    {"key": "n", "value": {"intValue": "42"}},
                                    {"key": "m", "value": {"intValue": 43}},
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    (decoded,) = decode_request(json.dumps(document).encode(), "json").resource_spans[0].scope_spans
    span = decoded.spans[0]
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"
    assert span.span_id.hex() == "eee19b7ec3c1b174"
    assert span.parent_span_id == b""
    assert span.end_time_unix_nano - span.start_time_unix_nano == 1_000_000_000
    assert [a.value.int_value for a in span.attributes] == [42, 43]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f", "not a valid OTLP ExportTraceServiceRequest protobuf"),
        (bytes(range(256)) * 4, "not a valid OTLP ExportTraceServiceRequest protobuf"),
    ],
)
def test_malformed_protobuf_is_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayloadError, match=reason):
        decode_request(body, "protobuf")


def test_truncated_protobuf_is_refused() -> None:
    whole = request(*agent_run(tools=["a", "b"]).spans).SerializeToString()
    with pytest.raises(MalformedPayloadError):
        decode_request(whole[: len(whole) // 2], "protobuf")


def _spans_doc(**span: Any) -> dict[str, Any]:
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1, 2]", "must be an object"),
        (b"[" * 100_000, "nested too deeply"),
        (json.dumps({"resourceSpans": {}}).encode(), "'resourceSpans' must be an array"),
        (json.dumps({"resourceSpans": [1]}).encode(), "must be an object"),
        (json.dumps(_spans_doc(traceId=12)).encode(), "traceId must be a hex string"),
        (json.dumps(_spans_doc(spanId="xyz")).encode(), "spanId 'xyz' is not hex"),
        (json.dumps(_spans_doc(name=5)).encode(), "name"),
        (json.dumps(_spans_doc(startTimeUnixNano="soon")).encode(), "startTimeUnixNano"),
        (json.dumps(_spans_doc(startTimeUnixNano=1.5)).encode(), "startTimeUnixNano"),
        (json.dumps(_spans_doc(attributes="a=b")).encode(), "attributes"),
        (
            json.dumps(_spans_doc(attributes=[{"key": "k", "value": {"intValue": "x"}}])).encode(),
            "intValue",
        ),
        (json.dumps(_spans_doc(links=7)).encode(), "invalid OTLP JSON"),
        (json.dumps(_spans_doc(name="\ud800")).encode(), "surrogate"),
    ],
)
def test_malformed_json_is_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayloadError) as caught:
        decode_request(body, "json")
    assert reason in str(caught.value)


def test_unknown_json_fields_are_ignored() -> None:
    document = to_otlp_json(request(*agent_run().spans))
    document["somethingNew"] = {"x": 1}
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["futureField"] = True
    decoded = decode_request(json.dumps(document).encode(), "json")
    assert len(decoded.resource_spans[0].scope_spans[0].spans) == 1


# -- responses ----------------------------------------------------------------------------


def test_full_success_response_has_no_partial_success() -> None:
    parsed = ExportTraceServiceResponse()
    parsed.ParseFromString(encode_response("protobuf"))
    assert not parsed.HasField("partial_success")
    assert json.loads(encode_response("json")) == {}


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_partial_success_response_counts_rejected_spans(encoding: Any) -> None:
    body = encode_response(encoding, rejected_spans=3, error_message="3 spans had no trace id")
    parsed = ExportTraceServiceResponse()
    if encoding == "protobuf":
        parsed.ParseFromString(body)
    else:
        json_format.Parse(body, parsed)
    assert parsed.partial_success.rejected_spans == 3
    assert parsed.partial_success.error_message == "3 spans had no trace id"


# -- the same spans in either encoding store the same facts -------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
_value = st.one_of(
    _text,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(_text, max_size=3),
)
_runs = st.fixed_dictionaries(
    {
        "agent": _text.filter(bool),
        "duration_ms": st.floats(0.001, 1e6),
        "version": st.none() | _text,
        "variant": st.none() | _text,
        "outcome": st.sampled_from([None, "success", "failure", "escalated"]),
        "error": st.none() | _text,
        "llm": st.lists(
            st.tuples(
                st.sampled_from(["gpt-4o", "claude-sonnet-4-20250514", "local"]),
                st.integers(0, 10**6),
                st.integers(0, 10**6),
            ),
            max_size=3,
        ),
        "tools": st.lists(
            st.one_of(_text.filter(bool), st.tuples(_text.filter(bool), _text.filter(bool))),
            max_size=3,
        ),
        "attrs": st.dictionaries(_text.filter(bool), _value, max_size=4),
    }
)
_projects = itertools.count()


def _stored(store: Any, project: str) -> dict[str, list[dict[str, Any]]]:
    out = {}
    with store.engine.connect() as conn:
        for table in (runs, tool_calls, spans):
            rows = conn.execute(
                sa.select(table).where(table.c.project_id == project).order_by(*table.primary_key)
            ).mappings()
            out[table.name] = [
                {key: value for key, value in row.items() if key != "project_id"} for row in rows
            ]
    return out


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(run_specs=st.lists(_runs, min_size=1, max_size=3))
def test_json_and_protobuf_encodings_store_identical_facts(
    sqlite_store: Any, run_specs: list[dict[str, Any]]
) -> None:
    runs_ = [agent_run(**spec) for spec in run_specs]
    original = request(*(s for run in runs_ for s in run.spans), resource={"deployment": "test"})
    normalizer = Normalizer(prices=PriceTable(DEFAULT_PRICES))
    from_protobuf = normalizer.normalize(decode_request(original.SerializeToString(), "protobuf"))
    from_json = normalizer.normalize(
        decode_request(json.dumps(to_otlp_json(original)).encode(), "json")
    )
    assert from_json.spans == from_protobuf.spans
    assert from_protobuf.rejected.count == 0

    sqlite_store.writer.start()
    number = next(_projects)
    sqlite_store.writer.submit(prepare(f"pb{number}", from_protobuf.spans)).result(10)
    sqlite_store.writer.submit(prepare(f"js{number}", from_json.spans)).result(10)
    stored = _stored(sqlite_store, f"pb{number}")
    assert stored == _stored(sqlite_store, f"js{number}")
    assert len(stored["runs"]) == len(runs_)
    assert len(stored["tool_calls"]) == sum(len(spec["tools"]) for spec in run_specs)
    agents = sorted(row["agent"] for row in stored["runs"])
    assert agents == sorted(spec["agent"].replace("\x00", "\ufffd")[:256] for spec in run_specs)


def test_empty_protobuf_body_is_an_empty_export() -> None:
    assert len(decode_request(b"", "protobuf").resource_spans) == 0

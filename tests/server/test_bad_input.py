"""Hostile and broken exports: refused with the right status, and nothing of them stored."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.rpc.status_pb2 import Status

from tests.conftest import LiveServer
from tests.otlp_factory import (
    PROTOBUF,
    Api,
    agent_run,
    encode,
    new_trace_id,
    request,
    span,
    stored_counts,
    to_otlp_json,
)
from tuneloop import semconv as sc
from tuneloop.settings import load_settings

LIMIT = 1024 * 1024  # the live server's max_body_bytes
MAX_ATTRIBUTES = load_settings().max_attributes_per_span
MAX_CHARS = load_settings().max_attribute_chars


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[Api]:
    with Api(live_server) as client:
        # One stored run, so that "nothing changed" is checked against real data.
        assert client.export(request(*agent_run(tools=["search"]).spans)).status_code == 200
        yield client


def snapshot(api: Api) -> tuple[dict[str, int], dict[str, int]]:
    return api.usage(), stored_counts(api.server.store, api.server.project)


def message_of(response: httpx.Response) -> str:
    if response.headers["content-type"] == PROTOBUF:
        return str(Status.FromString(response.content).message)
    return str(response.json()["message"])


def assert_refused(api: Api, cases: list[tuple[str, dict[str, Any], int, str]]) -> None:
    """Send each case; check status and reason, and that the stored data did not move."""
    before = snapshot(api)
    for name, kwargs, status, reason in cases:
        response = api.export(**kwargs)
        assert response.status_code == status, (name, response.status_code, response.content)
        assert reason in message_of(response), (name, message_of(response))
        assert snapshot(api) == before, name


def _body(**span_fields: Any) -> dict[str, Any]:
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span_fields]}]}]}


def test_malformed_bodies_are_400_with_the_reason(api: Api) -> None:
    valid = encode(request(*agent_run(tools=["a", "b"]).spans))
    assert_refused(
        api,
        [
            ("random bytes", {"body": random.Random(7).randbytes(4096)}, 400, "not a valid OTLP"),
            ("truncated protobuf", {"body": valid[:-9]}, 400, "not a valid OTLP"),
            ("not JSON", {"body": b"{'single': quotes}", "fmt": "json"}, 400, "not valid JSON"),
            ("JSON array", {"body": b"[]", "fmt": "json"}, 400, "must be an object"),
            ("deep JSON", {"body": b"[" * 200_000, "fmt": "json"}, 400, "nested too deeply"),
            (
                "resourceSpans not a list",
                {"body": {"resourceSpans": {"a": 1}}, "fmt": "json"},
                400,
                "'resourceSpans' must be an array",
            ),
            (
                "numeric trace id",
                {"body": _body(traceId=1, spanId="01" * 8), "fmt": "json"},
                400,
                "traceId must be a hex string",
            ),
            (
                "string time",
                {"body": _body(startTimeUnixNano="yesterday"), "fmt": "json"},
                400,
                "startTimeUnixNano",
            ),
            (
                "attributes as object",
                {"body": _body(attributes={"k": "v"}), "fmt": "json"},
                400,
                "attributes",
            ),
            (
                "bool as int value",
                {
                    "body": _body(attributes=[{"key": "k", "value": {"intValue": True}}]),
                    "fmt": "json",
                },
                400,
                "intValue",
            ),
            (
                "protobuf sent as JSON",
                {"body": valid, "fmt": "json"},
                400,
                "not valid JSON",
            ),
            (
                "JSON sent as protobuf",
                {"body": json.dumps(to_otlp_json(request(*agent_run().spans))).encode()},
                400,
                "not a valid OTLP",
            ),
            (
                "not gzip",
                {"body": valid, "headers": {"Content-Encoding": "gzip"}},
                400,
                "not valid gzip",
            ),
            (
                "truncated gzip",
                {"body": gzip.compress(valid)[:-10], "headers": {"Content-Encoding": "gzip"}},
                400,
                "truncated",
            ),
        ],
    )


def test_unsupported_content_type_is_415_and_encoding_400(api: Api) -> None:
    valid = encode(request(*agent_run().spans))
    assert_refused(
        api,
        [
            ("text", {"body": valid, "headers": {"Content-Type": "text/plain"}}, 415, "text/plain"),
            (
                "form",
                {"body": valid, "headers": {"Content-Type": "multipart/form-data"}},
                415,
                "multipart/form-data",
            ),
            ("brotli", {"body": valid, "headers": {"Content-Encoding": "br"}}, 400, "'br'"),
            ("zstd", {"body": valid, "headers": {"Content-Encoding": "zstd"}}, 400, "'zstd'"),
        ],
    )
    no_type = api.client.post(
        f"{api.server.url}/v1/traces",
        content=valid,
        headers=api.server.headers(api.server.ingest_key),
    )
    assert no_type.status_code == 415


def test_spans_that_cannot_be_stored_are_rejected(api: Api) -> None:
    trace_id = new_trace_id()
    own_parent = span("own-parent", trace_id=trace_id)
    own_parent.parent_span_id = own_parent.span_id
    assert_refused(
        api,
        [
            ("no trace id", {"body": request(span("x", trace_id=b""))}, 400, "no valid trace id"),
            (
                "no trace id (JSON)",
                {"body": request(span("x", trace_id=b"")), "fmt": "json"},
                400,
                "no valid trace id",
            ),
            (
                "zero span id",
                {"body": request(span("x", trace_id=trace_id, span_id=bytes(8)))},
                400,
                "no valid span id",
            ),
            ("own parent", {"body": request(own_parent)}, 400, "is its own parent"),
            (
                "past int64 time",
                {"body": request(span("x", trace_id=trace_id, start_ns=2**64 - 10**9))},
                400,
                "past the year 2262",
            ),
        ],
    )


def _padded_export(size: int) -> bytes:
    """A valid export of exactly ``size`` bytes (one span, padded with an attribute)."""
    run = agent_run()
    pad = size
    for _ in range(5):
        body = encode(request(run.root, resource={"pad": "p" * pad}))
        pad -= len(body) - size
    assert len(body) == size
    return body


def test_body_size_limit_is_413_by_length_by_stream_and_after_gzip(api: Api) -> None:
    huge_spans = [
        span(f"s{i}", trace_id=new_trace_id(), attrs={"blob": "x" * 10_000}) for i in range(120)
    ]
    inflated = gzip.compress(encode(request(*huge_spans)))
    assert len(inflated) < LIMIT
    assert_refused(
        api,
        [
            ("content-length", {"body": _padded_export(LIMIT + 1)}, 413, "exceeds the limit"),
            (
                "gzip inflating past the limit",
                {"body": inflated, "headers": {"Content-Encoding": "gzip"}},
                413,
                "decompressed body exceeds the limit of 1048576 bytes",
            ),
        ],
    )

    def chunks() -> Iterator[bytes]:
        body = _padded_export(LIMIT + 64 * 1024)
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    before = snapshot(api)
    streamed = api.client.post(
        f"{api.server.url}/v1/traces",
        content=chunks(),  # chunked transfer: no Content-Length to check up front
        headers={**api.server.headers(api.server.ingest_key), "Content-Type": PROTOBUF},
    )
    assert streamed.status_code == 413
    assert "exceeds the limit" in message_of(streamed)
    assert snapshot(api) == before

    at_limit = api.export(_padded_export(LIMIT))
    assert at_limit.status_code == 200
    assert api.usage()["runs"] == before[0]["runs"] + 1


# -- accepted, but cut down to size ---------------------------------------------------------


def root_span_of(api: Api, trace_hex: str) -> dict[str, Any]:
    (root,) = [s for s in api.json(f"traces/{trace_hex}")["spans"] if s["depth"] == 0]
    return dict(root)


def test_absurdly_long_attribute_values_are_truncated_with_a_marker(api: Api) -> None:
    run = agent_run(attrs={"prompt": "A" * (MAX_CHARS * 4), "short": "fine", "k" * 1000: "v"})
    before = api.usage()
    response = api.export(request(*run.spans))
    assert response.status_code == 200
    assert api.usage()["runs"] == before["runs"] + 1
    attributes = root_span_of(api, run.hex)["attributes"]
    assert attributes["prompt"] == "A" * MAX_CHARS + sc.TL_TRUNCATED_MARKER
    assert attributes["short"] == "fine"
    assert attributes["k" * 256 + sc.TL_TRUNCATED_MARKER] == "v"


def test_ten_thousand_attributes_are_capped_and_the_drop_is_counted(api: Api) -> None:
    run = agent_run(attrs={f"attr.{i:05d}": i for i in range(10_000)})
    response = api.export(request(*run.spans), compress=True)
    assert response.status_code == 200
    root = root_span_of(api, run.hex)
    assert len(root["attributes"]) == MAX_ATTRIBUTES
    # The agent's own attributes come first, so the run is still attributed correctly.
    assert root["attributes"][sc.GEN_AI_AGENT_NAME] == "support-bot"
    assert root["dropped_attributes"] == 10_000 + 2 - MAX_ATTRIBUTES
    assert api.json("traces", agent="support-bot")["items"][0]["trace_id"] == run.hex


def test_non_finite_and_absurd_numbers_are_ignored_not_fatal(api: Api) -> None:
    run = agent_run(
        "numbers",
        attrs={
            sc.GEN_AI_USAGE_INPUT_TOKENS: float("inf"),
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 1e300,
            sc.TL_COST_USD: float("inf"),
        },
    )
    assert api.export(request(*run.spans)).status_code == 200
    (group,) = api.json("metrics", agent="numbers")["groups"]
    assert (group["mean_input_tokens"], group["mean_output_tokens"]) == (0, 0)
    assert group["total_cost_usd"] == 0


HOSTILE = [
    "'; DROP TABLE spans; --",
    '" OR 1=1 --',
    "back\\slash 100% _under_ $.path[0]",
    "Ünïcödé ÄÖÜ ß 中文 العربية \u202eright-to-left",
    "emoji 🤖👩‍💻🇳🇱 e\u0301",
]


def test_hostile_strings_round_trip_through_ingest_filters_and_metrics(api: Api) -> None:
    runs = {
        text: agent_run(
            text, version=text, variant=text, attrs={"note": text, text: "key-as-value"}
        )
        for text in HOSTILE
    }
    for index, run in enumerate(runs.values()):
        fmt = "json" if index % 2 else "protobuf"
        assert api.export(request(*run.spans), fmt=fmt).status_code == 200

    for text, run in runs.items():
        filters = [{"agent": text}, {"version": text}, {"variant": text}, {"attr": f"note={text}"}]
        if "=" not in text:  # attr=KEY=VALUE: the first '=' ends the key
            filters.append({"attr": f"{text}=key-as-value"})
        for params in filters:
            items = api.json("traces", **params)["items"]
            assert [item["trace_id"] for item in items] == [run.hex], params
        attributes = root_span_of(api, run.hex)["attributes"]
        assert (attributes["note"], attributes[text]) == (text, "key-as-value")

    # Wildcards and quotes are matched literally, never as patterns.
    for pattern in ("%", "_", "*", "' OR '1'='1"):
        assert api.json("traces", agent=pattern)["items"] == [], pattern
    groups = api.json("metrics", group_by="version")["groups"]
    by_agent = {g["group"]["agent"]: g["group"]["version"] for g in groups}
    assert {text: by_agent.get(text) for text in HOSTILE} == {text: text for text in HOSTILE}


def test_nul_characters_are_stored_as_replacement_characters(api: Api) -> None:
    run = agent_run("nul\x00bot", tools=["to\x00ol"], attrs={"k\x00": "v\x00"})
    assert api.export(request(*run.spans)).status_code == 200
    (item,) = api.json("traces", agent="nul\ufffdbot")["items"]
    assert item["trace_id"] == run.hex
    assert root_span_of(api, run.hex)["attributes"]["k\ufffd"] == "v\ufffd"
    refused = api.get("/api/v1/traces", agent="nul\x00bot")
    assert refused.status_code == 400
    assert "NUL" in refused.json()["error"]["message"]

"""A trace laid out for the waterfall: bars, headline facts, messages, event timeline."""

from __future__ import annotations

import json
from typing import Any

from tuneloop import semconv as sc
from tuneloop.server.dashboard.waterfall import build, headline, message_texts

T0 = 1_767_225_600_000_000_000
MS = 1_000_000


def span(span_id: str, start_ms: float, end_ms: float, *, kind: str = "other", depth: int = 0,
         status: str = "unset", attributes: dict[str, Any] | None = None,
         events: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "span_id": span_id,
        "parent_span_id": None,
        "name": f"span {span_id}",
        "kind": kind,
        "start_ns": T0 + int(start_ms * MS),
        "end_ns": T0 + int(end_ms * MS),
        "duration_ms": end_ms - start_ms,
        "status": status,
        "depth": depth,
        "attributes": attributes or {},
        "events": events or [],
        "status_message": "",
        "resource": None,
        "dropped_attributes": 0,
    }


def test_bars_are_placed_relative_to_the_whole_trace() -> None:
    trace = {
        "spans": [
            span("a", 0, 1000, kind="agent"),
            span(
                "b",
                250,
                750,
                kind="tool",
                depth=1,
                attributes={sc.TL_TOOL_STATUS: "error", sc.GEN_AI_TOOL_NAME: "refund"},
            ),
            span(
                "c",
                100,
                200,
                kind="guardrail",
                depth=1,
                attributes={sc.TL_GUARDRAIL_VERDICT: "block", sc.TL_GUARDRAIL_NAME: "pii"},
            ),
        ]
    }
    rows, events, duration = build(trace)
    assert duration == 1000.0
    assert [(r.start, r.length) for r in rows] == [(0.0, 1.0), (0.25, 0.5), (0.1, 0.1)]
    assert [r.css for r in rows] == ["k-agent", "k-error", "k-block"]
    assert ("tool", "refund") in rows[1].facts and ("tool status", "error") in rows[1].facts
    assert rows[2].verdict == "block"
    assert events == []


def test_a_model_call_shows_its_usage_and_messages_and_a_tool_its_input_and_output() -> None:
    attributes = {
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 1200,
        sc.TL_COST_USD: 0.004,
        sc.GEN_AI_INPUT_MESSAGES: '[{"role": "user", "content": "Where is my order?"}]',
        sc.GEN_AI_OUTPUT_MESSAGES: json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "Tomorrow."}]}]
        ),
    }
    tool = {sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"id": 1}', sc.GEN_AI_TOOL_CALL_RESULT: '{"ok": true}'}
    llm_span = span("a", 0, 10, kind="llm", attributes=attributes)
    rows, _, _ = build({"spans": [llm_span, span("b", 10, 20, kind="tool", attributes=tool)]})
    llm, call = rows
    assert ("model", "gpt-4o-mini") in llm.facts
    assert ("input tokens", "1200") in llm.facts
    assert ("cost", "$0.004") in llm.facts
    assert llm.messages == [
        ("input", [("user", "Where is my order?")]),
        ("output", [("assistant", "Tomorrow.")]),
    ]
    assert (call.tool_input, call.tool_output) == ('{"id": 1}', '{"ok": true}')
    assert headline(tool) == {sc.GEN_AI_TOOL_CALL_ARGUMENTS, sc.GEN_AI_TOOL_CALL_RESULT}


def test_events_of_every_span_make_one_timeline_in_time_order() -> None:
    late = {"name": "run.state", "time_ns": T0 + 900 * MS, "attributes": {"to": "done"}}
    early = {"name": "feature_flag.evaluation", "time_ns": T0 + 5 * MS, "attributes": {}}
    no_time = {"name": "exception", "attributes": None}
    spans = [span("a", 0, 1000, events=[late]), span("b", 50, 60, events=[early, no_time])]
    _, events, _ = build({"spans": spans})
    assert [(e.name, e.offset_ms, e.span_name) for e in events] == [
        ("feature_flag.evaluation", 5.0, "span b"),
        ("exception", 50.0, "span b"),
        ("run.state", 900.0, "span a"),
    ]
    assert events[1].attributes == {}


def test_message_texts_reads_the_shapes_instrumentations_send() -> None:
    assert message_texts('[{"role": "user", "content": "hi"}]') == [("user", "hi")]
    assert message_texts({"role": "system", "content": [{"text": "a"}, "b"]}) == [
        ("system", "a\nb")
    ]
    assert message_texts("plain text") == [("", "plain text")]
    assert message_texts(42) == []
    assert message_texts('["bare"]') == [("", "bare")]


def test_an_empty_trace() -> None:
    assert build({"spans": []}) == ([], [], 0.0)

"""A trace as the waterfall page draws it: rows, bars, and what each span carries.

``Queries.get_trace`` gives the spans depth-first with their depth; this module places
each span's bar relative to the trace, pulls out what a reader looks for first (model
and tokens, tool arguments and result, a guardrail's verdict, messages) and lists every
span event on one timeline: run state transitions, flag evaluations, failed tool
attempts, exceptions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tuneloop import semconv as sc

# Attributes shown in a span's headline rather than only in its attribute table.
_TOOL_INPUT = (sc.GEN_AI_TOOL_CALL_ARGUMENTS,)
_TOOL_OUTPUT = (sc.GEN_AI_TOOL_CALL_RESULT,)
_MESSAGES = {sc.GEN_AI_INPUT_MESSAGES: "input", sc.GEN_AI_OUTPUT_MESSAGES: "output"}


@dataclass(frozen=True, slots=True)
class Event:
    """A span event on the trace timeline."""

    name: str
    offset_ms: float
    span_name: str
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Row:
    """One span of the waterfall."""

    span: dict[str, Any]
    depth: int
    start: float
    length: float
    offset_ms: float
    css: str
    facts: list[tuple[str, str]]
    tool_input: Any = None
    tool_output: Any = None
    messages: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    verdict: str | None = None


def _fact(attributes: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in attributes and attributes[key] not in (None, ""):
            return attributes[key]
    return None


def message_texts(value: Any) -> list[tuple[str, str]]:
    """``(role, text)`` of GenAI messages held as JSON text (or already decoded)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [("", value)]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return []
    found = []
    for message in value:
        if not isinstance(message, dict):
            found.append(("", str(message)))
            continue
        role = str(message.get("role", ""))
        content = message.get("content")
        if content is None and isinstance(message.get("parts"), list):
            texts = [
                str(part.get("content", part.get("text", "")))
                for part in message["parts"]
                if isinstance(part, dict)
            ]
            content = "\n".join(text for text in texts if text)
        if isinstance(content, list):
            content = "\n".join(
                str(part.get("text", part)) if isinstance(part, dict) else str(part)
                for part in content
            )
        found.append((role, "" if content is None else str(content)))
    return found


def _css(span: dict[str, Any], verdict: str | None) -> str:
    if span["status"] == "error" or span["attributes"].get(sc.TL_TOOL_STATUS) == "error":
        return "k-error"
    if verdict in (sc.GUARDRAIL_VERDICT_BLOCK, sc.GUARDRAIL_VERDICT_REQUIRE_APPROVAL):
        return "k-block"
    return f"k-{span['kind']}"


def _facts(span: dict[str, Any]) -> list[tuple[str, str]]:
    a = span["attributes"]
    facts: list[tuple[str, str]] = []
    for label, keys in (
        ("model", (sc.GEN_AI_RESPONSE_MODEL, sc.GEN_AI_REQUEST_MODEL, sc.OI_LLM_MODEL_NAME)),
        ("input tokens", (sc.GEN_AI_USAGE_INPUT_TOKENS, sc.OI_LLM_TOKEN_COUNT_PROMPT)),
        ("output tokens", (sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.OI_LLM_TOKEN_COUNT_COMPLETION)),
        ("tool", (sc.GEN_AI_TOOL_NAME, sc.OI_TOOL_NAME)),
        ("tool status", (sc.TL_TOOL_STATUS,)),
        ("retries", (sc.TL_TOOL_RETRIES,)),
        ("guardrail", (sc.TL_GUARDRAIL_NAME,)),
        ("error", (sc.ERROR_TYPE,)),
        ("outcome", (sc.TL_RUN_OUTCOME,)),
    ):
        value = _fact(a, *keys)
        if value is not None:
            facts.append((label, str(value)))
    cost = _fact(a, sc.TL_COST_USD)
    if cost is not None:
        facts.append(("cost", f"${float(cost):.6f}".rstrip("0").rstrip(".")))
    return facts


def build(trace: dict[str, Any]) -> tuple[list[Row], list[Event], float]:
    """Waterfall rows, the event timeline and the trace's duration in milliseconds."""
    spans: list[dict[str, Any]] = trace["spans"]
    if not spans:
        return [], [], 0.0
    t0 = min(span["start_ns"] for span in spans)
    t1 = max(span["end_ns"] for span in spans)
    total = max(t1 - t0, 1)
    rows = []
    events = []
    for span in spans:
        a = span["attributes"]
        verdict = _fact(a, sc.TL_GUARDRAIL_VERDICT)
        messages = [(which, message_texts(a[key])) for key, which in _MESSAGES.items() if key in a]
        rows.append(
            Row(
                span=span,
                depth=span["depth"],
                start=(span["start_ns"] - t0) / total,
                length=(span["end_ns"] - span["start_ns"]) / total,
                offset_ms=(span["start_ns"] - t0) / 1e6,
                css=_css(span, verdict),
                facts=_facts(span),
                tool_input=_fact(a, *_TOOL_INPUT),
                tool_output=_fact(a, *_TOOL_OUTPUT),
                messages=messages,
                verdict=None if verdict is None else str(verdict),
            )
        )
        for event in span["events"]:
            events.append(
                Event(
                    name=event.get("name", ""),
                    offset_ms=(int(event.get("time_ns") or span["start_ns"]) - t0) / 1e6,
                    span_name=span["name"],
                    attributes=event.get("attributes") or {},
                )
            )
    events.sort(key=lambda event: event.offset_ms)
    return rows, events, total / 1e6


def headline(attributes: dict[str, Any]) -> set[str]:
    """Attribute keys a span's detail shows in their own sections (not the table)."""
    return {key for key in (*_TOOL_INPUT, *_TOOL_OUTPUT, *_MESSAGES) if key in attributes}

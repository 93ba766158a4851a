"""A production run as evals see it, read from a stored trace.

A trace (``GET /api/v1/traces/{id}``) holds the run's facts (outcome, latency, cost,
tool errors) and its spans. What the user asked and what the agent answered come from
span attributes, first found wins:

- input: the root span's ``gen_ai.input.messages`` (OpenTelemetry GenAI) or
  ``input.value`` (OpenInference); else the first model call's input messages (system
  prompts left out) or ``input.value``;
- output: the root span's ``gen_ai.output.messages`` or ``output.value``; else the
  last model call's;
- tool calls: every tool span in start order, with ``gen_ai.tool.call.arguments`` and
  ``tuneloop.tool.status`` (or the span's error status).

Messages may be written in the GenAI form (``{"role", "parts": [{"type": "text",
"content"}]}``) or the chat-completions form (``{"role", "content"}``). A single user
message becomes its text; a conversation stays a list of ``{role, content}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tuneloop import semconv
from tuneloop.evals.target import ToolCallRecord

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_TOOL_PREFIX = f"{semconv.OP_EXECUTE_TOOL} "


@dataclass(frozen=True, slots=True)
class ProductionRun:
    """One stored run: what it was asked, what it answered and did, and how it went."""

    trace_id: str
    agent: str | None
    version: str | None
    outcome: str | None
    input: Any
    output: Any = None
    tool_calls: tuple[ToolCallRecord, ...] = ()
    latency_ms: float | None = None
    cost_usd: float | None = None
    tool_call_count: int = 0
    tool_errors: int = 0
    error_type: str | None = None
    started_ms: int | None = None
    truncated: bool = False
    feedback: tuple[Mapping[str, Any], ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def succeeded(self) -> bool:
        """Whether production recorded the run as a success."""
        return self.outcome == "success"


def read_production_run(trace: Mapping[str, Any]) -> ProductionRun | None:
    """The run a trace document records, or None when it has no root span or no input.

    Runs traced by ``tuneloop eval run --trace`` (their root carries
    ``tuneloop.eval.run_id``) are not production runs: None.
    """
    facts = trace.get("run")
    spans: Sequence[Mapping[str, Any]] = trace.get("spans") or ()
    if not facts or not spans:
        return None
    root = _root(spans, facts.get("root_span_id"))
    attributes = _attributes(root)
    if semconv.TL_EVAL_RUN_ID in attributes:
        return None
    truncated: list[bool] = []
    by_start = sorted(spans, key=lambda span: span.get("start_ns") or 0)
    models = [span for span in by_start if span.get("kind") == "llm"]
    found_input = _messages_value(attributes.get(semconv.GEN_AI_INPUT_MESSAGES), truncated)
    if found_input is None:
        found_input = _plain_value(attributes, semconv.OI_INPUT_VALUE, truncated)
    if found_input is None and models:
        found_input = _model_value(models[0], "input", truncated)
    if found_input is None:
        return None
    output = _messages_value(attributes.get(semconv.GEN_AI_OUTPUT_MESSAGES), truncated)
    if output is None:
        output = _plain_value(attributes, semconv.OI_OUTPUT_VALUE, truncated)
    if output is None and models:
        output = _model_value(models[-1], "output", truncated)
    tools = [_tool_call(span, truncated) for span in by_start if span.get("kind") == "tool"]
    return ProductionRun(
        trace_id=str(trace.get("trace_id") or facts.get("trace_id")),
        agent=facts.get("agent"),
        version=facts.get("version"),
        outcome=facts.get("outcome"),
        input=found_input,
        output=output,
        tool_calls=tuple(tools),
        latency_ms=facts.get("duration_ms"),
        cost_usd=facts.get("cost_usd"),
        tool_call_count=int(facts.get("tool_calls") or len(tools)),
        tool_errors=int(facts.get("tool_errors") or 0),
        error_type=facts.get("error_type"),
        started_ms=facts.get("started_ms"),
        truncated=any(truncated),
        feedback=tuple(trace.get("feedback") or ()),
        attributes=MappingProxyType(dict(attributes)),
    )


def _root(spans: Sequence[Mapping[str, Any]], root_id: str | None) -> Mapping[str, Any]:
    for span in spans:
        if root_id is not None and span.get("span_id") == root_id:
            return span
    return next((s for s in spans if s.get("depth", 0) == 0 and s.get("kind") == "agent"), spans[0])


def _attributes(span: Mapping[str, Any]) -> Mapping[str, Any]:
    attributes = span.get("attributes")
    return attributes if isinstance(attributes, Mapping) else _EMPTY


def _decoded(value: Any, truncated: list[bool]) -> Any:
    """JSON text as data; other values as they are. A truncated value stays text."""
    if not isinstance(value, str):
        return value
    if value.endswith(semconv.TL_TRUNCATED_MARKER):
        truncated.append(True)
        return value
    text = value.strip()
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value
    return value


def _plain_value(attributes: Mapping[str, Any], key: str, truncated: list[bool]) -> Any:
    value = attributes.get(key)
    if value is None or value == "":
        return None
    return _decoded(value, truncated)


def _model_value(span: Mapping[str, Any], which: str, truncated: list[bool]) -> Any:
    attributes = _attributes(span)
    messages, plain = (
        (semconv.GEN_AI_INPUT_MESSAGES, semconv.OI_INPUT_VALUE)
        if which == "input"
        else (semconv.GEN_AI_OUTPUT_MESSAGES, semconv.OI_OUTPUT_VALUE)
    )
    found = _messages_value(attributes.get(messages), truncated)
    return found if found is not None else _plain_value(attributes, plain, truncated)


def _messages_value(raw: Any, truncated: list[bool]) -> Any:
    """A messages attribute as an eval input or output (see the module docstring)."""
    if raw is None or raw == "":
        return None
    data = _decoded(raw, truncated)
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        return data  # text that is not JSON (or was truncated): keep it as it is
    messages = [
        {"role": str(item.get("role") or "user"), "content": message_text(item)}
        for item in data
        if isinstance(item, Mapping) and item.get("role") != "system"
    ]
    if not messages:
        return None
    if len(messages) == 1:
        return messages[0]["content"]
    return messages


def message_text(message: Mapping[str, Any]) -> str:
    """The text of one message in the GenAI (``parts``) or chat-completions (``content``) form."""
    parts = message.get("parts")
    if isinstance(parts, list):
        return "".join(_part_text(part) for part in parts)
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_part_text(part) for part in content)
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if not isinstance(part, Mapping):
        return ""
    if part.get("type", "text") != "text":
        return ""
    text = part.get("content", part.get("text", ""))
    return text if isinstance(text, str) else ""


def _tool_call(span: Mapping[str, Any], truncated: list[bool]) -> ToolCallRecord:
    attributes = _attributes(span)
    name = attributes.get(semconv.GEN_AI_TOOL_NAME) or attributes.get(semconv.OI_TOOL_NAME)
    if not isinstance(name, str) or not name:
        name = str(span.get("name") or "tool").removeprefix(_TOOL_PREFIX)
    arguments = _decoded(attributes.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS), truncated)
    if not isinstance(arguments, Mapping):
        arguments = {} if arguments is None else {"_raw": arguments}
    status = attributes.get(semconv.TL_TOOL_STATUS)
    if not isinstance(status, str):
        status = semconv.TOOL_STATUS_ERROR if span.get("status") == "error" else None
    return ToolCallRecord(name, MappingProxyType(dict(arguments)), status)

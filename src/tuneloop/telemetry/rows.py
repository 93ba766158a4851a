"""Normalized spans as database rows, and span payload encoding.

This is the CPU-bound half of ingest. It imports no database or web code so that
ingest worker processes stay small.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tuneloop.analysis.quantiles import bucket_of
from tuneloop.telemetry.model import STATUS_CODES, NormalizedSpan

# Small payloads (most tool and guardrail spans) gain little from compression.
_COMPRESS_FROM = 320


def encode_payload(span: NormalizedSpan) -> bytes:
    """Compressed JSON of what a span carries beyond its indexed columns."""
    body: dict[str, Any] = {"a": span.attributes}
    if span.events:
        body["e"] = span.events
    if span.status_message:
        body["m"] = span.status_message
    if span.resource:
        body["r"] = span.resource
    if span.dropped_attributes:
        body["d"] = span.dropped_attributes
    raw = orjson.dumps(body)
    # Small payloads (most tool and guardrail spans) gain little from compression.
    if len(raw) < _COMPRESS_FROM:
        return b"j" + raw
    return b"z" + zlib.compress(raw, 1)


def decode_payload(payload: bytes) -> dict[str, Any]:
    """The inverse of encode_payload, with full key names."""
    raw = zlib.decompress(payload[1:]) if payload[:1] == b"z" else payload[1:]
    body = orjson.loads(raw)
    return {
        "attributes": body.get("a", {}),
        "events": body.get("e", []),
        "status_message": body.get("m", ""),
        "resource": body.get("r"),
        "dropped_attributes": body.get("d", 0),
    }


@dataclass(slots=True)
class PreparedSpans:
    """One request's spans as ready-made rows: cheap to pickle between processes.

    Lists are aligned by span: ``keys[i]`` is span i's (trace id, span id).
    """

    project_id: str
    keys: list[tuple[str, str]]
    span_rows: list[tuple[Any, ...]]
    tool_rows: list[tuple[Any, ...] | None]
    # (llm calls, input tokens, output tokens, cost, tool calls, tool errors, retryable)
    counters: list[tuple[int, int, int, float, int, int, int]]
    roots: list[dict[str, Any] | None]

    def __len__(self) -> int:
        return len(self.keys)


def prepare(project_id: str, batch: Sequence[NormalizedSpan]) -> PreparedSpans:
    """Turn normalized spans into rows (CPU work, no database access)."""
    prepared = PreparedSpans(project_id, [], [], [], [], [])
    for s in batch:
        prepared.keys.append((s.trace_id, s.span_id))
        prepared.span_rows.append(
            (
                project_id,
                s.trace_id,
                s.span_id,
                s.parent_span_id,
                s.name,
                s.kind,
                s.start_ns,
                s.end_ns,
                STATUS_CODES[s.status],
                encode_payload(s),
            )
        )
        tool = s.tool
        llm = s.llm
        prepared.tool_rows.append(
            None
            if tool is None
            else (
                project_id,
                s.trace_id,
                s.span_id,
                tool.tool,
                tool.status,
                tool.error_type,
                tool.retryable,
                tool.duration_ms,
                bucket_of(tool.duration_ms),
                tool.retries,
                tool.started_ms,
                # The run's identity: ingest copies it from the root span when it is known.
                None,
                None,
                None,
                None,
            )
        )
        tool_error = tool is not None and tool.status == "error"
        prepared.counters.append(
            (
                1 if llm else 0,
                llm.input_tokens if llm else 0,
                llm.output_tokens if llm else 0,
                llm.cost_usd if llm else 0.0,
                1 if tool else 0,
                1 if tool_error else 0,
                1 if tool_error and tool.retryable else 0,  # type: ignore[union-attr]
            )
        )
        root = s.root
        prepared.roots.append(
            None
            if root is None
            else {
                "root_span_id": s.span_id,
                "agent": root.agent,
                "config_version": root.config_version,
                "experiment": root.experiment,
                "variant": root.variant,
                "unit_id": root.unit_id,
                "session_id": root.session_id,
                "outcome": root.outcome,
                "status": STATUS_CODES[root.status],
                "error_type": root.error_type,
                "started_ms": root.started_ms,
                "duration_ms": root.duration_ms,
                "latency_bucket": bucket_of(root.duration_ms),
                "root_input_tokens": root.input_tokens,
                "root_output_tokens": root.output_tokens,
                "root_cost_usd": root.cost_usd,
                "attributes": root.attributes,
            }
        )
    return prepared

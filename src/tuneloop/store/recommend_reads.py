"""Reads the facts recommendation analyzers need into a pure `TraceWindow`.

Bounded: at most ``max_runs`` most recent runs of the agent (and version) in the
window, their tool calls and feedback, and the model, tool and guardrail spans of the
``max_span_runs`` most recent of them (span payloads are decompressed, so they are the
expensive part). Every query starts from ``ix_runs_agent_time`` and joins on the
tables' primary keys.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import sqlalchemy as sa

from tuneloop import semconv as sc
from tuneloop.analysis.recommend.window import (
    Correction,
    FeedbackFact,
    RunFact,
    SpanSample,
    ToolCallFact,
    TraceWindow,
)
from tuneloop.store.ingest import decode_payload
from tuneloop.store.schema import feedback, runs, spans, tool_calls
from tuneloop.telemetry.model import STATUS_CODES

SPAN_KINDS = ("llm", "tool", "guardrail", "other")
_TEXT_CHARS = 500
_R = runs.c


def _conditions(
    project_id: str, agent: str, version: str | None, since_ms: int, until_ms: int
) -> list[Any]:
    conds = [
        _R.project_id == project_id,
        _R.agent == agent,
        _R.started_ms >= since_ms,
        _R.started_ms < until_ms,
        _R.has_root.is_(True),
    ]
    if version is not None:
        conds.append(_R.config_version == version)
    return conds


def busiest_version(
    engine: sa.Engine, project_id: str, agent: str, *, since_ms: int, until_ms: int
) -> str | None:
    """The config version with the most runs of ``agent`` in the window, if any."""
    query = (
        sa.select(_R.config_version, sa.func.count().label("n"))
        .where(
            *_conditions(project_id, agent, None, since_ms, until_ms),
            _R.config_version.is_not(None),
        )
        .group_by(_R.config_version)
        .order_by(sa.desc("n"), _R.config_version)
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else str(row.config_version)


def read_window(
    engine: sa.Engine,
    project_id: str,
    agent: str,
    *,
    version: str | None,
    since_ms: int,
    until_ms: int,
    max_runs: int = 50_000,
    max_span_runs: int = 10_000,
) -> TraceWindow:
    """The facts of ``agent`` (``version``: one version, None: all) in ``[since_ms, until_ms)``."""
    conds = _conditions(project_id, agent, version, since_ms, until_ms)
    with engine.connect() as conn:
        run_rows = conn.execute(
            sa.select(
                _R.trace_id,
                _R.started_ms,
                _R.duration_ms,
                _R.outcome,
                _R.error_type,
                _R.llm_calls,
                _R.input_tokens,
                _R.output_tokens,
                _R.cost_usd,
                _R.root_input_tokens,
                _R.root_output_tokens,
                _R.root_cost_usd,
                _R.tool_calls,
                _R.tool_errors,
                _R.session_id,
                _R.attributes,
            )
            .where(*conds)
            .order_by(_R.started_ms.desc(), _R.trace_id.desc())
            .limit(max_runs + 1)
        ).all()
        capped = len(run_rows) > max_runs
        run_rows = run_rows[:max_runs]
        facts = [_run_fact(row) for row in run_rows]
        if not facts:
            return TraceWindow(agent, version, since_ms, until_ms)
        oldest = run_rows[-1].started_ms
        span_rows_from = run_rows[min(max_span_runs, len(run_rows)) - 1].started_ms
        joined = sa.and_(
            _R.project_id == tool_calls.c.project_id, _R.trace_id == tool_calls.c.trace_id
        )
        tc = tool_calls.c
        tool_rows = conn.execute(
            sa.select(
                tc.trace_id,
                tc.tool,
                tc.status,
                tc.error_type,
                tc.retryable,
                tc.duration_ms,
                tc.retries,
                tc.started_ms,
            )
            .select_from(tool_calls.join(runs, joined))
            .where(*conds, _R.started_ms >= oldest)
        ).all()
        joined = sa.and_(_R.project_id == spans.c.project_id, _R.trace_id == spans.c.trace_id)
        s = spans.c
        span_rows = conn.execute(
            sa.select(s.trace_id, s.span_id, s.kind, s.start_ns, s.end_ns, s.status, s.payload)
            .select_from(spans.join(runs, joined))
            .where(*conds, _R.started_ms >= span_rows_from, s.kind.in_(SPAN_KINDS))
        ).all()
        joined = sa.and_(_R.project_id == feedback.c.project_id, _R.trace_id == feedback.c.trace_id)
        f = feedback.c
        feedback_rows = conn.execute(
            sa.select(f.trace_id, f.name, f.value, f.created_ms, f.comment)
            .select_from(feedback.join(runs, joined))
            .where(*conds, _R.started_ms >= oldest)
        ).all()
    samples = [sample for row in span_rows if (sample := _span_sample(row)) is not None]
    return TraceWindow(
        agent=agent,
        version=version,
        since_ms=since_ms,
        until_ms=until_ms,
        runs=tuple(facts),
        tool_calls=tuple(
            ToolCallFact(
                r.trace_id,
                r.tool,
                r.status,
                r.error_type,
                bool(r.retryable),
                float(r.duration_ms),
                int(r.retries),
                int(r.started_ms),
            )
            for r in tool_rows
        ),
        spans=tuple(samples),
        feedback=tuple(
            FeedbackFact(r.trace_id, r.name, float(r.value), int(r.created_ms), r.comment)
            for r in feedback_rows
        ),
        runs_capped=capped,
        span_runs=len({sample.trace_id for sample in samples}),
    )


def _run_fact(row: Any) -> RunFact:
    attrs = row.attributes if isinstance(row.attributes, dict) else {}
    rate = _number(attrs.get(sc.TL_SAMPLE_RATE))
    weight = 1.0 / rate if rate is not None and 0 < rate <= 1 else 1.0
    corrections: tuple[Correction, ...] = ()
    step = attrs.get(sc.TL_DECISION_STEP)
    if step and _truthy(attrs.get(sc.TL_DECISION_CORRECTED)):
        value = attrs.get(sc.TL_DECISION_CORRECTED_VALUE)
        corrections = (Correction(str(step), None if value is None else str(value)),)
    with_llm = bool(row.llm_calls)
    return RunFact(
        trace_id=row.trace_id,
        started_ms=int(row.started_ms),
        duration_ms=float(row.duration_ms or 0.0),
        outcome=row.outcome or "success",
        error_type=row.error_type,
        input_tokens=int(row.input_tokens if with_llm else row.root_input_tokens),
        output_tokens=int(row.output_tokens if with_llm else row.root_output_tokens),
        cost_usd=float(row.cost_usd if with_llm else row.root_cost_usd),
        tool_calls=int(row.tool_calls),
        tool_errors=int(row.tool_errors),
        session_id=row.session_id,
        weight=weight,
        corrections=corrections,
    )


def _span_sample(row: Any) -> SpanSample | None:
    attrs: dict[str, Any] = decode_payload(row.payload)["attributes"]
    step = _str(attrs.get(sc.TL_DECISION_STEP))
    guardrail = _str(attrs.get(sc.TL_GUARDRAIL_NAME))
    overridden = _truthy(attrs.get(sc.TL_GUARDRAIL_OVERRIDDEN))
    kind = row.kind
    if kind == "other" and not (step or guardrail or overridden):
        return None
    error_type = None
    if row.status == STATUS_CODES["error"] or attrs.get(sc.TL_TOOL_STATUS) == sc.TOOL_STATUS_ERROR:
        error_type = _str(attrs.get(sc.ERROR_TYPE)) or "error"
    common: dict[str, Any] = {
        "trace_id": row.trace_id,
        "span_id": row.span_id,
        "kind": kind,
        "started_ms": row.start_ns // 1_000_000,
        "duration_ms": (row.end_ns - row.start_ns) / 1e6,
        "error_type": error_type,
        "decision_step": step,
        "decision_value": _str(attrs.get(sc.TL_DECISION_VALUE)),
        "corrected": _truthy(attrs.get(sc.TL_DECISION_CORRECTED)),
        "corrected_value": _str(attrs.get(sc.TL_DECISION_CORRECTED_VALUE)),
        "guardrail": guardrail,
        "verdict": _str(attrs.get(sc.TL_GUARDRAIL_VERDICT)),
        "overridden": overridden,
    }
    if kind == "tool":
        # Arguments matter as a hash only (repeated inputs); their text is not read.
        arguments = attrs.get(sc.GEN_AI_TOOL_CALL_ARGUMENTS)
        return SpanSample(
            **common, tool=_str(attrs.get(sc.GEN_AI_TOOL_NAME)), input_hash=_hash(arguments)
        )
    if kind != "llm":
        return SpanSample(**common)
    raw_input = attrs.get(sc.GEN_AI_INPUT_MESSAGES)
    return SpanSample(
        **common,
        model=_str(attrs.get(sc.GEN_AI_RESPONSE_MODEL))
        or _str(attrs.get(sc.GEN_AI_REQUEST_MODEL))
        or _str(attrs.get(sc.OI_LLM_MODEL_NAME)),
        provider=_str(attrs.get(sc.GEN_AI_PROVIDER_NAME)) or _str(attrs.get(sc.GEN_AI_SYSTEM)),
        temperature=_number(attrs.get(sc.GEN_AI_REQUEST_TEMPERATURE)),
        input_tokens=_count(attrs, sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_PROMPT_TOKENS),
        output_tokens=_count(
            attrs, sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_COMPLETION_TOKENS
        ),
        prompt_name=_str(attrs.get(sc.TL_PROMPT_NAME)),
        input_hash=_hash(raw_input),
        input_text=_text(raw_input),
        output_text=_text(attrs.get(sc.GEN_AI_OUTPUT_MESSAGES)),
    )


def _count(attrs: dict[str, Any], *keys: str) -> int:
    for key in keys:
        value = _number(attrs.get(key))
        if value is not None:
            return int(value)
    return 0


def _str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _hash(value: Any) -> str | None:
    if value is None or value == "":
        return None
    raw = (
        value.encode()
        if isinstance(value, str)
        else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def _text(value: Any) -> str | None:
    """The readable text of a messages attribute (its last message's text), cut short."""
    if value is None:
        return None
    parsed: Any = value
    if isinstance(value, str):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value[:_TEXT_CHARS]
    if isinstance(parsed, list) and parsed and isinstance(parsed[-1], dict):
        message = parsed[-1]
        parts = message.get("parts")
        if isinstance(parts, list):
            texts = [str(p.get("content", "")) for p in parts if isinstance(p, dict)]
            return " ".join(texts)[:_TEXT_CHARS]
        if "content" in message:
            return str(message["content"])[:_TEXT_CHARS]
    return orjson.dumps(parsed, default=str).decode()[:_TEXT_CHARS]

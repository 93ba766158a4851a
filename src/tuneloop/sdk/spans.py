"""Span helpers for agent runs, model calls, tool calls and guardrails.

They produce spans attributed per the OpenTelemetry GenAI semantic conventions, plus
the ``tuneloop.*`` attributes the platform reads. Exceptions raised by the host inside
a block are recorded on the span and propagate unchanged: they are the host's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self, get_args

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from tuneloop import semconv
from tuneloop.clock import Clock
from tuneloop.errors import InvalidInputError
from tuneloop.telemetry.model import OUTCOMES, Outcome

ToolResultStatus = Literal["success", "partial"]


def to_json(value: object) -> str:
    """Serialize messages, arguments or results for a span attribute; never fails."""
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):  # circular references, exotic keys
        return repr(value)


class _Scope:
    """One span made current for the duration of a ``with`` block.

    With a clock, the span starts and ends at the clock's times (simulated time);
    without one, OpenTelemetry reads the system clock.
    """

    _name: str
    _kind: SpanKind = SpanKind.INTERNAL
    _span: trace.Span = trace.INVALID_SPAN
    _token: object = None

    def __init__(
        self,
        tracer: trace.Tracer,
        attributes: dict[str, AttributeValue],
        clock: Clock | None = None,
    ) -> None:
        self._tracer = tracer
        self._attributes = attributes
        self._clock = clock

    @property
    def span(self) -> trace.Span:
        """The OpenTelemetry span, for anything the helpers do not cover."""
        return self._span

    def _start(self, parent: otel_context.Context | None, links: Sequence[Link] = ()) -> None:
        self._span = self._tracer.start_span(
            self._name,
            parent,
            self._kind,
            self._attributes,
            links,
            start_time=self._now_ns(),
            record_exception=False,
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def _now_ns(self) -> int | None:
        return None if self._clock is None else self._clock.now_ns()

    def _set(self, key: str, value: AttributeValue | None) -> None:
        if value is not None:
            self._span.set_attribute(key, value)

    def _set_json(self, key: str, value: object | None) -> None:
        # Serializing messages is the costly part: skip it for spans sampled out.
        if value is not None and self._span.is_recording():
            self._span.set_attribute(key, to_json(value))

    def _error(self, error_type: str, message: str | None) -> None:
        self._span.set_attribute(semconv.ERROR_TYPE, error_type)
        self._span.set_status(Status(StatusCode.ERROR, message or error_type))

    def _on_exception(self, exc: BaseException) -> None:
        self._error(type(exc).__name__, str(exc) or type(exc).__name__)

    def _on_close(self) -> None:
        """Attributes that depend on how the block ended, set just before the span ends."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is not None:
                self._span.record_exception(exc, timestamp=self._now_ns(), escaped=True)
                self._on_exception(exc)
            self._on_close()
        finally:
            if self._token is not None:
                otel_context.detach(self._token)  # type: ignore[arg-type]
                self._token = None
            self._span.end(end_time=self._now_ns())


class _Child(_Scope):
    """A span under a run: under the current span if it is in the run's trace."""

    def __init__(
        self, run: Run, name: str, kind: SpanKind, attributes: dict[str, AttributeValue]
    ) -> None:
        super().__init__(run._tracer, attributes, run._clock)
        self._run = run
        self._name = name
        self._kind = kind

    def __enter__(self) -> Self:
        current = trace.get_current_span().get_span_context()
        run_context = self._run.span.get_span_context()
        # Nest through the OpenTelemetry context when it is this run's; otherwise (another
        # thread, say) hang the span directly under the run.
        same_trace = current.is_valid and current.trace_id == run_context.trace_id
        self._start(None if same_trace else trace.set_span_in_context(self._run.span))
        return self


class LlmCall(_Child):
    """A model call: a ``chat {model}`` span."""

    def usage(
        self,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """Record token usage and, if known, the cost in USD."""
        self._set(semconv.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
        self._set(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
        self._set(semconv.TL_COST_USD, cost_usd)

    def response(
        self,
        *,
        model: str | None = None,
        finish_reasons: Sequence[str] | None = None,
        output_messages: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Record what the model answered: its exact name, finish reasons, messages."""
        self._set(semconv.GEN_AI_RESPONSE_MODEL, model)
        if finish_reasons is not None:
            self._set(semconv.GEN_AI_RESPONSE_FINISH_REASONS, list(finish_reasons))
        self._set_json(semconv.GEN_AI_OUTPUT_MESSAGES, output_messages)


class ToolCall(_Child):
    """A tool call: an ``execute_tool {name}`` span.

    It ends with ``tuneloop.tool.status=success`` unless `fail` or `result` said
    otherwise or the block raised.
    """

    _status: str | None = None

    def fail(self, error_type: str, *, retryable: bool = False, message: str | None = None) -> None:
        """Mark the call failed with ``error_type`` (an HTTP status, an exception name...)."""
        self._status = semconv.TOOL_STATUS_ERROR
        self._error(error_type, message)
        self._span.set_attribute(semconv.TL_TOOL_STATUS, semconv.TOOL_STATUS_ERROR)
        self._span.set_attribute(semconv.TL_TOOL_RETRYABLE, retryable)

    def retries(self, count: int) -> None:
        """Record how many times the call was retried."""
        if count < 0:
            raise InvalidInputError(f"tool retries must be >= 0, got {count}")
        self._span.set_attribute(semconv.TL_TOOL_RETRIES, count)

    def result(self, status: ToolResultStatus = "success", *, data: object | None = None) -> None:
        """Record the call's result: ``success`` or ``partial``, and optionally its data."""
        if status not in get_args(ToolResultStatus):
            raise InvalidInputError(
                f"unknown tool status {status!r}; use 'success' or 'partial', or fail()"
            )
        self._status = status
        self._span.set_attribute(semconv.TL_TOOL_STATUS, status)
        self._set_json(semconv.GEN_AI_TOOL_CALL_RESULT, data)

    def _on_exception(self, exc: BaseException) -> None:
        if self._status != semconv.TOOL_STATUS_ERROR:
            self.fail(type(exc).__name__, message=str(exc) or None)

    def _on_close(self) -> None:
        if self._status is None:
            self._span.set_attribute(semconv.TL_TOOL_STATUS, semconv.TOOL_STATUS_SUCCESS)


class Guardrail(_Child):
    """A guardrail check: a span with ``tuneloop.span.kind=guardrail``."""

    def verdict(self, value: str) -> None:
        """Record the verdict (``pass``, ``block``, ``redact``...)."""
        self._span.set_attribute(semconv.TL_GUARDRAIL_VERDICT, value)


class Run(_Scope):
    """One agent invocation: the root span ``invoke_agent {agent}`` of its own trace.

    A run always starts a new trace, so that sampling is decided per run; if another
    span is current when it starts, the run links to it.
    """

    _outcome: Outcome | None = None

    def __init__(
        self,
        tracer: trace.Tracer,
        agent: str,
        attributes: dict[str, AttributeValue],
        *,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(tracer, attributes, clock)
        self._name = f"{semconv.OP_INVOKE_AGENT} {agent}"

    def __enter__(self) -> Self:
        ambient = trace.get_current_span().get_span_context()
        self._start(otel_context.Context(), [Link(ambient)] if ambient.is_valid else ())
        return self

    @property
    def trace_id(self) -> str:
        """The run's trace id, 32 lowercase hex digits (for `Client.feedback`)."""
        return format(self._span.get_span_context().trace_id, "032x")

    @property
    def sampled(self) -> bool:
        """Whether this run's spans are recorded and exported."""
        return self._span.get_span_context().trace_flags.sampled

    def outcome(self, value: Outcome) -> None:
        """Set how the run ended; without a call it is ``success``, or ``failure`` on error."""
        if value not in OUTCOMES:
            raise InvalidInputError(f"unknown run outcome {value!r}; use one of {OUTCOMES}")
        self._outcome = value

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Set any other attribute on the run's span."""
        self._span.set_attribute(key, value)

    def llm_call(
        self,
        model: str,
        provider: str | None = None,
        *,
        temperature: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        input_messages: Sequence[Mapping[str, Any]] | None = None,
        output_messages: Sequence[Mapping[str, Any]] | None = None,
    ) -> LlmCall:
        """A model call in this run; use it as a context manager."""
        attributes: dict[str, AttributeValue] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
            semconv.GEN_AI_REQUEST_MODEL: model,
        }
        _put(attributes, semconv.GEN_AI_PROVIDER_NAME, provider)
        _put(attributes, semconv.GEN_AI_REQUEST_TEMPERATURE, temperature)
        _put(attributes, semconv.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
        _put(attributes, semconv.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
        if self.sampled:
            _put_json(attributes, semconv.GEN_AI_INPUT_MESSAGES, input_messages)
            _put_json(attributes, semconv.GEN_AI_OUTPUT_MESSAGES, output_messages)
        return LlmCall(self, f"{semconv.OP_CHAT} {model}", SpanKind.CLIENT, attributes)

    def tool_call(
        self, name: str, arguments: object | None = None, *, call_id: str | None = None
    ) -> ToolCall:
        """A tool call in this run; use it as a context manager."""
        attributes: dict[str, AttributeValue] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
            semconv.GEN_AI_TOOL_NAME: name,
        }
        _put(attributes, semconv.GEN_AI_TOOL_CALL_ID, call_id)
        if self.sampled:
            _put_json(attributes, semconv.GEN_AI_TOOL_CALL_ARGUMENTS, arguments)
        return ToolCall(self, f"{semconv.OP_EXECUTE_TOOL} {name}", SpanKind.INTERNAL, attributes)

    def guardrail(self, name: str, *, verdict: str | None = None) -> Guardrail:
        """A guardrail check in this run; use it as a context manager."""
        attributes: dict[str, AttributeValue] = {
            semconv.TL_SPAN_KIND: semconv.SPAN_KIND_GUARDRAIL,
            semconv.TL_GUARDRAIL_NAME: name,
        }
        _put(attributes, semconv.TL_GUARDRAIL_VERDICT, verdict)
        return Guardrail(self, f"guardrail {name}", SpanKind.INTERNAL, attributes)

    def _on_exception(self, exc: BaseException) -> None:
        super()._on_exception(exc)
        if self._outcome is None:
            self._outcome = "failure"

    def _on_close(self) -> None:
        self._span.set_attribute(semconv.TL_RUN_OUTCOME, self._outcome or "success")


def _put(attributes: dict[str, AttributeValue], key: str, value: AttributeValue | None) -> None:
    if value is not None:
        attributes[key] = value


def _put_json(attributes: dict[str, AttributeValue], key: str, value: object | None) -> None:
    if value is not None:
        attributes[key] = to_json(value)


def run_attributes(
    agent: str,
    *,
    unit_id: str | None,
    session_id: str | None,
    config_version: str | None,
    variant: str | None,
    experiment: str | None,
    extra: Mapping[str, AttributeValue] | None,
) -> dict[str, AttributeValue]:
    """The root span's attributes; ``extra`` never overrides the platform's own."""
    attributes: dict[str, AttributeValue] = dict(extra or {})
    attributes[semconv.GEN_AI_OPERATION_NAME] = semconv.OP_INVOKE_AGENT
    attributes[semconv.GEN_AI_AGENT_NAME] = agent
    _put(attributes, semconv.TL_UNIT_ID, unit_id)
    _put(attributes, semconv.TL_SESSION_ID, session_id)
    _put(attributes, semconv.GEN_AI_CONVERSATION_ID, session_id)
    _put(attributes, semconv.TL_CONFIG_VERSION, config_version)
    _put(attributes, semconv.FEATURE_FLAG_KEY, experiment)
    _put(attributes, semconv.FEATURE_FLAG_RESULT_VARIANT, variant)
    return attributes

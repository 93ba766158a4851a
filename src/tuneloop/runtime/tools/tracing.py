"""Tool spans through the SDK's `ToolCall` helper, or nothing when a call is not traced."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from opentelemetry import trace

from tuneloop import semconv
from tuneloop.config.model import SideEffect
from tuneloop.runtime.providers.base import ToolCallRequest
from tuneloop.runtime.tools.contract import ToolResult
from tuneloop.sdk.spans import Run


class ToolSpan(Protocol):
    """What the runner needs of a tool span (the SDK's `ToolCall` has it)."""

    @property
    def span(self) -> trace.Span:
        """The OpenTelemetry span."""
        ...

    def fail(self, error_type: str, *, retryable: bool = False, message: str | None = None) -> None:
        """Mark the call failed."""
        ...

    def retries(self, count: int) -> None:
        """Record the number of retries."""
        ...

    def result(self, status: Any = "success", *, data: object | None = None) -> None:
        """Record a success or partial result."""
        ...


class _Untraced:
    """A `ToolSpan` that records nothing."""

    span: trace.Span = trace.INVALID_SPAN

    def fail(self, error_type: str, *, retryable: bool = False, message: str | None = None) -> None:
        """Nothing to record."""

    def retries(self, count: int) -> None:
        """Nothing to record."""

    def result(self, status: Any = "success", *, data: object | None = None) -> None:
        """Nothing to record."""


@contextmanager
def open_span(
    run: Run | None,
    tool: str,
    arguments: Mapping[str, Any] | None,
    call_id: str,
    side_effect: SideEffect | None = None,
) -> Iterator[ToolSpan]:
    """An ``execute_tool {tool}`` span of ``run``, current inside the block (no-op without run)."""
    if run is None:
        yield _Untraced()
        return
    with run.tool_call(
        tool, None if arguments is None else dict(arguments), call_id=call_id
    ) as span:
        if side_effect is not None:
            span.span.set_attribute(semconv.TL_TOOL_SIDE_EFFECT, side_effect)
        yield span


def close_span(span: ToolSpan, result: ToolResult) -> None:
    """Record the envelope on the span: status, retries, error type and retryability."""
    attempts = result.metadata.get("attempts")
    if isinstance(attempts, int) and attempts > 0:
        span.retries(attempts - 1)
    if result.status == "error":
        error = result.metadata.get("error") or {}
        span.fail(
            str(error.get("type", "error")),
            retryable=bool(error.get("retryable", False)),
            message=str(error.get("message", "")) or None,
        )
    else:
        span.result(result.status, data=result.data)


def refuse(run: Run | None, call: ToolCallRequest, result: ToolResult) -> ToolResult:
    """Trace a call refused before it ran (unknown tool, bad arguments, blocked) and return it.

    The arguments are not recorded: they were not validated, nor checked by guardrails.
    """
    with open_span(run, call.name, None, call.id) as span:
        close_span(span, result)
    return result

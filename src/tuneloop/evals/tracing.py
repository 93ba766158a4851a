"""One eval trial as a traced agent run, through the SDK's tracer.

The run span covers the target's work only: it starts before the target is called
and ends when the target returns (or fails), so the trace's duration is the agent's
latency, not the scoring's. It is ended only after scoring, though, so that the
verdict (``tuneloop.eval.passed``) is on the run's own span, where trace search finds
it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from tuneloop import semconv
from tuneloop.clock import Clock
from tuneloop.sdk.spans import run_attributes

if TYPE_CHECKING:
    from tuneloop.sdk.client import Client


class TrialSpan:
    """The root span of one trial's trace; made current while the target runs."""

    def __init__(
        self,
        client: Client,
        clock: Clock,
        agent: str,
        *,
        version: str | None,
        attributes: Mapping[str, AttributeValue],
    ) -> None:
        self._clock = clock
        self._span = client.tracer.start_span(
            f"{semconv.OP_INVOKE_AGENT} {agent}",
            otel_context.Context(),  # a run always starts its own trace
            SpanKind.INTERNAL,
            run_attributes(
                agent,
                unit_id=None,
                session_id=None,
                config_version=version,
                variant=None,
                experiment=None,
                extra=attributes,
            ),
            start_time=clock.now_ns(),
            record_exception=False,
        )
        self._token: object | None = None
        self._end_ns: int | None = None

    @property
    def trace_id(self) -> str:
        """32 lowercase hex digits."""
        return format(self._span.get_span_context().trace_id, "032x")

    def __enter__(self) -> TrialSpan:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(self, *_exc: object) -> None:
        """The target is done: stop being current and remember when it finished."""
        self._end_ns = self._clock.now_ns()
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None

    def finish(self, *, passed: bool, error_kind: str | None, error: BaseException | None) -> None:
        """Record the verdict and how the target ended, then end the span."""
        self._span.set_attribute(semconv.TL_EVAL_PASSED, passed)
        if error_kind is not None:
            if error is not None:
                self._span.record_exception(error, timestamp=self._end_ns, escaped=True)
            self._span.set_attribute(semconv.ERROR_TYPE, error_kind)
            self._span.set_status(Status(StatusCode.ERROR, str(error or error_kind)))
        outcome = "failure" if error_kind is not None else "success"
        self._span.set_attribute(semconv.TL_RUN_OUTCOME, outcome)
        self._span.end(end_time=self._end_ns or self._clock.now_ns())

"""`Client`: traces an agent's runs to a tuneloop server and sends feedback."""

from __future__ import annotations

import atexit
import json
import math
import re
from collections.abc import Mapping
from types import TracebackType
from typing import Self

import httpx
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.util.types import AttributeValue

from tuneloop import semconv
from tuneloop._version import __version__
from tuneloop.clock import Clock
from tuneloop.errors import ConfigError
from tuneloop.sdk._http import RetryPolicy, Sender
from tuneloop.sdk._processor import BatchProcessor, OtlpExporter
from tuneloop.sdk._stats import ClientStats, Recorder, shielded
from tuneloop.sdk.spans import Run, run_attributes
from tuneloop.settings import load_settings

FEEDBACK_PATH = "/api/v1/feedback"
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_JSON_HEADERS = {"Content-Type": "application/json"}


class Client:
    """Traces an agent's runs to a tuneloop server; never raises because it is down.

    The client owns an OpenTelemetry `TracerProvider` (the global one is left alone
    unless ``install_global=True`` or `install`), a bounded span buffer and a daemon
    thread that exports OTLP/HTTP protobuf, gzip-compressed, with retries. What it
    could not deliver is counted in `stats` and logged once per kind of failure on the
    ``tuneloop.sdk`` logger.

    Example:
        ```python
        with Client() as client, client.run("support", unit_id=user_id) as run:
            with run.llm_call("gpt-4o", "openai") as call:
                call.usage(input_tokens=812, output_tokens=95)
            run.outcome("success")
        ```

    Args:
        base_url: the server, such as ``http://127.0.0.1:4318``; default ``TUNELOOP_URL``.
        api_key: the project's API key; default ``TUNELOOP_API_KEY``.
        transport: an httpx transport to use instead of the network (tests, proxies).
        service_name: the ``service.name`` resource attribute.
        sample_rate: fraction of runs recorded, decided per trace id so that every span
            of a run shares the root's decision.
        max_queue_spans: spans buffered at most; beyond it the oldest are dropped.
        max_export_batch: spans per export request.
        flush_interval_s: longest time a span waits in the buffer.
        resource_attributes: more resource attributes (``deployment.environment``...).
        retry: how hard to retry failed requests.
        install_global: also make this client's provider the global OpenTelemetry one.
        clock: where the span helpers read their start and end times (simulated time
            in the demo and tests); default: OpenTelemetry reads the system clock.

    Raises:
        ConfigError: an argument or setting is invalid.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        service_name: str = "agent",
        sample_rate: float = 1.0,
        max_queue_spans: int = 8192,
        max_export_batch: int = 512,
        flush_interval_s: float = 1.0,
        resource_attributes: Mapping[str, AttributeValue] | None = None,
        retry: RetryPolicy | None = None,
        install_global: bool = False,
        clock: Clock | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ConfigError(f"sample_rate must be between 0 and 1, got {sample_rate}")
        if max_queue_spans < 1 or max_export_batch < 1:
            raise ConfigError(
                f"max_queue_spans and max_export_batch must be at least 1, got "
                f"{max_queue_spans} and {max_export_batch}"
            )
        if not (math.isfinite(flush_interval_s) and flush_interval_s > 0):
            raise ConfigError(f"flush_interval_s must be > 0, got {flush_interval_s}")
        settings = load_settings(url=base_url, api_key=api_key)
        if not settings.url.startswith(("http://", "https://")):
            raise ConfigError(
                f"tuneloop URL {settings.url!r} must start with http:// or https://; "
                "set TUNELOOP_URL or pass base_url="
            )
        self._recorder = Recorder()
        self._sender = Sender(
            settings.url,
            settings.api_key,
            transport=transport,
            policy=retry or RetryPolicy(),
            recorder=self._recorder,
        )
        self._processor = BatchProcessor(
            OtlpExporter(self._sender, self._recorder),
            self._recorder,
            max_queue_spans=max_queue_spans,
            max_export_batch=max_export_batch,
            flush_interval_s=flush_interval_s,
        )
        resource = Resource.create(
            {**(resource_attributes or {}), semconv.SERVICE_NAME: service_name}
        )
        self._provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(sample_rate)),
            resource=resource,
            shutdown_on_exit=False,
        )
        self._provider.add_span_processor(self._processor)
        self._tracer = self._provider.get_tracer("tuneloop.sdk", __version__)
        self._clock = clock
        self._closed = False
        # Deliver what is buffered when the interpreter exits without shutdown().
        atexit.register(self.shutdown)
        if install_global:
            self.install()

    @property
    def recorder(self) -> Recorder:
        """Where failures are counted."""
        return self._recorder

    @property
    def base_url(self) -> str:
        """The server this client talks to."""
        return self._sender.base_url

    @property
    def tracer_provider(self) -> TracerProvider:
        """This client's OpenTelemetry provider, for other instrumentations."""
        return self._provider

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer the span helpers use."""
        return self._tracer

    @property
    def stats(self) -> ClientStats:
        """What has been exported, dropped and failed so far."""
        return self._recorder.snapshot()

    def install(self) -> None:
        """Make this client's provider the global OpenTelemetry tracer provider.

        OpenTelemetry allows that once per process; later attempts are ignored with
        a warning from OpenTelemetry.
        """
        trace.set_tracer_provider(self._provider)

    def run(
        self,
        agent: str,
        *,
        unit_id: str | None = None,
        session_id: str | None = None,
        config_version: str | None = None,
        variant: str | None = None,
        experiment: str | None = None,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> Run:
        """One agent invocation; use it as a context manager.

        Args:
            agent: the agent's name (``gen_ai.agent.name``).
            unit_id: the unit experiments assign (a user, an account).
            session_id: the conversation this run belongs to.
            config_version: the configuration version the run used.
            variant: the experiment variant the unit was assigned.
            experiment: the experiment's key.
            attributes: any other attributes for the run's span.
        """
        return Run(
            self._tracer,
            agent,
            run_attributes(
                agent,
                unit_id=unit_id,
                session_id=session_id,
                config_version=config_version,
                variant=variant,
                experiment=experiment,
                extra=attributes,
            ),
            clock=self._clock,
        )

    @shielded(default=False)
    def feedback(
        self,
        trace_id: str,
        name: str,
        value: float,
        comment: str | None = None,
        *,
        timeout_s: float = 5.0,
    ) -> bool:
        """Attach a score to a run; True if the server accepted it. Never raises.

        Args:
            trace_id: the run's `Run.trace_id`.
            name: what is scored (``thumbs``, ``resolved``...).
            value: the score.
            comment: free text.
            timeout_s: longest time to spend, retries included; this call blocks.
        """
        problem = None
        trace_id = trace_id.lower()
        if not _TRACE_ID.fullmatch(trace_id):
            problem = f"trace_id must be 32 hex digits, got {trace_id!r}"
        elif not math.isfinite(value):
            problem = f"feedback value must be a finite number, got {value!r}"
        elif self._closed:
            problem = "the client is shut down"
        if problem is not None:
            self._recorder.count(feedback_failed=1)
            self._recorder.error(
                "feedback", f"tuneloop SDK: feedback not sent: {problem}", attempt=False
            )
            return False
        body = {"trace_id": trace_id, "name": name, "value": float(value), "comment": comment}
        delivery = self._sender.post(
            FEEDBACK_PATH,
            content=json.dumps(body).encode(),
            headers=_JSON_HEADERS,
            what="feedback",
            max_elapsed_s=timeout_s,
        )
        ok = delivery.response is not None
        self._recorder.count(feedback_sent=int(ok), feedback_failed=int(not ok))
        return ok

    @shielded(default=False)
    def flush(self, timeout_s: float = 10.0) -> bool:
        """Export every span ended so far and not yet sent; never raises.

        Returns:
            True once they are all delivered; False at the timeout, after shutdown, or
            if any of them was dropped or given up on (`stats` counts them).
        """
        return self._processor.force_flush(int(timeout_s * 1000))

    @shielded(default=None)
    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Flush within ``timeout_s``, then stop exporting. Idempotent; never raises."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.shutdown)
        self._processor.close(timeout_s)
        self._provider.shutdown()
        self._sender.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

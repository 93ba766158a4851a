"""`Client`: traces an agent's runs to a tuneloop server and sends feedback."""

from __future__ import annotations

import atexit
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
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
from tuneloop.clock import Clock, SystemClock
from tuneloop.config.loading import load_config_file
from tuneloop.errors import ConfigError
from tuneloop.sdk._http import RetryPolicy, Sender
from tuneloop.sdk._processor import BatchProcessor, OtlpExporter
from tuneloop.sdk._state_sync import StateFile, StateSync
from tuneloop.sdk._stats import ClientStats, Recorder, shielded
from tuneloop.sdk.config import (
    ConfigCounters,
    ConfigStats,
    ResolvedConfig,
    fallback_config,
    record_flag,
    tag_run,
)
from tuneloop.sdk.spans import Run, run_attributes
from tuneloop.settings import load_settings

FEEDBACK_PATH = "/api/v1/feedback"
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_JSON_HEADERS = {"Content-Type": "application/json"}


class Client:
    """Traces an agent's runs and serves their configs; never raises because the server is down.

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

    It also resolves each agent's config and feature flags locally (`config`, `flag`)
    from the agent's state document, fetched in the background and saved under
    ``state_dir`` so that a restart while the server is down still has it.

    Args:
        base_url: the server, such as ``http://127.0.0.1:4318``; default ``TUNELOOP_URL``.
        api_key: the project's API key; default ``TUNELOOP_API_KEY``.
        transport: an httpx transport to use instead of the network (tests, proxies).
        service_name: the ``service.name`` resource attribute.
        sample_rate: fraction of runs recorded, decided per trace id so that every span
            of a run shares the root's decision (head sampling: ParentBased around
            TraceIdRatioBased). Exported as the ``tuneloop.sample_rate`` resource
            attribute, so analyses can scale sampled counts back up.
        max_queue_spans: spans buffered at most; beyond it the oldest are dropped.
        max_export_batch: spans per export request.
        flush_interval_s: longest time a span waits in the buffer.
        resource_attributes: more resource attributes (``deployment.environment``...).
        retry: how hard to retry failed requests.
        install_global: also make this client's provider the global OpenTelemetry one.
        clock: where the span helpers read their start and end times (simulated time
            in the demo and tests); default: OpenTelemetry reads the system clock.
        agents: agents whose state to fetch from the start (others are added on their
            first `config` call); `flag` looks in these.
        config_files: a config file (YAML or JSON) per agent, served by `config` until
            a state is known; its agents are fetched from the start too.
        state_dir: where the last state of each agent is saved; default
            ``TUNELOOP_STATE_DIR``, else ``.tuneloop/state``.
        state_refresh_s: seconds between two state checks (an unchanged state costs a
            304); sooner while an agent has none.

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
        agents: Sequence[str] = (),
        config_files: Mapping[str, str | os.PathLike[str]] | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        state_refresh_s: float = 30.0,
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
        if not (math.isfinite(state_refresh_s) and state_refresh_s > 0):
            raise ConfigError(f"state_refresh_s must be > 0, got {state_refresh_s}")
        fallbacks = {
            agent: fallback_config(agent, load_config_file(Path(path)))
            for agent, path in (config_files or {}).items()
        }
        settings = load_settings(url=base_url, api_key=api_key, state_dir=state_dir)
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
            {
                **(resource_attributes or {}),
                semconv.SERVICE_NAME: service_name,
                # Lets the platform scale sampled counts back up (1 / rate).
                semconv.TL_SAMPLE_RATE: float(sample_rate),
            }
        )
        self._provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(sample_rate)),
            resource=resource,
            shutdown_on_exit=False,
        )
        self._provider.add_span_processor(self._processor)
        self._tracer = self._provider.get_tracer("tuneloop.sdk", __version__)
        self._clock = clock
        self._config_counters = ConfigCounters()
        policy = retry or RetryPolicy()
        self._state = StateSync(
            self._sender.base_url,
            settings.api_key,
            transport=transport,
            state_file=StateFile(settings.resolved_state_dir().absolute(), self._sender.base_url),
            interval_s=state_refresh_s,
            request_timeout_s=policy.request_timeout_s,
            recorder=self._recorder,
            counters=self._config_counters,
            clock=clock or SystemClock(),
            fallbacks=fallbacks,
        )
        self._closed = False
        for agent in dict.fromkeys([*agents, *fallbacks]):
            self._state.register(agent)
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

    @property
    def config_stats(self) -> ConfigStats:
        """State fetches, failures and fallbacks so far."""
        return self._config_counters.snapshot()

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
        config: ResolvedConfig | None = None,
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
            config: a config from `config`, whose version, variant and experiment the
                run records (the three arguments above win when also given).
        """
        if config is not None:
            config_version = config_version or config.version
            variant = variant or config.variant
            experiment = experiment or config.key
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

    def config(
        self, agent: str, *, unit_id: str | None = None, session_id: str | None = None
    ) -> ResolvedConfig:
        """The agent's config for this unit, resolved locally from the last known state.

        No network call: the unit is hashed into the agent's running experiment or
        rollout, if it is covered, else it gets the production version. Inside a run
        (`run`), the run's span records the version, experiment and variant.

        Args:
            agent: the agent's name.
            unit_id: the user (or account) experiments assign.
            session_id: the session, for allocations whose unit is the session (they
                use ``unit_id`` when it is not given).

        Raises:
            ConfigError: nothing to serve: no state is known yet (never fetched, none
                saved) and no fallback file was given for the agent.
        """
        resolved = self._state.resolve(agent, unit_id, session_id)
        tag_run(resolved)
        return resolved

    @shielded(default=False)
    def flag(
        self,
        key: str,
        *,
        unit_id: str | None = None,
        session_id: str | None = None,
        attributes: Mapping[str, object] | None = None,
        agent: str | None = None,
    ) -> bool:
        """Whether the feature flag ``key`` is on for this unit; never raises.

        Targeting rules are tried in order on ``attributes``, then the flag's percentage
        of units (by ``unit_id``, else ``session_id``). An unknown flag is off. The
        current span gets a ``feature_flag.evaluation`` event.

        Args:
            key: the flag's key.
            unit_id: the user the percentage is drawn on.
            session_id: drawn on when there is no ``unit_id``.
            attributes: what targeting rules look at (``{"plan": "pro"}``).
            agent: the agent whose flags to use; default: the first known agent that
                defines ``key``.
        """
        unit = unit_id if unit_id is not None else session_id
        result = self._state.flag(key, unit, attributes, agent)
        if result is None:
            return False
        record_flag(result)
        return result.value

    def wait_for_state(self, timeout_s: float = 10.0, *, agent: str | None = None) -> bool:
        """Block until the server has answered for ``agent`` (default: every known agent).

        For scripts and tests; `config` never waits.

        Returns:
            True once a state is fetched from the server for each; False at the timeout.

        Raises:
            ConfigError: no agent to wait for (pass ``agents=`` to the client or ``agent=``).
        """
        return self._state.wait(timeout_s, agent)

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
        self._state.close(min(timeout_s, 2.0))
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

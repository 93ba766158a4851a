"""Export: wire format, batching, retries, give-ups, drops, sampling, flush and shutdown."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from tests.sdk.sdk_fakes import API_KEY, FAST_RETRY, FakeServer, attrs
from tuneloop import semconv
from tuneloop.errors import ConfigError
from tuneloop.sdk import Client, ClientStats, RetryPolicy


def emit_runs(client: Client, count: int, *, prefix: str = "agent") -> list[str]:
    trace_ids = []
    for i in range(count):
        with client.run(f"{prefix}{i}") as run:
            pass
        trace_ids.append(run.trace_id)
    return trace_ids


def test_export_is_gzipped_otlp_protobuf_with_bearer_auth(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    trace_ids = emit_runs(client, 3)
    assert client.flush(timeout_s=5.0)

    [request] = server.requests
    assert request.method == "POST"
    assert str(request.url) == "http://tuneloop.test/v1/traces"
    assert request.headers["Content-Type"] == "application/x-protobuf"
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["User-Agent"].startswith("tuneloop-sdk/")
    assert sorted(s.trace_id.hex() for s in server.spans()) == sorted(trace_ids)
    assert client.stats == ClientStats(spans_exported=3)


def test_batches_hold_at_most_max_export_batch_spans(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client(max_export_batch=10)
    emit_runs(client, 25)
    assert client.flush(timeout_s=5.0)
    sizes = [len(e.resource_spans[0].scope_spans[0].spans) for e in server.exports()]
    assert sorted(sizes) == [5, 10, 10]
    assert client.stats.spans_exported == 25


def test_spans_leave_on_the_interval_without_flush(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client(flush_interval_s=0.05)
    emit_runs(client, 2)
    deadline = time.monotonic() + 5.0
    while client.stats.spans_exported < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.stats.spans_exported == 2


@pytest.mark.parametrize(
    "first_reply",
    [503, 429, 502, 504, httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
    ids=["503", "429", "502", "504", "connect-error", "timeout"],
)
def test_retryable_failure_is_retried_then_delivered(
    make_client: Callable[..., Client], server: FakeServer, first_reply: int | Exception
) -> None:
    server.replies = [first_reply]
    client = make_client()
    emit_runs(client, 2)
    assert client.flush(timeout_s=5.0)
    assert len(server.requests) == 2
    stats = client.stats
    assert (stats.spans_exported, stats.spans_failed, stats.export_errors) == (2, 0, 1)
    assert stats.last_error is not None


def test_retries_stop_after_max_attempts(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    server.default = 503
    client = make_client(retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.001, jitter=0.0))
    emit_runs(client, 4)
    assert client.flush(timeout_s=5.0) is False
    assert len(server.requests) == 3
    stats = client.stats
    assert (stats.spans_exported, stats.spans_failed, stats.export_errors) == (0, 4, 3)
    assert "503" in (stats.last_error or "")


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_client_errors_are_not_retried(
    make_client: Callable[..., Client], server: FakeServer, status: int
) -> None:
    server.default = status
    client = make_client()
    emit_runs(client, 2)
    assert client.flush(timeout_s=5.0) is False
    assert len(server.requests) == 1
    stats = client.stats
    assert (stats.spans_exported, stats.spans_failed, stats.export_errors) == (0, 2, 1)


def test_bad_api_key_message_says_how_to_fix_it(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    server.default = 401
    client = make_client()
    emit_runs(client, 1)
    client.flush(timeout_s=5.0)
    assert "TUNELOOP_API_KEY" in (client.stats.last_error or "")


def test_retry_after_is_honoured(make_client: Callable[..., Client], server: FakeServer) -> None:
    server.replies = [httpx.Response(429, headers={"Retry-After": "1"})]
    client = make_client()
    emit_runs(client, 1)
    started = time.monotonic()
    assert client.flush(timeout_s=5.0)
    assert time.monotonic() - started >= 0.9
    assert len(server.requests) == 2


def test_retry_after_beyond_the_time_budget_gives_up_at_once(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    server.default = httpx.Response(503, headers={"Retry-After": "120"})
    client = make_client()
    emit_runs(client, 1)
    started = time.monotonic()
    assert client.flush(timeout_s=5.0) is False
    assert time.monotonic() - started < 1.0
    assert len(server.requests) == 1
    assert client.stats.spans_failed == 1


def test_server_down_never_raises_and_counts_failures(closed_port: int) -> None:
    retry = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, request_timeout_s=2.0)
    with Client(f"http://127.0.0.1:{closed_port}", "key", retry=retry) as client:
        with client.run("support") as run, run.tool_call("lookup"):
            pass
        assert client.flush(timeout_s=5.0) is False
        assert client.feedback(run.trace_id, "thumbs", 1.0) is False
    stats = client.stats
    assert (stats.spans_exported, stats.spans_failed) == (0, 2)
    assert stats.export_errors == 4  # two attempts for the spans, two for the feedback
    assert stats.feedback_failed == 1
    assert "cannot reach the tuneloop server" in (stats.last_error or "")


def test_unexpected_transport_exception_is_contained(
    make_client: Callable[..., Client], server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.default = ValueError("bug in a proxy transport")
    client = make_client()
    emit_runs(client, 2)
    with caplog.at_level(logging.WARNING, logger="tuneloop.sdk"):
        assert client.flush(timeout_s=5.0) is False
    assert client.stats.spans_failed == 2
    assert "ValueError" in caplog.text


def test_each_kind_of_failure_is_logged_once(
    make_client: Callable[..., Client], server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.default = 503
    client = make_client(retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.001))
    with caplog.at_level(logging.WARNING, logger="tuneloop.sdk"):
        for _ in range(3):
            emit_runs(client, 1)
            client.flush(timeout_s=5.0)
    warnings = [r for r in caplog.records if r.name == "tuneloop.sdk"]
    assert len(warnings) == 1
    assert "503" in warnings[0].getMessage()
    assert client.stats.export_errors == 9


def test_partial_success_counts_rejected_spans_as_failed(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    answer = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=1, error_message="bad span")
    )
    server.default = httpx.Response(200, content=answer.SerializeToString())
    client = make_client()
    emit_runs(client, 3)
    assert client.flush(timeout_s=5.0) is False
    stats = client.stats
    assert (stats.spans_exported, stats.spans_failed) == (2, 1)
    assert "bad span" in (stats.last_error or "")


def test_full_buffer_drops_the_oldest_spans(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    in_export, release = threading.Event(), threading.Event()

    def hold_first_export(request: httpx.Request) -> None:
        in_export.set()
        release.wait(5.0)

    server.on_request = hold_first_export
    client = make_client(max_queue_spans=4, max_export_batch=4)
    emit_runs(client, 4)  # a full batch: the export thread takes it and blocks
    assert in_export.wait(5.0)
    emit_runs(client, 6, prefix="late")  # the buffer holds 4: late0 and late1 go
    assert client.stats.spans_dropped == 2
    release.set()
    assert client.flush(timeout_s=5.0)
    names = sorted(span.name for span in server.spans())
    assert names == sorted(
        [f"invoke_agent agent{i}" for i in range(4)]
        + [f"invoke_agent late{i}" for i in range(2, 6)]
    )
    assert (client.stats.spans_exported, client.stats.spans_dropped) == (8, 2)


def test_sampling_keeps_about_a_tenth_of_runs_decided_by_trace_id(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client(sample_rate=0.1, max_queue_spans=10_000)
    runs = []
    for _ in range(2000):
        with client.run("support") as run, run.llm_call("gpt-4o"):
            pass
        runs.append(run)
    assert client.flush(timeout_s=10.0)
    bound = TraceIdRatioBased.get_bound_for_rate(0.1)
    expected = {r.trace_id for r in runs if int(r.trace_id, 16) & (2**64 - 1) < bound}
    spans = server.spans()
    assert {s.trace_id.hex() for s in spans} == expected
    assert {r.trace_id for r in runs if r.sampled} == expected
    assert 130 <= len(expected) <= 270  # 200 expected; ±5 standard deviations
    # A sampled run keeps all its spans; an unsampled one has none.
    assert len(spans) == 2 * len(expected)


def test_shutdown_flushes_buffered_spans(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    emit_runs(client, 3)
    assert server.requests == []
    client.shutdown()
    assert client.stats.spans_exported == 3


def test_context_manager_shuts_down_and_later_spans_are_dropped(server: FakeServer) -> None:
    with Client(
        "http://tuneloop.test", transport=server.transport, retry=FAST_RETRY, flush_interval_s=60
    ) as client:
        with client.run("during") as run:
            pass
        assert server.requests == []  # exported by the shutdown on exit, not before
    assert [s.name for s in server.spans()] == ["invoke_agent during"]
    with client.run("after") as late:
        pass
    client.shutdown()  # idempotent
    assert late.trace_id != run.trace_id
    assert client.flush(timeout_s=0.5) is False
    assert (client.stats.spans_exported, client.stats.spans_dropped) == (1, 1)


def test_shutdown_is_bounded_when_the_server_keeps_failing(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    server.default = 503
    slow = RetryPolicy(max_attempts=10, initial_backoff_s=30.0, jitter=0.0, max_elapsed_s=300.0)
    client = make_client(retry=slow)
    emit_runs(client, 2)
    started = time.monotonic()
    client.shutdown(timeout_s=0.3)
    assert time.monotonic() - started < 2.0
    assert client.stats.spans_failed == 2
    assert client.stats.spans_exported == 0


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, server: FakeServer
) -> None:
    monkeypatch.setenv("TUNELOOP_URL", "http://env-host:9999/")
    monkeypatch.setenv("TUNELOOP_API_KEY", "env-key")
    with Client(transport=server.transport, retry=FAST_RETRY) as client:
        emit_runs(client, 1)
        assert client.flush(timeout_s=5.0)
        assert client.base_url == "http://env-host:9999"
    [request] = server.requests
    assert str(request.url) == "http://env-host:9999/v1/traces"
    assert request.headers["Authorization"] == "Bearer env-key"


def test_no_api_key_sends_no_authorization_header(
    monkeypatch: pytest.MonkeyPatch, server: FakeServer
) -> None:
    monkeypatch.delenv("TUNELOOP_API_KEY", raising=False)
    with Client("http://tuneloop.test", transport=server.transport) as client:
        emit_runs(client, 1)
    assert "Authorization" not in server.requests[0].headers


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"max_queue_spans": 0}, "max_queue_spans"),
        ({"flush_interval_s": 0.0}, "flush_interval_s"),
        ({"base_url": "ftp://host"}, "must start with http"),
    ],
)
def test_invalid_arguments_raise_config_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Client(**{"base_url": "http://tuneloop.test", **kwargs})  # type: ignore[arg-type]


def test_invalid_retry_policy_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="jitter"):
        RetryPolicy(jitter=2.0)


def test_stats_are_a_frozen_snapshot(make_client: Callable[..., Client]) -> None:
    client = make_client()
    before = client.stats
    emit_runs(client, 1)
    client.flush(timeout_s=5.0)
    assert before.spans_exported == 0
    assert client.stats.spans_exported == 1
    with pytest.raises(AttributeError):
        before.spans_exported = 5  # type: ignore[misc]


def test_resource_spans_name_the_service(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client(service_name="billing-agent")
    emit_runs(client, 1)
    client.flush(timeout_s=5.0)
    resource = attrs(server.exports()[0].resource_spans[0].resource.attributes)
    assert resource[semconv.SERVICE_NAME] == "billing-agent"


def test_concurrent_runs_are_all_exported_once(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client(max_export_batch=50)

    def work() -> None:
        for _ in range(200):
            with client.run("support") as run, run.tool_call("t"):
                pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush(timeout_s=10.0)
    spans = server.spans()
    assert len(spans) == 1600
    assert len({span.span_id for span in spans}) == 1600
    assert client.stats.spans_exported == 1600


def test_flush_returns_while_other_threads_keep_producing(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    server.on_request = lambda request: time.sleep(0.002)  # an export is often in flight
    client = make_client(max_export_batch=20)
    stop = threading.Event()

    def produce() -> None:  # steady load, below what the exporter drains: nothing dropped
        while not stop.wait(0.002):
            emit_runs(client, 5)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(0.05)
        mine = emit_runs(client, 3, prefix="mine")
        started = time.monotonic()
        assert client.flush(timeout_s=5.0)
        assert time.monotonic() - started < 2.0
        exported = {span.trace_id.hex() for span in server.spans()}
        assert set(mine) <= exported
        assert client.stats.spans_dropped == 0
    finally:
        stop.set()
        producer.join()


def test_flush_reports_only_on_spans_pending_at_the_call(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    server.replies = [400]
    client = make_client()
    emit_runs(client, 1)
    assert client.flush(timeout_s=5.0) is False  # its span was rejected
    emit_runs(client, 1)
    assert client.flush(timeout_s=5.0) is True  # the earlier loss is in stats, not here
    assert (client.stats.spans_failed, client.stats.spans_exported) == (1, 1)

"""Per-run cost of the tuneloop SDK span helpers versus plain OpenTelemetry.

A run is one root span with two model calls, two tool calls and an outcome: five
spans with the same attributes on both sides. Three set-ups, each exporting from a
background thread with the same queue and batch sizes:

- ``otel, no-op sink``: OpenTelemetry SDK ``BatchSpanProcessor`` and an exporter that
  discards spans (the cheapest possible pipeline);
- ``otel, OTLP encoding``: the same with an exporter that encodes OTLP protobuf and
  gzips it, as an OTLP/HTTP exporter does before it posts;
- ``tuneloop Client``: the real client with an ``httpx.MockTransport`` that accepts
  everything (encoding, gzip and the HTTP stack included).

Two figures per set-up: ``host`` is the wall time of the host thread's loop (export
work runs concurrently on the export thread and competes for the GIL, so it shows up
there too); ``CPU`` is the process CPU time of the loop plus the flush that follows,
all threads included: the whole cost of tracing a run, and the steadier figure on a
shared machine.

Usage: ``python benchmarks/sdk_overhead.py [--runs 20000] [--repeat 5] [--budget-s 40]``
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import time
from collections.abc import Callable, Sequence

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Tracer

from tuneloop import semconv
from tuneloop.sdk import Client

QUEUE = 1 << 17  # large enough that nothing is dropped: drops would flatter a side
BATCH = 512


class NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class EncodingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        gzip.compress(encode_spans(spans).SerializeToString(), compresslevel=6)
        return SpanExportResult.SUCCESS


def sdk_run(client: Client, i: int) -> None:
    with client.run("support", unit_id=f"user-{i % 1000}", config_version="v7") as run:
        with run.llm_call("gpt-4o", "openai") as call:
            call.usage(input_tokens=812, output_tokens=95)
        with run.tool_call("lookup_order") as tool:
            tool.result()
        with run.llm_call("gpt-4o", "openai") as call:
            call.usage(input_tokens=1020, output_tokens=41)
        with run.tool_call("issue_refund") as tool:
            tool.result()
        run.outcome("success")


def otel_run(tracer: Tracer, i: int) -> None:
    root_attributes = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT,
        semconv.GEN_AI_AGENT_NAME: "support",
        semconv.TL_UNIT_ID: f"user-{i % 1000}",
        semconv.TL_CONFIG_VERSION: "v7",
    }
    with tracer.start_as_current_span("invoke_agent support", attributes=root_attributes) as root:
        for tool_name, tokens in (("lookup_order", (812, 95)), ("issue_refund", (1020, 41))):
            with tracer.start_as_current_span(
                "chat gpt-4o",
                kind=SpanKind.CLIENT,
                attributes={
                    semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
                    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
                    semconv.GEN_AI_PROVIDER_NAME: "openai",
                },
            ) as call:
                call.set_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS, tokens[0])
                call.set_attribute(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, tokens[1])
            with tracer.start_as_current_span(
                f"execute_tool {tool_name}",
                attributes={
                    semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
                    semconv.GEN_AI_TOOL_NAME: tool_name,
                },
            ) as tool:
                tool.set_attribute(semconv.TL_TOOL_STATUS, semconv.TOOL_STATUS_SUCCESS)
        root.set_attribute(semconv.TL_RUN_OUTCOME, "success")


class Setup:
    def __init__(self, name: str, run: Callable[[int], None], flush: Callable[[], object]):
        self.name, self.run, self.flush = name, run, flush
        self.wall: list[float] = []  # host thread, µs per run, loop only
        self.cpu: list[float] = []  # all threads, µs per run, loop and flush

    def measure(self, runs: int) -> float:
        """Time ``runs`` runs; return the wall seconds spent, flush included."""
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i in range(runs):
            self.run(i)
        wall1 = time.perf_counter()
        self.flush()
        self.wall.append((wall1 - wall0) / runs * 1e6)
        self.cpu.append((time.process_time() - cpu0) / runs * 1e6)
        return time.perf_counter() - wall0


def otel_setup(name: str, exporter: SpanExporter) -> tuple[Setup, TracerProvider]:
    provider = TracerProvider(
        resource=Resource.create({semconv.SERVICE_NAME: "bench"}), shutdown_on_exit=False
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter, max_queue_size=QUEUE, max_export_batch_size=BATCH, schedule_delay_millis=1000
        )
    )
    tracer = provider.get_tracer("bench")
    return Setup(
        name, lambda i: otel_run(tracer, i), lambda: provider.force_flush(60_000)
    ), provider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000, help="runs per repetition")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (median reported)")
    parser.add_argument(
        "--budget-s", type=float, default=40.0, help="fewer runs if the timing would take longer"
    )
    args = parser.parse_args()

    accept = httpx.MockTransport(lambda request: httpx.Response(200))
    client = Client(
        "http://bench.test",
        "bench-key",
        transport=accept,
        service_name="bench",
        max_queue_spans=QUEUE,
        max_export_batch=BATCH,
    )
    noop, noop_provider = otel_setup("otel, no-op sink", NoopExporter())
    encoding, encoding_provider = otel_setup("otel, OTLP encoding", EncodingExporter())
    sdk = Setup("tuneloop Client", lambda i: sdk_run(client, i), lambda: client.flush(60.0))
    setups = [noop, encoding, sdk]

    # Warm up, and shrink the run count if the machine is too slow for the time budget.
    warmup = 1000
    seconds_per_run = sum(setup.measure(warmup) for setup in setups) / warmup
    runs = max(1000, min(args.runs, int(args.budget_s / (args.repeat * seconds_per_run))))
    for setup in setups:
        setup.wall.clear()
        setup.cpu.clear()
    started = time.perf_counter()
    for _ in range(args.repeat):
        for setup in setups:  # interleaved, so drift hits every set-up alike
            setup.measure(runs)

    print(f"{runs} runs x {args.repeat} repetitions, 5 spans per run; medians")
    print(f"  {'':<22} {'host µs/run':>12} {'CPU µs/run':>12}")
    wall = {setup.name: statistics.median(setup.wall) for setup in setups}
    cpu = {setup.name: statistics.median(setup.cpu) for setup in setups}
    for setup in setups:
        print(f"  {setup.name:<22} {wall[setup.name]:12.1f} {cpu[setup.name]:12.1f}")
    for base in (noop, encoding):
        print(
            f"  ratio tuneloop / {base.name:<20} host {wall[sdk.name] / wall[base.name]:.2f}x"
            f"   CPU {cpu[sdk.name] / cpu[base.name]:.2f}x"
        )
    client.shutdown()
    noop_provider.shutdown()
    encoding_provider.shutdown()
    stats = client.stats
    print(
        f"  tuneloop stats: exported={stats.spans_exported} dropped={stats.spans_dropped} "
        f"failed={stats.spans_failed}; measured in {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()

"""Per-step cost of tuneloop's agent runtime, against the same loop written without it.

The model is the simulated provider at zero latency (its clock is a `FakeClock` moved
by `simulated_sleep`, so nothing waits), scripted to call a trivial tool on every turn
until the last, which answers. A step is one model call and one tool call. Three
set-ups run the same conversations:

- ``tuneloop, SQLite``: `Agent` with its checkpoints in a SQLite file (WAL,
  ``synchronous=NORMAL``: a commit survives the process being killed), so every step
  commits twice (after the model's answer, after the tool's result), from a worker
  thread;
- ``tuneloop, SQLite + fsync``: the same, waiting for the disk on every commit
  (``open_runtime_state(path, fsync=True)``: survives a power cut too);
- ``tuneloop, memory``: the same `Agent` with in-memory checkpoints (a snapshot of the
  run's state after every step, not serialized);
- ``baseline``: a hand-written loop calling the same provider and the tool function
  directly: no contract validation, guardrails, checkpoints, state machine or spans.

Both agents validate the tool's arguments and output, run an input and an output PII
guardrail and a tool-output PII guardrail, check budgets, record every transition, and
trace every run (run, model, tool and guardrail spans) into an OpenTelemetry
``BatchSpanProcessor`` whose exporter discards the spans. The figure is wall time per
step over whole runs (run start and finish included), median over repeats; the
runtime's own cost is the difference to the baseline.

Wall time includes the worker-thread hand-offs and the disk; CPU time (all threads) is
the steadier figure on a shared machine. Usage:
``python benchmarks/runtime_overhead.py [--runs 200] [--steps 10] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from tuneloop.clock import FakeClock
from tuneloop.config.model import AgentConfig
from tuneloop.runtime import (
    Agent,
    ChatRequest,
    Message,
    SimulatedProvider,
    ToolCallRequest,
    simulated_sleep,
    tool,
)
from tuneloop.runtime.providers import LatencyModel
from tuneloop.store.runtime_state import open_runtime_state

TARGET_US = 1000.0


class DiscardExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@tool
async def echo(text: str, n: int) -> dict[str, Any]:
    """Echo the text back with its turn number.

    Args:
        text: anything.
        n: the turn.
    """
    return {"text": text, "n": n}


def policy_for(steps: int) -> Callable[[ChatRequest, random.Random], Message]:
    def policy(request: ChatRequest, rng: random.Random) -> Message:
        turn = sum(1 for message in request.messages if message.role == "assistant")
        if turn >= steps:
            return Message.assistant(f"done after {turn} tool calls")
        call = ToolCallRequest(f"call_{turn}", "echo", f'{{"text": "ping {turn}", "n": {turn}}}')
        return Message.assistant(None, [call])

    return policy


def config(steps: int) -> AgentConfig:
    return AgentConfig.from_data(
        {
            "model": {"provider": "simulated", "name": "sim-1"},
            "prompts": {"system": "You answer by calling echo."},
            "tools": {"echo": {"timeout_ms": 1000}},
            "guardrails": [
                {"name": "pii", "kind": "pii", "hops": ["input", "tool_output", "output"],
                 "action": "redact"},
            ],
            "budget": {"run_tokens": 10_000_000},
            "limits": {"max_steps": steps + 1},
        }
    )  # fmt: skip


def provider(clock: FakeClock, steps: int) -> SimulatedProvider:
    return SimulatedProvider(
        policy_for(steps),
        rng=random.Random(1),
        clock=clock,
        sleep=simulated_sleep(clock),
        latency=LatencyModel(
            base_ms=0, per_input_token_ms=0, per_output_token_ms=0, jitter_sigma=0
        ),
    )


async def agent_runs(
    store: Any, runs: int, steps: int, tracer: TracerProvider
) -> tuple[float, float]:
    clock = FakeClock()
    agent = Agent(
        config(steps),
        [echo],
        provider(clock, steps),
        name="bench",
        store=store,
        clock=clock,
        sleep=simulated_sleep(clock),
        tracing=tracer,
    )
    await agent.run("warm up", run_id="warm-up")
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(runs):
        result = await agent.run(f"request {i}", unit_id=f"user-{i}")
        assert result.steps == steps + 1 and result.outcome == "success", result
    return time.perf_counter() - started, time.process_time() - cpu


async def baseline_runs(runs: int, steps: int) -> tuple[float, float]:
    clock = FakeClock()
    model = provider(clock, steps)
    specs = (echo.spec(),)
    cfg = config(steps)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(runs):
        messages = [Message.system(cfg.prompt("system")), Message.user(f"request {i}")]
        while True:
            response = await model.chat(ChatRequest.from_config(cfg, messages, specs))
            messages.append(response.message)
            if not response.message.tool_calls:
                break
            for call in response.message.tool_calls:
                value = await echo.fn(**json.loads(call.arguments))
                messages.append(Message.tool(call.id, json.dumps(value)))
    return time.perf_counter() - started, time.process_time() - cpu


def measure(
    work: Callable[[], Awaitable[tuple[float, float]]], repeat: int, per: int
) -> tuple[float, float]:
    """Median wall and CPU µs per step over ``repeat`` rounds."""
    rounds = [asyncio.run(work()) for _ in range(repeat)]
    wall = statistics.median(w for w, _ in rounds) / per * 1e6
    cpu = statistics.median(c for _, c in rounds) / per * 1e6
    return wall, cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tuneloop runtime overhead per step")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10, help="tool calls per run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    steps_total = args.runs * (args.steps + 1)
    tracer = TracerProvider(shutdown_on_exit=False)
    tracer.add_span_processor(BatchSpanProcessor(DiscardExporter(), max_queue_size=1 << 16))
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def sqlite_store() -> str:
            return str(Path(tmp) / f"runs-{next(counter)}.db")

        sqlite_us = measure(
            lambda: agent_runs(sqlite_store(), args.runs, args.steps, tracer),
            args.repeat,
            steps_total,
        )
        fsync_us = measure(
            lambda: agent_runs(
                open_runtime_state(sqlite_store(), fsync=True), args.runs, args.steps, tracer
            ),
            args.repeat,
            steps_total,
        )
        memory_us = measure(
            lambda: agent_runs(None, args.runs, args.steps, tracer), args.repeat, steps_total
        )
        base_us = measure(lambda: baseline_runs(args.runs, args.steps), args.repeat, steps_total)
    tracer.shutdown()
    print(
        f"{args.runs} runs x {args.steps + 1} model calls ({args.steps} tool calls), "
        f"median of {args.repeat}; per step (one model call and its tool call)"
    )
    print(f"  {'':<30} {'wall µs':>9} {'CPU µs':>9} {'wall x baseline':>16}")
    rows = [
        ("tuneloop, SQLite", sqlite_us),
        ("tuneloop, SQLite + fsync", fsync_us),
        ("tuneloop, memory", memory_us),
        ("baseline (no runtime)", base_us),
    ]
    for label, (wall, cpu) in rows:
        print(f"  {label:<30} {wall:9.1f} {cpu:9.1f} {wall / base_us[0]:15.1f}x")
    for label, (wall, cpu) in rows[:3]:
        own = f"{wall - base_us[0]:9.1f} {cpu - base_us[1]:9.1f}"
        print(f"  runtime's own cost, {label.removeprefix('tuneloop, '):<10} {own}")
    verdict = "PASS" if sqlite_us[0] < TARGET_US else "MISS"
    print(f"target: under {TARGET_US:.0f} µs per step (wall) with SQLite checkpoints: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Production runs sent through the real SDK to a live server, for from-traces and replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import LiveServer
from tests.sdk.sdk_fakes import FAST_RETRY
from tuneloop import semconv
from tuneloop.clock import FakeClock
from tuneloop.sdk import Client


@dataclass(frozen=True)
class Tool:
    name: str
    arguments: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class Production:
    """One run as an instrumented agent would trace it."""

    question: str | None
    answer: str | None = None
    outcome: str = "success"
    tools: Sequence[Tool] = ()
    style: str = "genai"  # genai: model call messages; openinference: input.value on the root
    cost_usd: float = 0.01
    latency_ms: float = 800.0
    attributes: dict[str, Any] = field(default_factory=dict)


def send(live_server: LiveServer, runs: Sequence[Production], *, agent: str = "support",
         version: str | None = "1.0.0") -> list[str]:  # fmt: skip
    """Trace ``runs`` to the server; their trace ids, in order."""
    ids = []
    clock = FakeClock()
    with Client(live_server.url, live_server.ingest_key, retry=FAST_RETRY, clock=clock) as client:
        for spec in runs:
            with client.run(agent, config_version=version, attributes=spec.attributes) as run:
                if spec.style == "openinference" and spec.question is not None:
                    run.set_attribute(semconv.OI_INPUT_VALUE, spec.question)
                    if spec.answer is not None:
                        run.set_attribute(semconv.OI_OUTPUT_VALUE, spec.answer)
                messages = None
                if spec.style == "genai" and spec.question is not None:
                    messages = [
                        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                        {"role": "user", "parts": [{"type": "text", "content": spec.question}]},
                    ]
                with run.llm_call("gpt-4o-mini", "openai", input_messages=messages) as call:
                    clock.advance(spec.latency_ms)
                    call.usage(input_tokens=100, output_tokens=20, cost_usd=spec.cost_usd)
                    if spec.style == "genai" and spec.answer is not None:
                        reply = {"role": "assistant", "content": spec.answer}
                        call.response(output_messages=[reply])
                for tool in spec.tools:
                    with run.tool_call(tool.name, tool.arguments) as traced:
                        if tool.error:
                            traced.fail(tool.error)
                        else:
                            traced.result(data={"ok": True})
                run.outcome(spec.outcome)  # type: ignore[arg-type]
            ids.append(run.trace_id)
            clock.advance(1_000)
        assert client.flush(timeout_s=20.0)
    return ids

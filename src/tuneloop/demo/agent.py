"""The scripted support agent: plays a `ScriptedRun` through the public SDK.

It is instrumented as any agent would be: a run, a guardrail, model calls and tool
calls, an outcome, and user feedback afterwards. Simulated time moves the clock the
client reads, so spans carry the world's latencies without waiting for them.
"""

from __future__ import annotations

from typing import assert_never

from tuneloop import semconv
from tuneloop.clock import FakeClock
from tuneloop.demo.script import GuardrailStep, LlmStep, ScriptedRun, Step, ToolStep
from tuneloop.errors import ToolError
from tuneloop.sdk import Client, Run

AGENT = "support"
PROVIDER = "openai"
_NS_PER_MS = 1_000_000
# The config prompt each model call uses (``prompts.<name>`` of the agent's config).
_PROMPTS = {"router": "router", "answer": "system"}


class ToolUnavailableError(ToolError):
    """A tool failed in a way the agent cannot work around; the run aborts."""


def play(client: Client, clock: FakeClock, script: ScriptedRun) -> str:
    """Send one scripted run through ``client``; returns its trace id.

    The clock is moved to the run's start (never back), then forward by each step's
    simulated latency inside that step's span.
    """
    behind_ns = script.start_ms * _NS_PER_MS - clock.now_ns()
    if behind_ns > 0:
        clock.advance(behind_ns / _NS_PER_MS)
    run = client.run(
        AGENT,
        unit_id=script.unit_id,
        session_id=script.session_id,
        config_version=script.settings.version,
        attributes={"support.turn": script.turn},
    )
    try:
        with run:
            for step in script.steps:
                _play_step(run, clock, step)
            if script.misrouted:
                # The user's reply shows the router was wrong: a correction of its decision.
                run.set_attribute(semconv.TL_DECISION_STEP, "router")
                run.set_attribute(semconv.TL_DECISION_CORRECTED, True)
                run.set_attribute(semconv.TL_DECISION_CORRECTED_VALUE, script.intent)
            run.outcome(script.outcome)
    except ToolUnavailableError:
        pass  # recorded on the run's span: an error and a failed outcome
    return run.trace_id


def send_feedback(client: Client, script: ScriptedRun, trace_id: str) -> bool:
    """Send the user's thumbs for the run, if they gave any; True if it was accepted."""
    if script.thumbs is None:
        return False
    return client.feedback(trace_id, "thumbs", float(script.thumbs))


def _play_step(run: Run, clock: FakeClock, step: Step) -> None:
    match step:
        case GuardrailStep():
            with run.guardrail(step.name) as guard:
                clock.advance(step.latency_ms)
                guard.verdict(step.verdict)
        case LlmStep():
            with run.llm_call(
                step.model,
                PROVIDER,
                temperature=step.temperature,
                input_messages=[
                    {"role": "user", "parts": [{"type": "text", "content": step.prompt}]}
                ],
            ) as call:
                call.span.set_attribute(semconv.TL_PROMPT_NAME, _PROMPTS[step.purpose])
                if step.purpose == "router":
                    call.span.set_attribute(semconv.TL_DECISION_STEP, "router")
                    call.span.set_attribute(semconv.TL_DECISION_VALUE, step.reply)
                clock.advance(step.latency_ms)
                call.usage(input_tokens=step.input_tokens, output_tokens=step.output_tokens)
                call.response(
                    model=step.model,
                    finish_reasons=["stop"],
                    output_messages=[
                        {"role": "assistant", "parts": [{"type": "text", "content": step.reply}]}
                    ],
                )
        case ToolStep():
            _play_tool(run, clock, step)
        case _:
            assert_never(step)


def _play_tool(run: Run, clock: FakeClock, step: ToolStep) -> None:
    with run.tool_call(step.tool, dict(step.arguments)) as tool:
        for number, attempt in enumerate(step.attempts):
            if number:
                clock.advance(step.backoff_ms[number - 1])
            clock.advance(attempt.latency_ms)
        tool.retries(step.retries)
        final = step.final
        if final.error is None:
            tool.result(data=dict(step.result or {}))
            return
        tool.fail(final.error, retryable=final.retryable, message=final.message)
        if step.fatal:
            raise ToolUnavailableError(f"{step.tool}: {final.message or final.error}")

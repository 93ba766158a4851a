"""One attempt at a tool under its timeout, per-key exclusion, and the refusal envelopes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from tuneloop.clock import Clock
from tuneloop.config.model import Hop, ToolSettings
from tuneloop.runtime.tools.contract import Tool, ToolContext, ToolResult
from tuneloop.runtime.tools.resilience import Failure, classify

_MS_PER_S = 1000.0
_ENVELOPE_KINDS = ("timeout", "rate_limit", "server_error", "connection", "invalid_output")


@dataclass(frozen=True, slots=True)
class ApprovalRequired:
    """The call needs a human's approval before it may run (or before its output is used).

    The caller parks the run and, once approved, calls `ToolRunner.run` again with
    ``approved=True`` and the same ``scope``: the idempotency key is the same, so a
    write that already ran is not run twice.

    Attributes:
        tool: the tool's name.
        call_id: the model's call id.
        arguments: the validated (and redacted) arguments.
        idempotency_key: the call's key.
        reason: why approval is needed.
        source: ``tool_settings`` (``requires_approval``) or ``guardrail``.
        hop: ``tool_args`` (before running) or ``tool_output`` (the output awaits review).
        pending: the result awaiting approval at ``tool_output``.
    """

    tool: str
    call_id: str
    arguments: Mapping[str, Any]
    idempotency_key: str
    reason: str
    source: Literal["tool_settings", "guardrail"]
    hop: Hop = "tool_args"
    pending: ToolResult | None = None


ToolOutcome = ToolResult | ApprovalRequired
"""What `ToolRunner.run` returns: the envelope, or a request for approval."""


async def attempt_once(
    tool: Tool,
    settings: ToolSettings,
    values: BaseModel,
    context: ToolContext,
    *,
    clock: Clock,
) -> ToolResult | Failure:
    """Call ``tool`` once under ``settings.timeout_ms``; a failure is returned, not raised.

    The deadline holds on the event loop's time and on ``clock``: a simulated tool
    that moves a fake clock past its deadline times out as a slow real one does.
    """
    timeout_ms = settings.timeout_ms
    started = clock.now_ms()
    limit = f"tools.{tool.name}.timeout_ms = {timeout_ms}"
    try:
        async with asyncio.timeout(timeout_ms / _MS_PER_S) as deadline:
            value = await tool.invoke(values, context)
    except TimeoutError as exc:
        if not deadline.expired():
            return classify(exc)  # the tool's own timeout, raised from inside it
        return Failure(
            "timeout", f"tool {tool.name!r} did not finish in time ({limit})", "ToolTimeoutError"
        )
    except Exception as exc:
        return classify(exc)
    elapsed = clock.now_ms() - started
    if elapsed > timeout_ms:
        return Failure(
            "timeout",
            f"tool {tool.name!r} took {elapsed} ms, over its limit ({limit})",
            "ToolTimeoutError",
        )
    try:
        result = tool.check_output(value)
    except Exception as exc:
        return classify(exc)
    if result.status == "error":
        kind = result.error_kind or "error"
        message = result.error_message or "the tool reported an error"
        return Failure(
            kind if kind in _ENVELOPE_KINDS else "error",  # type: ignore[arg-type]
            message,
            "ToolResult",
        )
    return result


class KeyLocks:
    """One holder per key at a time: a concurrent duplicate call waits, then replays."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key`` for the block; the lock is dropped when nobody waits on it."""
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]


def invalid_arguments(tool: str, problems: Iterable[Mapping[str, Any]]) -> ToolResult:
    """The envelope answering malformed arguments: what is wrong, and to try again."""
    details = [dict(problem) for problem in problems]
    listed = "; ".join(f"{p['loc'] or 'arguments'}: {p['msg']}" for p in details)
    return ToolResult.error(
        "invalid_arguments",
        f"the arguments for tool {tool!r} are invalid: {listed}. Call it again with arguments "
        "that match its schema.",
        details=details,
    )


def blocked(tool: str, reason: str) -> ToolResult:
    """The envelope answering a call a guardrail blocked."""
    return ToolResult.error(
        "blocked_by_guardrail", f"the call to tool {tool!r} was blocked: {reason}"
    )

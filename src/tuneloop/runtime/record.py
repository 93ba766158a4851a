"""`RunRecord`: a run's working state between checkpoints, and its checkpoint form.

Everything a new process needs to continue the run lives here and round-trips
through plain JSON data: the conversation, the spend, the tool calls made, the
pending review, the configs the run is pinned to, the trace of every segment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuneloop.runtime.budget import Spend
from tuneloop.runtime.checkpoints import Checkpoint
from tuneloop.runtime.machine import Machine
from tuneloop.runtime.providers.base import Message, ToolCallRequest
from tuneloop.runtime.result import RunResult, StopReason, ToolCallSummary
from tuneloop.runtime.review import ReviewItem
from tuneloop.sdk.config import ResolvedConfig
from tuneloop.telemetry.model import Outcome


def config_entry(resolved: ResolvedConfig, data: Mapping[str, Any]) -> dict[str, Any]:
    """How a run remembers the config it was resolved (``data``: the config as JSON data)."""
    return {
        "version": resolved.version,
        "label": resolved.label,
        "variant": resolved.variant,
        "key": resolved.key,
        "kind": resolved.kind,
        "source": resolved.source,
        "config": data,
    }


class RunRecord:
    """The mutable state of one run, owned by the driver of its current segment."""

    def __init__(
        self,
        *,
        run_id: str,
        root: str,
        input_text: str,
        created_ms: int,
        unit_id: str | None = None,
        session_id: str | None = None,
        intent: str | None = None,
        tier: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.root = root
        self.active = root
        self.path: list[str] = [root]
        self.input = input_text
        self.created_ms = created_ms
        self.unit_id = unit_id
        self.session_id = session_id
        self.intent = intent
        self.tier = tier
        self.machine = Machine.start(created_ms)
        self.messages: list[Message] = []
        self.message_data: list[dict[str, Any]] = []
        self.step = 0
        self.agent_steps = 0
        self.spend = Spend()
        self.unsaved_spend = Spend()
        self.longest_output = 0
        self.tool_calls: list[dict[str, Any]] = []
        self.pending: dict[str, Any] | None = None
        self.input_review: str | None = None
        self.output: str | None = None
        self.stop_reason: StopReason | None = None
        self.outcome: Outcome | None = None
        self.error: str | None = None
        self.sampled = False
        self.confidence: float | None = None
        self.configs: dict[str, dict[str, Any]] = {}
        self.configs_saved = 0
        self.route: dict[str, Any] | None = None
        self.segments: list[dict[str, str]] = []
        self.version = 0

    def append(self, message: Message) -> None:
        """Add a message to the active conversation."""
        self.messages.append(message)
        self.message_data.append(message.to_dict())

    def restart_conversation(self, messages: list[Message]) -> None:
        """Replace the active conversation (a handoff starts the specialist's own)."""
        self.messages = []
        self.message_data = []
        for message in messages:
            self.append(message)

    def unanswered_calls(self) -> list[ToolCallRequest]:
        """The tool calls of the last assistant message that no tool message answers yet."""
        for index in range(len(self.messages) - 1, -1, -1):
            message = self.messages[index]
            if message.role == "assistant":
                answered = {m.tool_call_id for m in self.messages[index + 1 :]}
                return [call for call in message.tool_calls if call.id not in answered]
        return []

    def add_spend(self, spend: Spend, output_tokens: int) -> None:
        """Count a model call's spend (saved with the next checkpoint)."""
        self.spend = self.spend + spend
        self.unsaved_spend = self.unsaved_spend + spend
        self.longest_output = max(self.longest_output, output_tokens)

    def take_unsaved_spend(self) -> Spend | None:
        """The spend since the last checkpoint, to add to the session with the next save."""
        spend, self.unsaved_spend = self.unsaved_spend, Spend()
        return spend if spend.tokens or spend.cost_usd else None

    def summary(self) -> tuple[ToolCallSummary, ...]:
        """The tool calls made so far."""
        return tuple(
            ToolCallSummary(c["name"], c["arguments"], c["status"], c["call_id"], c["agent"])
            for c in self.tool_calls
        )

    def result(self, *, trace_id: str | None = None, review: ReviewItem | None = None) -> RunResult:
        """The run as a `RunResult`."""
        root = self.configs.get(self.root, {})
        return RunResult(
            run_id=self.run_id,
            agent=self.root,
            state=self.machine.state,
            outcome=self.outcome,
            output=self.output,
            stop_reason=self.stop_reason,
            steps=self.step,
            spend=self.spend,
            tool_calls=self.summary(),
            review=review,
            trace_id=trace_id or (self.segments[-1]["trace_id"] if self.segments else None),
            config_version=root.get("version"),
            variant=root.get("variant"),
            agents=tuple(self.path),
            messages=tuple(self.messages),
            error=self.error,
        )

    def checkpoint(self, now_ms: int) -> Checkpoint:
        """The checkpoint to save now."""
        fresh = len(self.configs) != self.configs_saved or self.version == 0
        # Entries are added, never changed: a shallow copy is a snapshot.
        return Checkpoint(
            run_id=self.run_id,
            agent=self.root,
            state=self.machine.state,
            step=self.step,
            data=self.to_data(),
            version=self.version,
            created_ms=self.created_ms,
            updated_ms=now_ms,
            session_id=self.session_id,
            configs=dict(self.configs) if fresh else None,
        )

    def to_data(self) -> dict[str, Any]:
        """Plain JSON data: everything needed to continue.

        A snapshot: the lists are copies (their items are never changed once added),
        so what was saved stays as it was while the run goes on.
        """
        return {
            "root": self.root,
            "active": self.active,
            "path": list(self.path),
            "input": self.input,
            "unit_id": self.unit_id,
            "session_id": self.session_id,
            "intent": self.intent,
            "tier": self.tier,
            "machine": self.machine.to_data(),
            "messages": list(self.message_data),
            "step": self.step,
            "agent_steps": self.agent_steps,
            "spend": self.spend.to_data(),
            "longest_output": self.longest_output,
            "tool_calls": list(self.tool_calls),
            "pending": self.pending,
            "input_review": self.input_review,
            "output": self.output,
            "stop_reason": self.stop_reason,
            "outcome": self.outcome,
            "error": self.error,
            "sampled": self.sampled,
            "confidence": self.confidence,
            "route": self.route,
            "segments": list(self.segments),
            "created_ms": self.created_ms,
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> RunRecord:
        """The run as it was saved."""
        data = checkpoint.data
        record = cls(
            run_id=checkpoint.run_id,
            root=data["root"],
            input_text=data["input"],
            created_ms=int(data["created_ms"]),
            unit_id=data.get("unit_id"),
            session_id=data.get("session_id"),
            intent=data.get("intent"),
            tier=data.get("tier"),
        )
        record.active = data["active"]
        record.path = list(data["path"])
        record.machine = Machine.from_data(data["machine"])
        record.restart_conversation([Message.from_dict(m) for m in data["messages"]])
        record.step = int(data["step"])
        record.agent_steps = int(data["agent_steps"])
        record.spend = Spend.from_data(data["spend"])
        record.longest_output = int(data.get("longest_output", 0))
        record.tool_calls = list(data["tool_calls"])
        record.pending = data.get("pending")
        record.input_review = data.get("input_review")
        record.output = data.get("output")
        record.stop_reason = data.get("stop_reason")
        record.outcome = data.get("outcome")
        record.error = data.get("error")
        record.sampled = bool(data.get("sampled", False))
        record.confidence = data.get("confidence")
        record.configs = dict(checkpoint.configs or {})
        record.configs_saved = len(record.configs)
        record.route = data.get("route")
        record.segments = list(data.get("segments", ()))
        record.version = checkpoint.version
        return record

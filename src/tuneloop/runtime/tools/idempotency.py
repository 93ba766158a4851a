"""Idempotency: a side-effecting tool call executes at most once per key.

The key is derived from the call (its scope, the tool, the validated arguments), so a
retry, a replayed step or a resumed run derives the same key. The runner records the
result of every write under its key in an `IdempotencyLedger` and answers a repeat
from the ledger instead of executing again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tuneloop.runtime.cache import digest


def idempotency_key(tool: str, arguments: Mapping[str, Any], *, scope: str) -> str:
    """The key of one logical call.

    Args:
        tool: the tool's name.
        arguments: the validated arguments (JSON data).
        scope: what makes two identical calls distinct: the run and step that made it
            (the state machine passes ``{run_id}:{step}``), or the model's call id.
    """
    return "idem:" + digest({"scope": scope, "tool": tool, "arguments": dict(arguments)})


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A recorded result of a side-effecting call."""

    key: str
    tool: str
    result: Mapping[str, Any]
    recorded_at_ms: int


class IdempotencyLedger(Protocol):
    """Where the results of side-effecting calls are recorded, by idempotency key.

    A durable implementation (the run store's) lets a resumed run find what a crashed
    one already did; `InMemoryLedger` serves one process.
    """

    async def get(self, key: str) -> LedgerEntry | None:
        """The recorded entry under ``key``, or ``None``."""
        ...

    async def record(self, entry: LedgerEntry) -> LedgerEntry:
        """Record ``entry`` unless its key is taken; return the entry that stands (first wins)."""
        ...


class InMemoryLedger:
    """A process-local `IdempotencyLedger`."""

    def __init__(self) -> None:
        self._entries: dict[str, LedgerEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> LedgerEntry | None:
        """The recorded entry under ``key``, or ``None``."""
        return self._entries.get(key)

    async def record(self, entry: LedgerEntry) -> LedgerEntry:
        """Record ``entry`` unless its key is taken; the first entry stands."""
        return self._entries.setdefault(entry.key, entry)

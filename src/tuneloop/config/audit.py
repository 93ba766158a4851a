"""The audit log's hash chain: every row commits to the one before it.

Row ``n`` stores ``prev_hash`` (row ``n-1``'s ``row_hash``, or 64 zeros for the first)
and ``row_hash`` = sha256 of the canonical JSON of all its fields. Editing a row breaks
its own hash; deleting or reordering rows breaks the links or the sequence; cutting the
tail is caught by the chain head the store keeps beside the rows. (Someone who can
rewrite every row *and* the head can forge a chain: copy the head hash somewhere else,
``tuneloop audit verify`` prints it, to anchor it.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from tuneloop.config.canonical import content_hash

AuditAction = Literal[
    "create", "move", "rollback", "approve", "flag_set", "flag_delete",
    "allocation_set", "allocation_delete",
]  # fmt: skip
GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One appended row: who (key id) did what to which agent and channel, and when."""

    project_id: str
    seq: int
    agent: str
    action: AuditAction
    channel: str | None
    key_id: str
    created_ms: int
    before_hash: str | None
    after_hash: str | None
    detail: dict[str, Any]
    prev_hash: str
    row_hash: str

    def computed_hash(self) -> str:
        """The hash this row's fields and ``prev_hash`` call for."""
        return entry_hash(
            project_id=self.project_id,
            seq=self.seq,
            agent=self.agent,
            action=self.action,
            channel=self.channel,
            key_id=self.key_id,
            created_ms=self.created_ms,
            before_hash=self.before_hash,
            after_hash=self.after_hash,
            detail=self.detail,
            prev_hash=self.prev_hash,
        )

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "seq": self.seq,
            "agent": self.agent,
            "action": self.action,
            "channel": self.channel,
            "key_id": self.key_id,
            "created_ms": self.created_ms,
            "before": self.before_hash,
            "after": self.after_hash,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "row_hash": self.row_hash,
        }


def entry_hash(
    *,
    project_id: str,
    seq: int,
    agent: str,
    action: str,
    channel: str | None,
    key_id: str,
    created_ms: int,
    before_hash: str | None,
    after_hash: str | None,
    detail: dict[str, Any],
    prev_hash: str,
) -> str:
    """The sha256 a row with these fields carries."""
    return content_hash(
        {
            "project_id": project_id,
            "seq": seq,
            "agent": agent,
            "action": action,
            "channel": channel,
            "key_id": key_id,
            "created_ms": created_ms,
            "before": before_hash,
            "after": after_hash,
            "detail": detail,
            "prev": prev_hash,
        }
    )


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of checking one project's chain."""

    project_id: str
    rows: int
    head_hash: str
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "project_id": self.project_id,
            "ok": self.ok,
            "rows": self.rows,
            "head_hash": self.head_hash,
            "problems": list(self.problems),
        }


def verify_chain(
    project_id: str,
    entries: Iterable[AuditEntry],
    *,
    head: tuple[int, str] | None,
    extra_problems: Iterable[str] = (),
) -> ChainReport:
    """Check one project's rows, in ``seq`` order, against each other and the stored head.

    ``head`` is the ``(seq, hash)`` the store recorded for the last append (None if it has
    none). ``extra_problems`` are added as is (the store's check of version contents).
    """
    problems: list[str] = []
    expected_prev, expected_seq, rows = GENESIS, 1, 0
    for entry in entries:
        rows += 1
        if entry.seq != expected_seq:
            problems.append(
                f"row {entry.seq}: expected row {expected_seq} here; rows are missing or reordered"
            )
        if entry.prev_hash != expected_prev:
            problems.append(
                f"row {entry.seq}: prev_hash does not match row {entry.seq - 1}'s hash; "
                "a row before it was changed or removed"
            )
        if entry.computed_hash() != entry.row_hash:
            problems.append(
                f"row {entry.seq} ({entry.action} {entry.agent}): its content does not match "
                "its hash; the row was edited"
            )
        expected_prev, expected_seq = entry.row_hash, entry.seq + 1
    head_seq, head_hash = head if head is not None else (0, GENESIS)
    if (head_seq, head_hash) != (expected_seq - 1, expected_prev):
        problems.append(
            f"the chain ends at row {expected_seq - 1} but the recorded head is row "
            f"{head_seq}; rows were removed from or added to the end"
        )
    problems.extend(extra_problems)
    return ChainReport(project_id, rows, head_hash, tuple(problems))


def channel_problems(
    entries: Iterable[AuditEntry], channels: Iterable[tuple[str, str, str]]
) -> list[str]:
    """Channels ``(agent, channel, version)`` whose pointer no audited move or rollback set."""
    last: dict[tuple[str, str | None], str | None] = {}
    for entry in entries:
        if entry.action in ("move", "rollback"):
            last[(entry.agent, entry.channel)] = entry.after_hash
    return [
        f"channel {channel!r} of agent {agent!r} points at {version[:12]}, which no audited "
        "move put there"
        for agent, channel, version in channels
        if last.get((agent, channel)) != version
    ]

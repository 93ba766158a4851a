"""Differences between two configs: path by path, and as unified text for prompts.

The structural diff is also a JSON Patch: applying its operations to the old config
gives the new one (a hypothesis test holds it to that).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

ChangeOp = Literal["add", "remove", "replace"]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference at one JSON pointer ``path``."""

    op: ChangeOp
    path: str
    before: Any = None
    after: Any = None

    def to_op(self) -> dict[str, Any]:
        """The change as an RFC 6902 operation."""
        if self.op == "remove":
            return {"op": "remove", "path": self.path}
        return {"op": self.op, "path": self.path, "value": self.after}

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data: op, path, before and after."""
        return {"op": self.op, "path": self.path, "before": self.before, "after": self.after}


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """Every structural change, and a unified diff per prompt whose text changed."""

    changes: tuple[Change, ...]
    prompts: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when the two configs are the same."""
        return not self.changes

    def patch(self) -> list[dict[str, Any]]:
        """The JSON Patch that turns the old config into the new one."""
        return [change.to_op() for change in self.changes]

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"changes": [c.to_data() for c in self.changes], "prompts": dict(self.prompts)}


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _same(a: Any, b: Any) -> bool:
    # 1, 1.0 and True are == in Python but not the same JSON; compare types too.
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _walk(before: Any, after: Any, path: str, out: list[Change]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() - after.keys()):
            out.append(Change("remove", f"{path}/{_escape(key)}", before=before[key]))
        for key in sorted(before.keys() & after.keys()):
            _walk(before[key], after[key], f"{path}/{_escape(key)}", out)
        for key in sorted(after.keys() - before.keys()):
            out.append(Change("add", f"{path}/{_escape(key)}", after=after[key]))
        return
    if isinstance(before, list) and isinstance(after, list):
        for i in range(min(len(before), len(after))):
            _walk(before[i], after[i], f"{path}/{i}", out)
        # Removals from the end backwards, so each index is valid when it applies.
        for i in range(len(before) - 1, len(after) - 1, -1):
            out.append(Change("remove", f"{path}/{i}", before=before[i]))
        for i in range(len(before), len(after)):
            out.append(Change("add", f"{path}/{i}", after=after[i]))
        return
    if not _same(before, after):
        out.append(Change("replace", path, before=before, after=after))


def structural_diff(before: Any, after: Any) -> tuple[Change, ...]:
    """Every change between two JSON documents, leaf by leaf, in a stable order."""
    out: list[Change] = []
    _walk(before, after, "", out)
    return tuple(out)


def prompt_diffs(
    before: dict[str, str], after: dict[str, str], *, old: str = "a", new: str = "b"
) -> dict[str, str]:
    """A unified diff per prompt added, removed or changed; ``old``/``new`` label the sides."""
    diffs = {}
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name, ""), after.get(name, "")
        if name in before and name in after and a == b:
            continue
        lines = difflib.unified_diff(
            a.splitlines(keepends=True),
            b.splitlines(keepends=True),
            fromfile=f"{old}/prompts/{name}" if name in before else "/dev/null",
            tofile=f"{new}/prompts/{name}" if name in after else "/dev/null",
        )
        diffs[name] = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return diffs


def diff_configs(
    before: dict[str, Any], after: dict[str, Any], *, old: str = "a", new: str = "b"
) -> ConfigDiff:
    """Diff two effective configs (as JSON data); prompts get a text diff besides."""
    prompts_before = before.get("prompts") or {}
    prompts_after = after.get("prompts") or {}
    return ConfigDiff(
        structural_diff(before, after),
        prompt_diffs(prompts_before, prompts_after, old=old, new=new),
    )

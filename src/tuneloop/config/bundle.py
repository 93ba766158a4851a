"""Bundles: typed recommendations, each one or more RFC 6902 operations on a config.

Applying a bundle runs every operation on the effective config (defaults filled in,
so ``/params/temperature`` exists even when a file never set it) and validates the
result. Any failure names the recommendation and the path, and returns nothing.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import jsonpatch
import jsonpointer
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from tuneloop.config.model import AgentConfig, format_validation_error, validation_problems
from tuneloop.config.versions import is_semver
from tuneloop.errors import ConfigError

RecommendationType = Literal[
    "prompt_optimization",
    "tool_rearrangement",
    "timeout_adjustment",
    "retry_policy",
    "model_routing",
    "caching",
    "guardrail",
    "budget",
]
PatchOpName = Literal["add", "remove", "replace", "move", "copy", "test"]
_BUNDLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class PatchOp(BaseModel):
    """One RFC 6902 operation; ``from`` is spelled ``from_`` in Python."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    op: PatchOpName
    path: str
    value: Any = None
    from_: str | None = Field(default=None, alias="from")

    @model_validator(mode="after")
    def _check(self) -> PatchOp:
        for name, pointer in (("path", self.path), ("from", self.from_)):
            if pointer is not None and pointer != "" and not pointer.startswith("/"):
                raise ValueError(f"{name} {pointer!r} is not a JSON pointer; start it with '/'")
        if self.op in ("add", "replace", "test") and "value" not in self.model_fields_set:
            raise ValueError(f"op {self.op!r} needs a `value`")
        if self.op in ("move", "copy") and self.from_ is None:
            raise ValueError(f"op {self.op!r} needs `from`")
        return self

    @model_serializer
    def to_op(self) -> dict[str, Any]:
        """The operation as RFC 6902 JSON, with only the members its kind reads."""
        op: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.op in ("add", "replace", "test"):
            op["value"] = self.value
        if self.op in ("move", "copy"):
            op["from"] = self.from_
        return op


class Recommendation(BaseModel):
    """A typed, explained change: what it targets, how, why, and what it should do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: RecommendationType
    target: str = Field(min_length=1)
    change: list[PatchOp] = Field(min_length=1)
    rationale: str | None = None
    expected_impact: str | None = None
    evidence: dict[str, Any] | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("change", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value


class Bundle(BaseModel):
    """An immutable change set: an id, a semver version and its recommendations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bundle_id: str
    version: str
    description: str | None = None
    recommendations: list[Recommendation] = Field(min_length=1)

    @field_validator("bundle_id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _BUNDLE_ID.match(value):
            raise ValueError("use 1-128 letters, digits, '_', '.' or '-'")
        return value

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not is_semver(value):
            raise ValueError(f"{value!r} is not a semantic version such as 1.0.0")
        return value

    @classmethod
    def from_data(cls, data: Any, *, source: str = "bundle") -> Bundle:
        """Validate parsed YAML or JSON into a bundle.

        Raises:
            ConfigError: one line per problem, each with its path.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source=source)) from None

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data, as a bundle file would say it."""
        return self.model_dump(mode="json")


def _describe(index: int, rec: Recommendation) -> str:
    return f"recommendation {index} ({rec.type} on {rec.target!r})"


def _missing_part(doc: Any, pointer: str, *, parent_only: bool) -> str | None:
    """Why ``pointer`` does not resolve in ``doc``, naming what exists there instead."""
    try:
        parts = jsonpointer.JsonPointer(pointer).parts
    except jsonpointer.JsonPointerException as exc:
        return f"invalid JSON pointer {pointer!r}: {exc}"
    node, walked = doc, ""
    for i, part in enumerate(parts):
        if parent_only and i == len(parts) - 1:
            return None
        if isinstance(node, dict):
            if part not in node:
                where = walked or "the config root"
                known = ", ".join(sorted(map(str, node))[:30]) or "nothing"
                return f"{where} has no key {part!r}; it has: {known}"
            node = node[part]
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return f"{walked} has no item {part!r} (it has {len(node)} items)"
            node = node[int(part)]
        else:
            return f"{walked} is a {type(node).__name__}, not an object or list"
        walked += "/" + part.replace("~", "~0").replace("/", "~1")
    return None


def _explain(doc: Any, op: PatchOp, exc: Exception) -> str:
    if op.op in ("move", "copy") and op.from_ is not None:
        missing = _missing_part(doc, op.from_, parent_only=False)
        if missing:
            return f"from {op.from_}: {missing}"
    missing = _missing_part(doc, op.path, parent_only=op.op in ("add", "move", "copy"))
    if missing:
        return missing
    if isinstance(exc, jsonpatch.JsonPatchTestFailed):
        actual = jsonpointer.resolve_pointer(doc, op.path)
        return f"test failed: the value is {actual!r}, not {op.value!r}"
    return str(exc)[:300]


def _related(op_path: str, problem_path: str) -> bool:
    a = [p for p in op_path.split("/") if p]
    b = [p for p in problem_path.replace(".", "/").split("/") if p]
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def apply_bundle(config: AgentConfig, bundle: Bundle) -> AgentConfig:
    """The config ``bundle`` makes of ``config``.

    Raises:
        ConfigError: an operation fails (missing path, failed test) or the result is not a
            valid config; the message names the recommendation and the path.
    """
    data: Any = config.to_data()
    for index, rec in enumerate(bundle.recommendations):
        for op in rec.change:
            try:
                data = jsonpatch.apply_patch(data, [op.to_op()], in_place=False)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise ConfigError(
                    f"bundle {bundle.bundle_id!r}: {_describe(index, rec)}: "
                    f"{op.op} {op.path or '/'}: {_explain(data, op, exc)}"
                ) from None
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for path, message in validation_problems(exc):
            culprits = [
                _describe(i, rec)
                for i, rec in enumerate(bundle.recommendations)
                if any(_related(op.path, path) for op in rec.change)
            ]
            by = ", ".join(culprits) or "the recommendations together"
            lines.append(f"  {by}: {path or 'config'}: {message}")
        raise ConfigError(
            f"bundle {bundle.bundle_id!r} makes the config invalid:\n" + "\n".join(lines)
        ) from None

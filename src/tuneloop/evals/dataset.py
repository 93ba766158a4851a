"""Eval datasets: cases read from JSONL or YAML, each error naming its line and field.

A case::

    {"id": "order-status-1", "input": "Where is order A-1001?",
     "expected": {"contains": ["A-1001"], "tool_calls": [{"name": "lookup_order"}]},
     "category": "orders", "tags": ["smoke"], "difficulty": "easy"}

``expected`` takes one of two forms:

- a plain value (a string, number, list, or a mapping that uses none of the keys
  below): the reference output, as if written ``{"output": value}``;
- a mapping of expectation keys (`EXPECTATION_KEYS`), each read by the evaluators that
  need it: ``output`` (the reference answer or answers), ``contains``, ``not_contains``,
  ``regex``, ``schema`` (a JSON schema), ``tool_calls`` (the expected trajectory),
  ``state`` (the expected final environment), ``refuse`` (true: the agent must refuse),
  ``sub_goals`` (progress rate), ``allowed_tools`` (grounding), ``rubric`` (LLM judge).

A mapping mixing expectation keys with other keys is an error: wrap a literal mapping
output as ``{"output": {...}}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from tuneloop.errors import InvalidInputError

EXPECTATION_KEYS = frozenset(
    {
        "output",
        "contains",
        "not_contains",
        "regex",
        "schema",
        "tool_calls",
        "state",
        "refuse",
        "sub_goals",
        "allowed_tools",
        "rubric",
    }
)
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a case expects, by expectation key (see the module docstring)."""

    values: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def has(self, key: str) -> bool:
        """Whether the case states ``key``."""
        return key in self.values

    def get(self, key: str, default: Any = None) -> Any:
        """The value for ``key``, or ``default``."""
        return self.values.get(key, default)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return dict(self.values)

    @classmethod
    def parse(cls, raw: Any) -> Expectation:
        """Read an ``expected`` field in either form.

        Raises:
            ValueError: a mapping mixes expectation keys with other keys.
        """
        if raw is None:
            return cls()
        if isinstance(raw, Mapping):
            known = set(raw) & EXPECTATION_KEYS
            unknown = set(raw) - EXPECTATION_KEYS
            if known and unknown:
                raise ValueError(
                    f"mixes expectation keys {sorted(known)} with other keys {sorted(unknown)}; "
                    "wrap a literal mapping output as {output: {...}} or fix the key names "
                    f"(expectation keys: {sorted(EXPECTATION_KEYS)})"
                )
            if known:
                return cls(MappingProxyType(dict(raw)))
        return cls(MappingProxyType({"output": raw}))


@dataclass(frozen=True, slots=True)
class Case:
    """One dataset case."""

    id: str
    input: Any
    expected: Expectation = field(default_factory=Expectation)
    category: str = "default"
    tags: tuple[str, ...] = ()
    difficulty: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    line: int | None = None


_Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


def _number_as_text(value: Any) -> Any:
    # Ids and difficulties may be written as numbers; they are compared as text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


_Id = Annotated[_Name, BeforeValidator(_number_as_text)]


class CaseModel(BaseModel):
    """A case as written in a dataset file (the boundary model; unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid")

    id: _Id
    input: Any = Field(description="what the target receives")
    expected: Any = None
    category: _Name = "default"
    tags: list[_Name] = Field(default_factory=list)
    difficulty: _Id | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def load_dataset(path: Path) -> tuple[Case, ...]:
    """Read cases from a ``.jsonl``, ``.json``, ``.yaml`` or ``.yml`` file.

    A YAML or JSON document holds a list of cases, or a mapping with a ``cases`` list.

    Raises:
        InvalidInputError: the file is missing or malformed, a case is invalid (the
            message names the file, line and field), or two cases share an id.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read dataset {path}: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        items = _jsonl_items(text, path)
    elif suffix in (".yaml", ".yml", ".json"):
        items = _document_items(text, path)
    else:
        raise InvalidInputError(
            f"dataset {path}: unknown format {suffix!r}; use .jsonl, .json, .yaml or .yml"
        )
    cases = tuple(_case(raw, line, path) for raw, line in items)
    if not cases:
        raise InvalidInputError(f"dataset {path} has no cases")
    _check_unique(cases, path)
    return cases


def _jsonl_items(text: str, path: Path) -> list[tuple[Any, int]]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((json.loads(line), number))
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"dataset {path} line {number}: invalid JSON: {exc.msg} (column {exc.colno})"
            ) from None
    return items


def _document_items(text: str, path: Path) -> list[tuple[Any, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInputError(f"dataset {path}{where}: invalid YAML/JSON: {problem}") from None
    if isinstance(document, Mapping) and set(document) == {"cases"}:
        document = document["cases"]
        node = next(value for key, value in node.value if key.value == "cases")  # type: ignore[union-attr]
    if not isinstance(document, list) or not isinstance(node, yaml.SequenceNode):
        raise InvalidInputError(
            f"dataset {path}: expected a list of cases (or a mapping with a 'cases' list), "
            f"got {type(document).__name__}"
        )
    return [
        (item, child.start_mark.line + 1) for item, child in zip(document, node.value, strict=True)
    ]


def _case(raw: Any, line: int, path: Path) -> Case:
    where = f"dataset {path} line {line}"
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"{where}: a case must be a mapping, got {type(raw).__name__}")
    try:
        model = CaseModel.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInputError(f"{where}: {_describe(exc)}") from None
    try:
        expected = Expectation.parse(model.expected)
    except ValueError as exc:
        raise InvalidInputError(f"{where}: field 'expected' {exc}") from None
    return Case(
        id=model.id,
        input=model.input,
        expected=expected,
        category=model.category,
        tags=tuple(model.tags),
        difficulty=model.difficulty,
        metadata=MappingProxyType(model.metadata),
        line=line,
    )


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "case"
        if error["type"] == "missing":
            parts.append(f"field {location!r} is required")
        elif error["type"] == "extra_forbidden":
            known = ", ".join(CaseModel.model_fields)
            parts.append(f"unknown field {location!r} (case fields: {known})")
        else:
            parts.append(f"field {location!r}: {error['msg']}")
    return "; ".join(dict.fromkeys(parts))


def _check_unique(cases: Sequence[Case], path: Path) -> None:
    seen: dict[str, int | None] = {}
    for case in cases:
        if case.id in seen:
            raise InvalidInputError(
                f"dataset {path}: duplicate case id {case.id!r} at lines {seen[case.id]} and "
                f"{case.line}; case ids must be unique"
            )
        seen[case.id] = case.line

"""Feature-flag evaluation: targeting rules in order, then a percentage of units, else off.

Pure: a `Flag` from the agent state document is compiled once (`CompiledFlag`) and then
evaluated per unit with a hash and a few comparisons. The percentage uses the same hash
as variant assignment (`tuneloop.assign`) with the flag's salt, so raising a flag's
percentage only turns it on for more units and never off for one that had it.

Rule semantics:

- A rule on an attribute the caller did not pass never matches.
- ``eq`` / ``in``: the attribute equals one of ``values``; ``neq`` / ``not_in``: none.
  Booleans only equal booleans (``True`` is not ``1``); ``1`` equals ``1.0``.
- ``contains``: a string attribute contains one of the string ``values``, or a list
  attribute holds one of ``values``.
- ``gt`` / ``gte`` / ``lt`` / ``lte``: a number compared with the first of ``values``;
  anything that is not a number never matches.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from tuneloop.assign import unit_point
from tuneloop.config.state import Flag, FlagRule

# The reasons of OpenTelemetry's feature_flag.result.reason that a local evaluation gives.
FlagReason = Literal["disabled", "targeting_match", "split", "default"]

_Key = tuple[str, object]
_ORDER: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


@dataclass(frozen=True, slots=True)
class FlagResult:
    """What a flag evaluated to for one unit, and why.

    Attributes:
        key: the flag's key.
        value: on or off.
        reason: ``targeting_match`` (a rule decided), ``split`` (in the percentage),
            ``default`` (no rule and not in the percentage) or ``disabled``.
        rule: the index of the rule that decided, if one did.
    """

    key: str
    value: bool
    reason: FlagReason
    rule: int | None = None

    @property
    def variant(self) -> str:
        """``on`` or ``off``, for ``feature_flag.result.variant``."""
        return "on" if self.value else "off"


def _key(value: object) -> _Key | None:
    """A comparison key that keeps booleans apart from numbers; None if unhashable."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, str):
        return ("str", value)
    return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True, slots=True)
class _Rule:
    attribute: str
    op: str
    keys: frozenset[_Key]
    substrings: tuple[str, ...]
    bound: float | None
    value: bool

    @classmethod
    def compile(cls, rule: FlagRule) -> _Rule:
        keys = frozenset(k for k in (_key(v) for v in rule.values) if k is not None)
        substrings = tuple(v for v in rule.values if isinstance(v, str))
        return cls(rule.attribute, rule.op, keys, substrings, _number(rule.values[0]), rule.value)

    def matches(self, attributes: Mapping[str, object]) -> bool:
        if self.attribute not in attributes:
            return False
        actual = attributes[self.attribute]
        match self.op:
            case "eq" | "in":
                return _key(actual) in self.keys
            case "neq" | "not_in":
                key = _key(actual)
                return key is not None and key not in self.keys
            case "contains":
                return self._contains(actual)
            case _:
                number = _number(actual)
                if number is None or self.bound is None:
                    return False
                return _ORDER[self.op](number, self.bound)

    def _contains(self, actual: object) -> bool:
        if isinstance(actual, str):
            return any(part in actual for part in self.substrings)
        if isinstance(actual, Collection) and not isinstance(actual, bytes | Mapping):
            return any(_key(item) in self.keys for item in actual)
        return False


class CompiledFlag:
    """A `Flag` prepared once per state refresh; `evaluate` is then a hash and lookups."""

    __slots__ = ("_enabled", "_fraction", "_key", "_rules", "_salt")

    def __init__(self, flag: Flag) -> None:
        self._key = flag.key
        self._enabled = flag.enabled
        self._salt = flag.salt
        self._fraction = flag.percentage / 100.0
        self._rules = tuple(_Rule.compile(rule) for rule in flag.rules)

    @property
    def key(self) -> str:
        """The flag's key."""
        return self._key

    def evaluate(
        self, unit_id: str | None, attributes: Mapping[str, object] | None = None
    ) -> FlagResult:
        """Evaluate the flag for one unit.

        Args:
            unit_id: the id the percentage is drawn on; without one, only a 100 %
                flag is on (a rule can still match).
            attributes: what targeting rules look at (``plan``, ``country``...).
        """
        if not self._enabled:
            return FlagResult(self._key, False, "disabled")
        if attributes:
            for index, rule in enumerate(self._rules):
                if rule.matches(attributes):
                    return FlagResult(self._key, rule.value, "targeting_match", index)
        if self._fraction >= 1.0 or (
            unit_id is not None
            and self._fraction > 0.0
            and unit_point(self._salt, unit_id) < self._fraction
        ):
            return FlagResult(self._key, True, "split")
        return FlagResult(self._key, False, "default")


def evaluate_flag(
    flag: Flag, unit_id: str | None, attributes: Mapping[str, object] | None = None
) -> FlagResult:
    """Evaluate ``flag`` for one unit: rules in order, then the percentage, else off."""
    return CompiledFlag(flag).evaluate(unit_id, attributes)

"""Deterministic assignment of units (users, sessions) to variants.

A unit is hashed with an allocation's salt to a point in ``[0, 1)``; the point falls in
one variant's range, the ranges being laid out end to end in the order the variants are
listed, each as wide as its weight. A second hash of the same salt and unit, with a
different purpose byte, decides whether the unit is in the allocation at all
(``coverage``), so growing coverage only adds units and never moves one between variants.

The hash, for SDKs in other languages: BLAKE2b with an 8-byte digest over the UTF-8 salt,
one purpose byte (``0x00`` variant, ``0x01`` coverage) and the UTF-8 unit id; the digest
read as a big-endian integer, its top 53 bits divided by 2**53.

What stays put when weights change (rollouts ramp a candidate 5 → 25 → 50 → 100 %):

- A unit keeps its variant when the variants listed before it keep their weights and its
  own weight does not shrink. The last variant is anchored at 1, so it keeps its units
  whenever its weight does not shrink.
- With two variants, whichever grows keeps every unit it had, in either order: a rollout
  never takes the candidate away from a unit while the candidate's weight grows, and a
  unit that stayed on the stable version stays there unless the ramp takes it.
- No stateless scheme can keep every unit of every unchanged variant once three or more
  variants are re-weighted; re-weight such experiments with a new salt.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tuneloop.errors import ConfigError

Purpose = Literal["variant", "coverage"]

_PURPOSE_BYTE: dict[Purpose, bytes] = {"variant": b"\x00", "coverage": b"\x01"}
_DIGEST_BYTES = 8
_SCALE = 2.0**-53
# Weights are written by people and by JSON round trips: this much off 1 is still 1.
WEIGHT_SUM_TOLERANCE = 1e-6


def unit_point(salt: str, unit_id: str, purpose: Purpose = "variant") -> float:
    """The unit's point in ``[0, 1)`` for this salt; the same inputs always give the same point.

    Args:
        salt: the allocation's (or flag's) salt.
        unit_id: the user or session id.
        purpose: ``variant`` for choosing a variant, ``coverage`` for the independent
            in-or-out draw.
    """
    data = salt.encode() + _PURPOSE_BYTE[purpose] + unit_id.encode()
    digest = hashlib.blake2b(data, digest_size=_DIGEST_BYTES).digest()
    return (int.from_bytes(digest, "big") >> 11) * _SCALE


@dataclass(frozen=True, slots=True)
class Split:
    """Variant weights compiled to the upper ends of their ranges in ``[0, 1)``.

    Attributes:
        bounds: for each variant, the end of its range; a variant's range starts where
            the previous one ends. Zero-weight variants have empty ranges.
    """

    bounds: tuple[float, ...]

    @classmethod
    def from_weights(cls, weights: Sequence[float]) -> Split:
        """Compile weights, which must be finite, non-negative and sum to 1.

        Raises:
            ConfigError: the weights are empty, negative, not finite or do not sum to 1.
        """
        if not weights:
            raise ConfigError("a split needs at least one variant weight")
        for weight in weights:
            if not (math.isfinite(weight) and weight >= 0):
                raise ConfigError(f"variant weights must be finite and >= 0, got {list(weights)}")
        total = math.fsum(weights)
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            raise ConfigError(
                f"variant weights must sum to 1, got {list(weights)} (sum {total}); "
                "fix the allocation's weights"
            )
        last = max(i for i, weight in enumerate(weights) if weight > 0)
        bounds: list[float] = []
        running = 0.0
        for i, weight in enumerate(weights):
            running += weight
            # The last variant that gets traffic ends at 1 exactly, so rounding never
            # leaves points past the end or hands them to a zero-weight variant.
            bounds.append(1.0 if i >= last else min(running, 1.0))
        return cls(tuple(bounds))

    def index(self, point: float) -> int:
        """The variant whose range holds ``point`` (a number in ``[0, 1)``)."""
        return bisect.bisect_right(self.bounds, point)


def in_coverage(salt: str, unit_id: str, coverage: float) -> bool:
    """Whether the unit is among the ``coverage`` fraction of units in the allocation."""
    return coverage >= 1.0 or unit_point(salt, unit_id, "coverage") < coverage


def assign(
    salt: str, unit_id: str, weights: Sequence[float], *, coverage: float = 1.0
) -> int | None:
    """Assign a unit to a variant; the same unit and salt always land in the same bucket.

    Args:
        salt: the allocation's salt.
        unit_id: the user or session id.
        weights: the variants' weights, in the allocation's order, summing to 1.
        coverage: the fraction of units in the allocation.

    Returns:
        The index of the unit's variant, or None when the unit is outside the coverage.

    Raises:
        ConfigError: the weights are invalid (see `Split.from_weights`).
    """
    return Assigner(salt, Split.from_weights(weights), coverage=coverage).assign(unit_id)


class Assigner:
    """An allocation compiled for the hot path: the hash prefixes are computed once.

    `assign` gives exactly what the module-level `assign` gives for the same inputs.
    """

    __slots__ = ("_coverage", "_coverage_prefix", "_split", "_variant_prefix")

    def __init__(self, salt: str, split: Split, *, coverage: float = 1.0) -> None:
        if not (math.isfinite(coverage) and 0.0 <= coverage <= 1.0):
            raise ConfigError(f"coverage must be between 0 and 1, got {coverage}")
        salt_bytes = salt.encode()
        self._variant_prefix = hashlib.blake2b(
            salt_bytes + _PURPOSE_BYTE["variant"], digest_size=_DIGEST_BYTES
        )
        self._coverage_prefix = hashlib.blake2b(
            salt_bytes + _PURPOSE_BYTE["coverage"], digest_size=_DIGEST_BYTES
        )
        self._split = split
        self._coverage = coverage

    @property
    def split(self) -> Split:
        """The compiled weights."""
        return self._split

    def point(self, unit_id: str) -> float:
        """The unit's variant point in ``[0, 1)`` (see `unit_point`)."""
        hasher = self._variant_prefix.copy()
        hasher.update(unit_id.encode())
        return (int.from_bytes(hasher.digest(), "big") >> 11) * _SCALE

    def covers(self, unit_id: str) -> bool:
        """Whether the unit is in the allocation's coverage."""
        if self._coverage >= 1.0:
            return True
        hasher = self._coverage_prefix.copy()
        hasher.update(unit_id.encode())
        return (int.from_bytes(hasher.digest(), "big") >> 11) * _SCALE < self._coverage

    def assign(self, unit_id: str) -> int | None:
        """The unit's variant index, or None when it is outside the coverage."""
        if not self.covers(unit_id):
            return None
        return self._split.index(self.point(unit_id))

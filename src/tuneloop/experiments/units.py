"""Per-unit sums of an experiment's variants (or of versions), and their summaries.

A `UnitTable` holds one row per unit: its group (variant or version), its first
exposure (the start of its first run in the window: its assignment time) and its sums
(runs, successes, latency, cost...). `summaries` turns a metric into each group's
sufficient statistics for `tuneloop.stats`; `cumulative_summaries` does the same at a
series of looks in time, from prefix sums over units ordered by first exposure, so the
whole series costs one sort.

Latency quantiles are kept apart, as bucket counts of runs per group and hour
(`tuneloop.analysis.quantiles` buckets), because a quantile is over runs, not units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tuneloop.analysis.quantiles import bucket_value
from tuneloop.errors import InvalidInputError
from tuneloop.experiments.metrics import MetricDef
from tuneloop.stats import (
    MeanSummary,
    QuantileSummary,
    RatioSummary,
    Summary,
    UnitGroups,
)

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
HOUR_MS = 3_600_000


def _empty_ints() -> Ints:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class LatencyCounts:
    """Run latency histograms: one row per (group, hour, bucket) with its run count."""

    group: Ints = field(default_factory=_empty_ints)
    hour_ms: Ints = field(default_factory=_empty_ints)
    bucket: Ints = field(default_factory=_empty_ints)
    count: Ints = field(default_factory=_empty_ints)

    def summary(self, group: int, *, before_ms: int | None = None) -> QuantileSummary:
        """The group's runs (in hours starting before ``before_ms``) as a value histogram."""
        keep = self.group == group
        if before_ms is not None:
            keep &= self.hour_ms < before_ms
        values = [bucket_value(int(b)) for b in self.bucket[keep]]
        return QuantileSummary(
            np.asarray(values, dtype=np.float64), self.count[keep].astype(np.int64)
        )


@dataclass(frozen=True, slots=True, eq=False)
class UnitTable:
    """One row per unit: its group, first exposure and sums.

    Attributes:
        groups: the group names (variants, control first; or versions), in order.
        group: each unit's index into ``groups``.
        units: each unit's id.
        first_ms: each unit's first exposure (epoch ms).
        columns: per-unit sums by column name (see `tuneloop.experiments.metrics`).
        latency: run latency histograms per group and hour.
        excluded_units: units seen in more than one group, left out of every row
            (their runs cannot be attributed to one variant).
        runs_without_unit: runs that carried no unit id (not assignable, not counted).
    """

    groups: tuple[str, ...]
    group: Ints
    units: tuple[str, ...]
    first_ms: Ints
    columns: Mapping[str, Floats]
    latency: LatencyCounts = field(default_factory=LatencyCounts)
    excluded_units: int = 0
    runs_without_unit: int = 0

    def __post_init__(self) -> None:
        size = len(self.units)
        if self.group.shape != (size,) or self.first_ms.shape != (size,):
            raise InvalidInputError(
                f"a unit table needs one group and first exposure per unit ({size} units), "
                f"got {self.group.shape} and {self.first_ms.shape}"
            )
        for name, values in self.columns.items():
            if values.shape != (size,):
                raise InvalidInputError(f"column {name!r} has {values.shape}, not ({size},)")

    @property
    def size(self) -> int:
        """Number of units."""
        return len(self.units)

    def counts(self) -> tuple[int, ...]:
        """Units per group."""
        return tuple(int(c) for c in np.bincount(self.group, minlength=len(self.groups)))

    def column(self, name: str) -> Floats:
        """A per-unit column; zeros for a column nothing was read for (no feedback)."""
        found = self.columns.get(name)
        return found if found is not None else np.zeros(self.size, dtype=np.float64)


def empty_table(groups: Sequence[str], columns: Sequence[str] = ()) -> UnitTable:
    """A table of the given groups without any unit."""
    return UnitTable(
        tuple(groups),
        _empty_ints(),
        (),
        _empty_ints(),
        {name: np.zeros(0, dtype=np.float64) for name in columns},
    )


def summaries(table: UnitTable, metric: MetricDef) -> tuple[Summary, ...]:
    """Each group's sufficient statistics of ``metric``, in the order of ``table.groups``."""
    n_groups = len(table.groups)
    if metric.kind == "quantile":
        return tuple(table.latency.summary(g) for g in range(n_groups))
    grouped = UnitGroups(table.group, n_groups=n_groups)
    assert metric.numerator is not None
    numerator = table.column(metric.numerator)
    if metric.kind == "ratio":
        assert metric.denominator is not None
        return grouped.ratios(numerator, table.column(metric.denominator))
    return grouped.means(numerator)


@dataclass(frozen=True, slots=True)
class Look:
    """The groups' data as it was at one moment: units first exposed before it."""

    at_ms: int
    units: tuple[int, ...]
    summaries: tuple[Summary, ...]


def _prefix(values: Floats, order: npt.NDArray[np.intp]) -> Floats:
    """Prefix sums of ``values`` in ``order``, with a leading 0 (so index k sums k units)."""
    return np.concatenate([[0.0], np.cumsum(values[order])])


def cumulative_summaries(
    table: UnitTable, metric: MetricDef, looks_ms: Sequence[int]
) -> list[Look]:
    """Each group's summary of ``metric`` at each look, from units first exposed before it.

    A unit counts with all its runs in the window once it was first exposed before the
    look (latency quantiles: runs in hours that started before it). One sort and prefix
    sums per group, so many looks cost little more than one.
    """
    n_groups = len(table.groups)
    cut = np.asarray(looks_ms, dtype=np.int64)
    per_group: list[tuple[Ints, list[Floats]]] = []
    for g in range(n_groups):
        members = np.flatnonzero(table.group == g)
        order = members[np.argsort(table.first_ms[members], kind="stable")]
        first = table.first_ms[order]
        index = np.searchsorted(first, cut, side="left").astype(np.int64)
        sums: list[Floats] = []
        if metric.kind != "quantile":
            assert metric.numerator is not None
            x = table.column(metric.numerator)
            sums = [_prefix(x, order), _prefix(x * x, order)]
            if metric.kind == "ratio":
                assert metric.denominator is not None
                y = table.column(metric.denominator)
                sums += [_prefix(y, order), _prefix(y * y, order), _prefix(x * y, order)]
        per_group.append((index, sums))
    out = []
    for j, at_ms in enumerate(looks_ms):
        units = tuple(int(per_group[g][0][j]) for g in range(n_groups))
        found: list[Summary] = []
        for g in range(n_groups):
            k = units[g]
            sums = per_group[g][1]
            if metric.kind == "quantile":
                found.append(table.latency.summary(g, before_ms=at_ms))
            elif metric.kind == "ratio":
                sx, sxx, sy, syy, sxy = (float(s[k]) for s in sums)
                found.append(RatioSummary(k, sx, max(sxx, 0.0), sy, max(syy, 0.0), sxy))
            else:
                found.append(MeanSummary(k, float(sums[0][k]), max(float(sums[1][k]), 0.0)))
        out.append(Look(int(at_ms), units, tuple(found)))
    return out

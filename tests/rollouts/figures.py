"""Synthetic per-version figures for policy tests and simulations (no database)."""

from __future__ import annotations

import numpy as np

from tuneloop.rollouts import VersionFigures
from tuneloop.stats import QuantileSummary, RatioSummary, Summary


def ratio(numerators: np.ndarray, runs: np.ndarray) -> RatioSummary:
    """The per-unit ratio summary of numerators over runs."""
    return RatioSummary.from_values(numerators, runs)


def figures(
    rng: np.random.Generator,
    units: int,
    *,
    error_rate: float = 0.02,
    success_rate: float = 0.9,
    cost: float = 0.01,
    latency_ms: float | None = None,
    version: str = "v",
) -> VersionFigures:
    """``units`` users with 1-3 runs each, drawn with the given rates."""
    runs = rng.integers(1, 4, size=units).astype(float)
    errors = rng.binomial(runs.astype(int), error_rate).astype(float)
    successes = rng.binomial((runs - errors).astype(int), success_rate).astype(float)
    spend = runs * cost * rng.gamma(4.0, 0.25, size=units)
    summaries: dict[str, Summary] = {
        "error_rate": ratio(errors, runs),
        "task_success_rate": ratio(successes, runs),
        "cost_per_run": ratio(spend, runs),
    }
    if latency_ms is not None:
        values = np.round(rng.lognormal(np.log(latency_ms), 0.4, size=int(runs.sum())), -1)
        summaries["latency_p95_ms"] = QuantileSummary.from_values(values)
    return VersionFigures(version, 0, 1, units, int(runs.sum()), summaries)  # type: ignore[arg-type]


def merge(a: VersionFigures, b: VersionFigures) -> VersionFigures:
    """Two disjoint sets of units as one."""
    keys = set(a.summaries) | set(b.summaries)
    summaries = {
        key: a.summaries[key] + b.summaries[key]  # type: ignore[operator]
        if key in a.summaries and key in b.summaries
        else (a.summaries.get(key) or b.summaries[key])
        for key in keys
    }
    return VersionFigures(
        a.version, a.since_ms, b.until_ms, a.units + b.units, a.runs + b.runs, summaries
    )


def _cells(error_rate: float, success_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Every (runs, errors, successes) a unit can have, with its probability.

    A unit has 1-3 runs (equally likely); each run errs with ``error_rate``; each run
    that does not err succeeds with ``success_rate``.
    """
    from math import comb

    def pmf(k: int, n: int, p: float) -> float:
        return comb(n, k) * p**k * (1 - p) ** (n - k)

    cells, probabilities = [], []
    for runs in (1, 2, 3):
        for errors in range(runs + 1):
            p_errors = pmf(errors, runs, error_rate)
            for successes in range(runs - errors + 1):
                p = pmf(successes, runs - errors, success_rate)
                cells.append((runs, errors, successes))
                probabilities.append(p_errors * p / 3)
    return np.array(cells, dtype=float), np.array(probabilities)


def sampled_figures(
    rng: np.random.Generator,
    units: int,
    *,
    error_rate: float = 0.02,
    success_rate: float = 0.9,
    version: str = "v",
) -> VersionFigures:
    """What `figures` draws, as sufficient statistics in O(1): units per cell, multinomially.

    Per-unit sums (and their squares and cross-products) are then exact sums over cells,
    so a simulation of thousands of units per tick costs a dozen numbers.
    """
    cells, probabilities = _cells(error_rate, success_rate)
    counts = rng.multinomial(units, probabilities / probabilities.sum()).astype(float)
    runs, errors, successes = cells[:, 0], cells[:, 1], cells[:, 2]

    def summary(x: np.ndarray) -> RatioSummary:
        return RatioSummary(
            units,
            counts @ x,
            counts @ (x * x),
            counts @ runs,
            counts @ (runs * runs),
            counts @ (x * runs),
        )

    summaries: dict[str, Summary] = {
        "error_rate": summary(errors),
        "task_success_rate": summary(successes),
    }
    return VersionFigures(version, 0, 1, units, int(counts @ runs), summaries)  # type: ignore[arg-type]

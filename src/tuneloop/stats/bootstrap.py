"""Bootstrap intervals for a difference of quantiles (p95 latency), seeded and vectorized.

Resampling n values and sorting them B times costs O(B n log n). It is not needed: a
bootstrap sample is ``F_n^-1(U_1..U_n)`` for uniforms U, and ``F_n^-1`` is monotone, so
the sample's k-th smallest value is ``F_n^-1(U_(k))`` where the k-th smallest of n
uniforms has the Beta(k, n - k + 1) distribution. Drawing B Beta variates and looking
them up in the cumulative histogram gives exactly the bootstrap distribution of the
sample quantile, in O(B log K) for K distinct values, whatever n is.

The quantile convention is the one of `tuneloop.analysis.quantiles`: the value at 0-based
rank ``floor(q (n - 1))``. Values are resampled independently (per run for latency);
runs of the same unit are correlated, so with many runs per unit the interval is
somewhat narrower than a unit-level bootstrap would give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tuneloop.stats._numeric import Floats
from tuneloop.stats.summaries import QuantileSummary


def quantile_draws(
    summary: QuantileSummary, q: float, *, draws: int, rng: np.random.Generator
) -> tuple[float, Floats]:
    """The sample quantile and ``draws`` bootstrap replicates of it (``summary.n >= 1``)."""
    n = summary.n
    rank = math.floor(q * (n - 1)) + 1  # 1-based
    cumulative = np.cumsum(summary.counts)
    point = float(summary.values[np.searchsorted(cumulative, rank, side="left")])
    u = rng.beta(rank, n - rank + 1, size=draws)
    # F_n^-1(u) is the value of 1-based rank ceil(u n).
    positions = np.clip(np.ceil(u * n), 1, n)
    return point, summary.values[np.searchsorted(cumulative, positions, side="left")]


def _percentile(draws: Floats, level: float) -> float:
    return float(np.quantile(draws, level))


@dataclass(frozen=True, slots=True)
class QuantileComparison:
    """Bootstrap distribution of ``treatment - control`` (and ``treatment / control - 1``)."""

    control: float
    treatment: float
    differences: Floats
    ratios: Floats | None  # None when the control's quantile is 0

    @property
    def difference(self) -> float:
        """Point estimate of the absolute difference."""
        return self.treatment - self.control

    @property
    def relative(self) -> float | None:
        """Point estimate of the relative difference; None when the control's quantile is 0."""
        if self.ratios is None:
            return None
        return (self.treatment - self.control) / abs(self.control)

    def draws(self, *, relative: bool) -> Floats | None:
        """The bootstrap replicates of the absolute or relative difference."""
        return self.ratios if relative else self.differences

    def interval(self, alpha: float, *, relative: bool = False) -> tuple[float, float] | None:
        """Percentile interval at level ``1 - alpha``."""
        draws = self.draws(relative=relative)
        if draws is None:
            return None
        return _percentile(draws, alpha / 2), _percentile(draws, 1 - alpha / 2)

    def se(self, *, relative: bool = False) -> float | None:
        """Bootstrap standard error."""
        draws = self.draws(relative=relative)
        return None if draws is None else float(np.std(draws, ddof=1))

    def p_value(self) -> float:
        """Two-sided bootstrap p-value of "no difference" (ties at 0 count half)."""
        below = float(np.mean(self.differences < 0))
        ties = float(np.mean(self.differences == 0))
        return min(1.0, 2.0 * min(below + ties / 2, 1.0 - below - ties / 2))


def compare_quantiles(
    control: QuantileSummary,
    treatment: QuantileSummary,
    q: float,
    *,
    draws: int = 10_000,
    seed: int | Sequence[int] = 0,
) -> QuantileComparison:
    """Bootstrap the difference of the ``q`` quantiles (both summaries need values).

    The same summaries, ``q``, ``draws`` and ``seed`` give the same result.
    """
    rng = np.random.default_rng(seed if isinstance(seed, int) else list(seed))
    control_point, control_draws = quantile_draws(control, q, draws=draws, rng=rng)
    treatment_point, treatment_draws = quantile_draws(treatment, q, draws=draws, rng=rng)
    ratios: npt.NDArray[np.float64] | None = None
    if control_point != 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = (treatment_draws - control_draws) / np.abs(control_draws)
        if not np.isfinite(ratios).all():
            # Some replicates of the control quantile are 0: the ratio has no distribution.
            ratios = None
    return QuantileComparison(
        control_point, treatment_point, treatment_draws - control_draws, ratios
    )

"""Fixed-horizon inference on a difference between two variants, vectorized.

Binary metrics use the two-proportion z-test with unpooled variance (the Wald test:
its p-value and its interval always agree on significance); continuous metrics use
Welch's t-test, not Student's, because variants rarely share a variance; ratio metrics
use a z-test on the delta-method variance. Relative lift ``(b - a) / |a|`` gets a
delta-method interval: ``Var ~ Var(b) / a^2 + b^2 Var(a) / a^4``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tuneloop.stats._numeric import Floats, critical, floats, lower_tail, two_sided_p
from tuneloop.stats.specs import Correction


def welch_df(
    var_a: npt.ArrayLike, n_a: npt.ArrayLike, var_b: npt.ArrayLike, n_b: npt.ArrayLike
) -> Floats:
    """Welch-Satterthwaite degrees of freedom (needs at least 2 units per variant)."""
    va, vb = floats(var_a) / floats(n_a), floats(var_b) / floats(n_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return floats(
            (va + vb) ** 2 / (va * va / (floats(n_a) - 1.0) + vb * vb / (floats(n_b) - 1.0))
        )


@dataclass(frozen=True, slots=True)
class Inference:
    """An estimate, its standard error and its reference distribution (normal if df is inf)."""

    estimate: Floats
    se: Floats
    df: Floats

    def p_value(self, null: npt.ArrayLike = 0.0) -> Floats:
        """Two-sided p-value against ``estimate == null``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return two_sided_p((self.estimate - floats(null)) / self.se, self.df)

    def interval(self, alpha: npt.ArrayLike) -> tuple[Floats, Floats]:
        """Two-sided ``1 - alpha`` confidence interval."""
        half = critical(1.0 - floats(alpha) / 2.0, self.df) * self.se
        return self.estimate - half, self.estimate + half

    def one_sided_bounds(self, alpha: npt.ArrayLike) -> tuple[Floats, Floats]:
        """Lower and upper one-sided ``1 - alpha`` bounds (each holds at level alpha alone)."""
        half = critical(1.0 - floats(alpha), self.df) * self.se
        return self.estimate - half, self.estimate + half

    def p_below(self, null: npt.ArrayLike) -> Floats:
        """One-sided p-value of ``estimate >= null`` against ``estimate < null``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return lower_tail((self.estimate - floats(null)) / self.se, self.df)


def difference(
    mean_a: npt.ArrayLike,
    var_a: npt.ArrayLike,
    n_a: npt.ArrayLike,
    mean_b: npt.ArrayLike,
    var_b: npt.ArrayLike,
    n_b: npt.ArrayLike,
    *,
    welch: bool,
) -> Inference:
    """Absolute difference ``b - a`` of two means from their per-unit variances.

    With ``welch`` the reference distribution is Student's t with Welch-Satterthwaite
    degrees of freedom, otherwise normal.
    """
    se = np.sqrt(floats(var_a) / floats(n_a) + floats(var_b) / floats(n_b))
    estimate = floats(mean_b) - floats(mean_a)
    df = welch_df(var_a, n_a, var_b, n_b) if welch else np.full_like(estimate, np.inf)
    return Inference(estimate, floats(se), floats(df))


def relative_difference(
    mean_a: npt.ArrayLike,
    var_a: npt.ArrayLike,
    n_a: npt.ArrayLike,
    mean_b: npt.ArrayLike,
    var_b: npt.ArrayLike,
    n_b: npt.ArrayLike,
    *,
    welch: bool,
) -> Inference:
    """Relative lift ``(b - a) / |a|`` with its delta-method standard error."""
    a, b = floats(mean_a), floats(mean_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = (b - a) / np.abs(a)
        se = np.sqrt(
            floats(var_b) / floats(n_b) / (a * a)
            + b * b * floats(var_a) / floats(n_a) / (a * a * a * a)
        )
    df = welch_df(var_a, n_a, var_b, n_b) if welch else np.full_like(estimate, np.inf)
    return Inference(floats(estimate), floats(se), floats(df))


def adjust_p_values(p_values: Sequence[float | None], method: Correction) -> list[float | None]:
    """Family-wise error control across comparisons with control (Holm or Bonferroni).

    Missing p-values (comparisons without enough data) still count as comparisons, as
    if their p-value were 1: the correction never gets weaker because data is missing.
    """
    m = len(p_values)
    known = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    out: list[float | None] = [None] * m
    running = 0.0
    for rank, (p, i) in enumerate(known):
        factor = m if method == "bonferroni" else m - rank
        adjusted = min(1.0, factor * p)
        if method == "holm":  # step-down: adjusted p-values never decrease with rank
            running = max(running, adjusted)
            adjusted = running
        out[i] = adjusted
    return out

"""Sufficient statistics per variant: a few sums per metric that merge by addition.

A variant's data for one metric is summarised by sums over its units (n, sum, sum of
squares; for ratio metrics the numerator, the denominator and their cross-product; for
CUPED the covariate and its cross-product with the metric). Sums from any number of
shards, days or queries add up to the sums of the whole, so storage aggregates where
the data lives and the statistics stay pure. Quantile metrics keep a histogram
(value, count), which merges by addition too.

``moments`` kernels turn the sums into (mean, per-unit variance) and accept arrays, so
simulations run thousands of experiments in one call.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tuneloop.errors import InvalidInputError
from tuneloop.stats._numeric import Floats, dot, floats


def _count(value: object, name: str) -> int:
    try:
        out = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidInputError(f"{name} must be a whole number, got {value!r}") from None
    if out < 0:
        raise InvalidInputError(f"{name} must not be negative, got {out}")
    return int(out)


def _real(value: object, name: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise InvalidInputError(f"{name} must be finite, got {out}; drop NaN/inf values first")
    return out


def _square_sum(value: object, name: str) -> float:
    out = _real(value, name)
    if out < 0:
        raise InvalidInputError(f"{name} is a sum of squares and cannot be negative, got {out}")
    return out


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A variant's point estimate and per-unit variance (the estimate's is ``variance / n``)."""

    n: int
    mean: float
    variance: float


def proportion_moments(n: npt.ArrayLike, successes: npt.ArrayLike) -> tuple[Floats, Floats]:
    """Mean and per-unit variance ``p (1 - p)`` of binary outcomes; NaN where ``n`` is 0."""
    n_, k = floats(n), floats(successes)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n_
    return p, p * (1.0 - p)


def mean_moments(
    n: npt.ArrayLike, total: npt.ArrayLike, sum_squares: npt.ArrayLike
) -> tuple[Floats, Floats]:
    """Mean and sample variance (n - 1 in the denominator); NaN where undefined."""
    n_, s, ss = floats(n), floats(total), floats(sum_squares)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n_
        variance = np.maximum((ss - s * mean) / (n_ - 1.0), 0.0)
    return mean, variance


def ratio_moments(
    n: npt.ArrayLike,
    numerator_sum: npt.ArrayLike,
    numerator_sum_squares: npt.ArrayLike,
    denominator_sum: npt.ArrayLike,
    denominator_sum_squares: npt.ArrayLike,
    cross_sum: npt.ArrayLike,
) -> tuple[Floats, Floats]:
    """Ratio of sums and its per-unit delta-method variance.

    For per-unit numerators x and denominators y, R = sum(x) / sum(y) and
    ``n * Var(R) ~ (var(x) - 2 R cov(x, y) + R^2 var(y)) / mean(y)^2``.
    """
    n_ = floats(n)
    sx, sy = floats(numerator_sum), floats(denominator_sum)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = sx / sy
        mean_y = sy / n_
        var_x = (floats(numerator_sum_squares) - sx * sx / n_) / (n_ - 1.0)
        var_y = (floats(denominator_sum_squares) - sy * sy / n_) / (n_ - 1.0)
        cov_xy = (floats(cross_sum) - sx * sy / n_) / (n_ - 1.0)
        variance = (var_x - 2.0 * ratio * cov_xy + ratio * ratio * var_y) / (mean_y * mean_y)
    return ratio, np.maximum(variance, 0.0)


@dataclass(frozen=True, slots=True)
class ProportionSummary:
    """Binary outcomes per unit (task success, error, escalation): units and how many had it."""

    n: int
    successes: int

    def __post_init__(self) -> None:
        _set(self, "n", _count(self.n, "n"))
        _set(self, "successes", _count(self.successes, "successes"))
        if self.successes > self.n:
            raise InvalidInputError(
                f"successes ({self.successes}) cannot exceed the number of units ({self.n})"
            )

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> ProportionSummary:
        """Summarise per-unit 0/1 (or bool) values."""
        array = np.asarray(values).reshape(-1)
        if array.dtype != np.bool_ and not ((array == 0) | (array == 1)).all():
            raise InvalidInputError("a binary metric takes values 0 or 1 (or bool)")
        return cls(int(array.size), int(np.count_nonzero(array)))

    def __add__(self, other: ProportionSummary) -> ProportionSummary:
        """Merge two summaries (disjoint sets of units)."""
        if not isinstance(other, ProportionSummary):
            return NotImplemented
        return ProportionSummary(self.n + other.n, self.successes + other.successes)

    @property
    def total(self) -> float:
        """Sum of the per-unit values."""
        return float(self.successes)

    @property
    def sum_squares(self) -> float:
        """Sum of squared per-unit values (equal to the sum for 0/1 values)."""
        return float(self.successes)

    def estimate(self) -> Estimate:
        """The proportion and its per-unit variance ``p (1 - p)``."""
        mean, variance = proportion_moments(self.n, self.successes)
        return Estimate(self.n, float(mean), float(variance))


@dataclass(frozen=True, slots=True)
class MeanSummary:
    """A continuous per-unit metric (latency mean, cost, tokens, feedback score)."""

    n: int
    total: float
    sum_squares: float

    def __post_init__(self) -> None:
        _set(self, "n", _count(self.n, "n"))
        _set(self, "total", _real(self.total, "total"))
        _set(self, "sum_squares", _square_sum(self.sum_squares, "sum_squares"))
        if self.n == 0 and (self.total or self.sum_squares):
            raise InvalidInputError("a summary of 0 units must have total and sum_squares of 0")

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> MeanSummary:
        """Summarise per-unit values."""
        array = floats(values).reshape(-1)
        return cls(int(array.size), float(array.sum()), dot(array, array))

    def __add__(self, other: MeanSummary) -> MeanSummary:
        """Merge two summaries (disjoint sets of units)."""
        if not isinstance(other, MeanSummary):
            return NotImplemented
        return MeanSummary(
            self.n + other.n, self.total + other.total, self.sum_squares + other.sum_squares
        )

    def estimate(self) -> Estimate:
        """The mean and the sample variance of the per-unit values."""
        mean, variance = mean_moments(self.n, self.total, self.sum_squares)
        return Estimate(self.n, float(mean), float(variance))


@dataclass(frozen=True, slots=True)
class RatioSummary:
    """A ratio of per-unit sums, e.g. tool errors / tool calls with users as units."""

    n: int
    numerator_sum: float
    numerator_sum_squares: float
    denominator_sum: float
    denominator_sum_squares: float
    cross_sum: float

    def __post_init__(self) -> None:
        _set(self, "n", _count(self.n, "n"))
        for name in ("numerator_sum", "denominator_sum", "cross_sum"):
            _set(self, name, _real(getattr(self, name), name))
        for name in ("numerator_sum_squares", "denominator_sum_squares"):
            _set(self, name, _square_sum(getattr(self, name), name))

    @classmethod
    def from_values(cls, numerators: npt.ArrayLike, denominators: npt.ArrayLike) -> RatioSummary:
        """Summarise per-unit numerators and denominators."""
        x, y = floats(numerators).reshape(-1), floats(denominators).reshape(-1)
        if x.shape != y.shape:
            raise InvalidInputError(
                f"{x.size} numerators but {y.size} denominators; give both for every unit"
            )
        return cls(int(x.size), float(x.sum()), dot(x, x), float(y.sum()), dot(y, y), dot(x, y))

    def __add__(self, other: RatioSummary) -> RatioSummary:
        """Merge two summaries (disjoint sets of units)."""
        if not isinstance(other, RatioSummary):
            return NotImplemented
        return RatioSummary(
            self.n + other.n,
            self.numerator_sum + other.numerator_sum,
            self.numerator_sum_squares + other.numerator_sum_squares,
            self.denominator_sum + other.denominator_sum,
            self.denominator_sum_squares + other.denominator_sum_squares,
            self.cross_sum + other.cross_sum,
        )

    def estimate(self) -> Estimate:
        """The ratio of sums and its per-unit delta-method variance."""
        ratio, variance = ratio_moments(
            self.n,
            self.numerator_sum,
            self.numerator_sum_squares,
            self.denominator_sum,
            self.denominator_sum_squares,
            self.cross_sum,
        )
        return Estimate(self.n, float(ratio), float(variance))


@dataclass(frozen=True, slots=True)
class AdjustedSummary:
    """A binary or continuous metric with a pre-exposure covariate per unit, for CUPED.

    ``covariate`` sums the covariate (e.g. the unit's value of the metric in the weeks
    before the experiment, 0 for new units) over the same units as ``metric``;
    ``cross_sum`` is the sum of metric x covariate.
    """

    metric: ProportionSummary | MeanSummary
    covariate: MeanSummary
    cross_sum: float

    def __post_init__(self) -> None:
        _set(self, "cross_sum", _real(self.cross_sum, "cross_sum"))
        if not isinstance(self.metric, ProportionSummary | MeanSummary):
            raise InvalidInputError(
                "CUPED adjusts binary or continuous metrics: metric must be a "
                f"ProportionSummary or MeanSummary, got {type(self.metric).__name__}"
            )
        if self.covariate.n != self.metric.n:
            raise InvalidInputError(
                f"the covariate covers {self.covariate.n} units but the metric {self.metric.n}; "
                "give every unit a covariate value (0 when it has no history)"
            )

    @property
    def n(self) -> int:
        """Number of units."""
        return self.metric.n

    @classmethod
    def from_values(
        cls, values: npt.ArrayLike, covariates: npt.ArrayLike, *, binary: bool = False
    ) -> AdjustedSummary:
        """Summarise per-unit metric values and their pre-exposure covariates."""
        y, x = floats(values).reshape(-1), floats(covariates).reshape(-1)
        if x.shape != y.shape:
            raise InvalidInputError(
                f"{y.size} values but {x.size} covariates; give a covariate for every unit"
            )
        metric = ProportionSummary.from_values(values) if binary else MeanSummary.from_values(y)
        return cls(metric, MeanSummary.from_values(x), dot(x, y))

    def __add__(self, other: AdjustedSummary) -> AdjustedSummary:
        """Merge two summaries (disjoint sets of units)."""
        if not isinstance(other, AdjustedSummary) or type(self.metric) is not type(other.metric):
            return NotImplemented
        return AdjustedSummary(
            self.metric + other.metric,  # type: ignore[operator]
            self.covariate + other.covariate,
            self.cross_sum + other.cross_sum,
        )

    def estimate(self) -> Estimate:
        """The unadjusted estimate of the metric (CUPED needs every variant: see `cuped`)."""
        return self.metric.estimate()


@dataclass(frozen=True, slots=True, eq=False)
class QuantileSummary:
    """A histogram of per-run values (e.g. latency) for quantile metrics.

    ``values`` are sorted and distinct, ``counts`` are positive; build it with
    `from_values` (raw values) or `from_counts` (histogram buckets, e.g. the latency
    buckets of `tuneloop.analysis.quantiles` mapped to their representative values).
    """

    values: Floats
    counts: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=np.float64).reshape(-1)
        counts = np.array(self.counts).reshape(-1)
        if values.shape != counts.shape:
            raise InvalidInputError(
                f"values has {values.size} entries but counts has {counts.size}; "
                "give one count per value"
            )
        if counts.size and (counts.dtype.kind not in "iu" or counts.min() < 0):
            raise InvalidInputError("counts must be non-negative whole numbers")
        if not np.isfinite(values).all():
            raise InvalidInputError("quantile values must be finite; drop NaN/inf values first")
        if (values.size > 1 and not (np.diff(values) > 0).all()) or (counts == 0).any():
            values, inverse = np.unique(values, return_inverse=True)
            counts = np.bincount(inverse, weights=counts, minlength=values.size)
            keep = counts > 0
            values, counts = values[keep], counts[keep]
        counts = counts.astype(np.int64)
        values.flags.writeable = False
        counts.flags.writeable = False
        _set(self, "values", values)
        _set(self, "counts", counts)

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> QuantileSummary:
        """Summarise raw per-run values."""
        distinct, counts = np.unique(floats(values).reshape(-1), return_counts=True)
        return cls(distinct, counts)

    @classmethod
    def from_counts(cls, counts: dict[float, int]) -> QuantileSummary:
        """Summarise a histogram given as ``{value: count}``."""
        return cls(floats(list(counts.keys())), np.array(list(counts.values()), dtype=np.int64))

    @property
    def n(self) -> int:
        """Number of values summarised."""
        return int(self.counts.sum())

    def __add__(self, other: QuantileSummary) -> QuantileSummary:
        """Merge two histograms."""
        if not isinstance(other, QuantileSummary):
            return NotImplemented
        return QuantileSummary(
            np.concatenate([self.values, other.values]),
            np.concatenate([self.counts, other.counts]),
        )

    def __eq__(self, other: object) -> bool:
        """Same values with the same counts."""
        if not isinstance(other, QuantileSummary):
            return NotImplemented
        return np.array_equal(self.values, other.values) and np.array_equal(
            self.counts, other.counts
        )

    __hash__ = None  # type: ignore[assignment]

    def quantile(self, q: float) -> float | None:
        """The value at 0-based rank ``floor(q (n - 1))``; None when empty."""
        n = self.n
        if n == 0:
            return None
        rank = math.floor(q * (n - 1)) + 1
        return float(self.values[np.searchsorted(np.cumsum(self.counts), rank, side="left")])


Summary = ProportionSummary | MeanSummary | RatioSummary | AdjustedSummary | QuantileSummary

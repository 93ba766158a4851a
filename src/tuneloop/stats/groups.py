"""Per-variant sufficient statistics from per-unit arrays, in a few passes over memory.

`UnitGroups` takes each unit's variant index once; every metric is then summed per
variant by multiplying with a 0/1 mask and reducing (no sort, no group-by). The
last variant's sums are the totals minus the others', which saves one pass per array.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tuneloop.errors import InvalidInputError
from tuneloop.stats._numeric import Floats, dot, floats
from tuneloop.stats.summaries import (
    AdjustedSummary,
    MeanSummary,
    ProportionSummary,
    RatioSummary,
)


class UnitGroups:
    """The variant of every unit, prepared for summing many metrics per variant.

    Args:
        groups: one variant index per unit, in ``0 .. n_groups - 1``.
        n_groups: number of variants (including ones that got no units).

    Raises:
        InvalidInputError: ``groups`` is not a 1-D integer array or has an index out of range.
    """

    def __init__(self, groups: npt.ArrayLike, *, n_groups: int) -> None:
        index = np.asarray(groups)
        if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
            raise InvalidInputError(
                "groups must be a 1-D array of integer variant indices, "
                f"got shape {index.shape} and dtype {index.dtype}"
            )
        if n_groups < 1:
            raise InvalidInputError(f"n_groups must be at least 1, got {n_groups}")
        self.size = int(index.size)
        self.n_groups = n_groups
        self._masks = [index == k for k in range(n_groups)]
        self.counts = tuple(int(np.count_nonzero(mask)) for mask in self._masks)
        if sum(self.counts) != self.size:
            raise InvalidInputError(
                f"{self.size - sum(self.counts)} units have a variant index outside "
                f"0..{n_groups - 1}; pass n_groups equal to the number of variants"
            )
        # Float masks for dot products; the last group is computed by difference.
        self._weights = [mask.astype(np.float64) for mask in self._masks[:-1]]

    def _values(self, values: npt.ArrayLike, name: str) -> Floats:
        array = floats(values)
        if array.shape != (self.size,):
            raise InvalidInputError(
                f"{name} has shape {array.shape} but there are {self.size} units; "
                "give one value per unit, in the order of groups"
            )
        return array

    def _sums(self, arrays: list[Floats], products: list[tuple[int, int]]) -> list[list[float]]:
        """Per group: the sum of each array, then the sum of each product of two arrays."""
        totals = [float(array.sum()) for array in arrays]
        totals += [dot(arrays[i], arrays[j]) for i, j in products]
        if not np.isfinite(totals).all():
            raise InvalidInputError("metric values contain NaN or infinity; drop or fill them")
        out: list[list[float]] = []
        for weight in self._weights:
            masked = [array * weight for array in arrays]
            sums = [float(part.sum()) for part in masked]
            sums += [dot(masked[i], masked[j]) for i, j in products]
            out.append(sums)
        out.append([total - sum(group[k] for group in out) for k, total in enumerate(totals)])
        # A variant without units sums to exactly 0, not to the rounding error of a difference.
        return [
            sums if count else [0.0] * len(sums)
            for count, sums in zip(self.counts, out, strict=True)
        ]

    def proportions(self, values: npt.ArrayLike) -> tuple[ProportionSummary, ...]:
        """Binary per-unit values (bool, or numbers that are all 0 or 1) summed per variant."""
        array = np.asarray(values)
        if array.shape != (self.size,):
            raise InvalidInputError(
                f"values has shape {array.shape} but there are {self.size} units"
            )
        if array.dtype != np.bool_:
            if not ((array == 0) | (array == 1)).all():
                raise InvalidInputError(
                    "a binary metric takes values 0 or 1 (or bool); use a continuous metric "
                    "for other values"
                )
            array = array != 0
        return tuple(
            ProportionSummary(count, int(np.count_nonzero(array & mask)))
            for count, mask in zip(self.counts, self._masks, strict=True)
        )

    def means(self, values: npt.ArrayLike) -> tuple[MeanSummary, ...]:
        """Continuous per-unit values summed (and squared) per variant."""
        sums = self._sums([self._values(values, "values")], [(0, 0)])
        return tuple(
            MeanSummary(count, total, max(squares, 0.0))
            for count, (total, squares) in zip(self.counts, sums, strict=True)
        )

    def ratios(
        self, numerators: npt.ArrayLike, denominators: npt.ArrayLike
    ) -> tuple[RatioSummary, ...]:
        """Per-unit numerators and denominators (e.g. tool errors, tool calls) per variant."""
        arrays = [
            self._values(numerators, "numerators"),
            self._values(denominators, "denominators"),
        ]
        sums = self._sums(arrays, [(0, 0), (1, 1), (0, 1)])
        return tuple(
            RatioSummary(count, sx, max(sxx, 0.0), sy, max(syy, 0.0), sxy)
            for count, (sx, sy, sxx, syy, sxy) in zip(self.counts, sums, strict=True)
        )

    def adjusted(
        self, values: npt.ArrayLike, covariates: npt.ArrayLike, *, binary: bool = False
    ) -> tuple[AdjustedSummary, ...]:
        """A metric with a pre-exposure covariate per unit, for CUPED."""
        metric: tuple[ProportionSummary | MeanSummary, ...] = (
            self.proportions(values) if binary else self.means(values)
        )
        arrays = [self._values(values, "values"), self._values(covariates, "covariates")]
        sums = self._sums(arrays, [(1, 1), (0, 1)])
        return tuple(
            AdjustedSummary(summary, MeanSummary(summary.n, sx, max(sxx, 0.0)), sxy)
            for summary, (_, sx, sxx, sxy) in zip(metric, sums, strict=True)
        )

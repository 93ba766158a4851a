"""Sample ratio mismatch: did each variant get the share of units it was configured for?

A mismatch (a 50/50 split delivering 52/48 over 20,000 units) means units were lost or
misassigned differently per variant (a crash in one version, a redirect, a bot filter),
and then no metric comparison can be trusted. Pearson's chi-square goodness-of-fit
test against the configured weights; p below the threshold (0.001 by default, strict
because the check runs on every look) flags the experiment.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.stats._numeric import Floats, Status, floats, to_jsonable

DEFAULT_SRM_THRESHOLD = 0.001
WEIGHT_TOLERANCE = 1e-6


def check_weights(weights: Sequence[float]) -> None:
    """Weights are non-negative, finite and sum to 1.

    Raises:
        ConfigError: naming the offending weights.
    """
    if len(weights) < 1:
        raise ConfigError("at least one variant weight is needed")
    for weight in weights:
        if not (isinstance(weight, numbers.Real) and math.isfinite(weight) and weight >= 0):
            raise ConfigError(f"variant weights must be finite and non-negative, got {weight!r}")
    total = math.fsum(weights)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ConfigError(
            f"variant weights must sum to 1, got {list(weights)} (sum {total:.6g}); "
            "e.g. [0.5, 0.5] for an even split"
        )


def srm_p_values(counts: npt.ArrayLike, weights: Sequence[float]) -> Floats:
    """Chi-square p-values for one or many sets of counts (last axis = variants).

    A variant with weight 0 is left out of the test, but any unit in it makes p = 0:
    it should not receive traffic at all. NaN where there are no units.
    """
    # Imported here: scipy.special weighs ~18 MB in the server, which may never need it.
    from scipy import special

    observed = floats(counts)
    w = floats(weights)
    live = w > 0
    total = observed[..., live].sum(axis=-1)
    expected = total[..., None] * w[live]
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = ((observed[..., live] - expected) ** 2 / expected).sum(axis=-1)
        p = floats(special.chdtrc(max(int(live.sum()) - 1, 1), statistic))
    if int(live.sum()) <= 1:
        p = np.where(total > 0, 1.0, np.nan)
    stray = observed[..., ~live].sum(axis=-1) > 0
    return floats(np.where(stray, 0.0, p))


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Verdict of the sample-ratio check."""

    status: Status
    p_value: float | None
    flagged: bool
    threshold: float
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    weights: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        out: dict[str, Any] = to_jsonable(self)
        return out


def check_srm(
    counts: Sequence[int], weights: Sequence[float], *, threshold: float = DEFAULT_SRM_THRESHOLD
) -> SrmResult:
    """Test observed units per variant against the configured weights.

    Raises:
        ConfigError: weights that are negative or do not sum to 1, or a bad threshold.
        InvalidInputError: negative counts, or counts and weights of different lengths.
    """
    check_weights(weights)
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"the SRM threshold must be between 0 and 1, got {threshold!r}")
    if len(counts) != len(weights):
        raise InvalidInputError(
            f"{len(counts)} unit counts for {len(weights)} weights; give one count per variant"
        )
    for count in counts:
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
            raise InvalidInputError(f"unit counts must be non-negative integers, got {count!r}")
    total = sum(int(count) for count in counts)
    expected = tuple(total * float(weight) for weight in weights)
    p = float(srm_p_values(list(counts), weights))
    status: Status = "not_enough_data" if total == 0 else "ok"
    p_value = None if total == 0 else p
    return SrmResult(
        status=status,
        p_value=p_value,
        flagged=p_value is not None and p_value < threshold,
        threshold=threshold,
        observed=tuple(int(count) for count in counts),
        expected=expected,
        weights=tuple(float(weight) for weight in weights),
    )

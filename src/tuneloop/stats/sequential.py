"""Always-valid p-values and confidence sequences, so results may be read at any time.

A fixed-horizon test is valid once, at the planned sample size: reading it every day
and stopping at the first p < 0.05 inflates false positives several-fold. Here the
evidence is a normal-mixture martingale (a mixture sequential probability ratio test),
in the asymptotic form of Waudby-Smith et al., "Time-uniform central limit theory and
asymptotic confidence sequences" (2023), which GrowthBook and Eppo also use. For an
estimate with standard error ``se`` after ``n`` units in total,

    half-width = se * sqrt(2 (n rho^2 + 1) / (n rho^2) * log(sqrt(n rho^2 + 1) / alpha))

holds uniformly over time with probability 1 - alpha, and the always-valid p-value is
the smallest alpha whose sequence excludes zero. ``rho`` is the mixture's scale; it is
tuned so the sequence is tightest at ``tuning`` units (the sample size you expect to
decide at): ``rho^2 = (-2 log alpha + log(1 - 2 log alpha)) / tuning``. Any tuning gives
valid inference; a good one gives narrower intervals where they matter.

Every function takes arrays, so one call evaluates a whole simulation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tuneloop.stats._numeric import Floats, floats


def mixture_rho_squared(alpha: npt.ArrayLike, tuning: npt.ArrayLike) -> Floats:
    """The mixture variance that makes the sequence tightest at ``tuning`` units."""
    log_alpha = np.log(floats(alpha))
    return floats((-2.0 * log_alpha + np.log1p(-2.0 * log_alpha)) / floats(tuning))


def width_multiplier(n_total: npt.ArrayLike, alpha: npt.ArrayLike, tuning: npt.ArrayLike) -> Floats:
    """Half-width of the confidence sequence in standard errors, after ``n_total`` units.

    The fixed-horizon equivalent is ``z_{1 - alpha/2}`` (1.96 at alpha 0.05); this is
    larger (about 3 at the tuning point), the price of looking whenever you like.
    """
    a = floats(n_total) * mixture_rho_squared(alpha, tuning)
    with np.errstate(divide="ignore"):
        return floats(np.sqrt(2.0 * (a + 1.0) / a * (0.5 * np.log1p(a) - np.log(floats(alpha)))))


def always_valid_p_value(
    estimate: npt.ArrayLike,
    se: npt.ArrayLike,
    n_total: npt.ArrayLike,
    *,
    alpha: npt.ArrayLike,
    tuning: npt.ArrayLike,
    null: npt.ArrayLike = 0.0,
) -> Floats:
    """P-value that stays valid however often it is looked at: ``min(1, 1 / e-value)``.

    Args:
        estimate: the estimated difference.
        se: its standard error (positive).
        n_total: units behind the estimate, all compared variants together.
        alpha: the level ``rho`` is tuned for (the p-value is valid for any value).
        tuning: units at which the matching confidence sequence is tightest.
        null: the value tested against (a guardrail's margin, 0 for "no difference").

    The per-look p-value is already valid at any stopping time; its running minimum over
    looks (what a dashboard may show) is valid too.
    """
    a = floats(n_total) * mixture_rho_squared(alpha, tuning)
    with np.errstate(divide="ignore", invalid="ignore"):
        z2 = ((floats(estimate) - floats(null)) / floats(se)) ** 2
    log_evidence = a * z2 / (2.0 * (a + 1.0)) - 0.5 * np.log1p(a)
    return floats(np.exp(-np.maximum(log_evidence, 0.0)))

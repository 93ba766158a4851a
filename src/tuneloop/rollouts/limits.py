"""Hard limits: is the candidate confidently past an absolute level?

A hard limit ("error rate above 5 %") is checked on the candidate's own runs, with no
minimum sample and no comparison with the stable version. Checking the raw value would
roll back on the first run that errs (1 of 1 is 100 %); instead the limit is breached
when a one-sided bound at ``confidence`` is past it, so a gross breach trips at once
(6 errors in 10 runs: the 99 % lower bound is 22 %) while ordinary noise does not:

- rates (errors / runs, tool errors / calls): the exact (Clopper-Pearson) bound on the
  run-level proportion;
- means (cost per run, mean latency): the delta-method bound on the ratio of sums;
- p95 latency: the distribution-free order statistic whose rank is the binomial
  quantile, a bound on the true quantile whatever the latency distribution.
"""

from __future__ import annotations

import math

import numpy as np

from tuneloop.rollouts.metrics import METRICS, GuardMetric
from tuneloop.stats import QuantileSummary, RatioSummary, Summary


def confident_bound(
    metric: GuardMetric, summary: Summary | None, *, confidence: float, lower: bool
) -> float | None:
    """The one-sided bound (lower or upper) on the metric's true value; None without data."""
    if summary is None:
        return None
    info = METRICS[metric]
    if isinstance(summary, QuantileSummary):
        return _quantile_bound(summary, info.quantile or 0.5, confidence, lower=lower)
    if not isinstance(summary, RatioSummary) or summary.denominator_sum <= 0:
        return None
    if info.unit == "rate":
        return _exact(summary.numerator_sum, summary.denominator_sum, confidence, lower=lower)
    estimate = summary.estimate()
    if estimate.n < 2 or not math.isfinite(estimate.variance):
        return None
    # scipy.special, not scipy.stats (~50 MB more), and imported here rather than at the
    # top: the server imports this module, and scipy.special alone weighs ~18 MB.
    from scipy import special

    z = float(special.ndtri(confidence))
    half = z * math.sqrt(estimate.variance / estimate.n)
    return estimate.mean - half if lower else estimate.mean + half


def _exact(successes: float, n: float, confidence: float, *, lower: bool) -> float:
    """The Clopper-Pearson bound: exact at any n (1 error in 1 run: at least 1 %)."""
    from scipy import special  # deferred: see confident_bound

    k = min(max(successes, 0.0), n)
    if lower:
        return 0.0 if k <= 0 else float(special.betaincinv(k, n - k + 1, 1 - confidence))
    return 1.0 if k >= n else float(special.betaincinv(k + 1, n - k, confidence))


def _quantile_bound(
    summary: QuantileSummary, q: float, confidence: float, *, lower: bool
) -> float | None:
    n = summary.n
    if n == 0:
        return None
    from scipy import stats as sps  # only when a p95 limit is checked (see the import note)

    # The k-th smallest value is below the q-quantile with probability P(Bin(n, q) >= k).
    alpha = 1 - confidence
    rank = int(sps.binom.ppf(alpha, n, q)) if lower else int(sps.binom.ppf(confidence, n, q)) + 1
    if rank < 1 or rank > n:
        return None  # too few values to bound the quantile at this confidence
    index = int(np.searchsorted(np.cumsum(summary.counts), rank, side="left"))
    return float(summary.values[index])

"""Latency quantiles from logarithmic buckets, with a bounded relative error.

Each duration is stored with the index of its bucket, ``ceil(log_gamma(ms))``, as
DDSketch does. A database then answers any quantile with a ``GROUP BY bucket`` count
instead of sorting raw values, and counts from shards merge by addition. Every
estimate lies within ``RELATIVE_ACCURACY`` of the true sample quantile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
MIN_MS = 1e-3
# Durations at or below MIN_MS share one bucket, just below every real one.
ZERO_BUCKET = math.ceil(math.log(MIN_MS) / _LOG_GAMMA) - 1


def bucket_of(duration_ms: float) -> int:
    """The bucket index of a duration in milliseconds."""
    if duration_ms <= MIN_MS:
        return ZERO_BUCKET
    return math.ceil(math.log(duration_ms) / _LOG_GAMMA)


def bucket_value(bucket: int) -> float:
    """The representative value of a bucket: within RELATIVE_ACCURACY of all its members."""
    if bucket <= ZERO_BUCKET:
        return 0.0
    return 2 * GAMMA**bucket / (GAMMA + 1)


def quantiles(
    counts: Mapping[int, int] | Iterable[tuple[int, int]], qs: Iterable[float]
) -> list[float | None]:
    """Estimate quantiles (0..1) from bucket counts; None when there is no data.

    Uses the lower-rank convention (the value at rank ``floor(q * (n - 1))``, 0-based).
    """
    items = sorted(counts.items() if isinstance(counts, Mapping) else counts)
    total = sum(count for _, count in items)
    wanted = list(qs)
    if total == 0:
        return [None for _ in wanted]
    out: list[float | None] = []
    for q in wanted:
        rank = math.floor(min(max(q, 0.0), 1.0) * (total - 1))
        seen = 0
        for bucket, count in items:
            seen += count
            if seen > rank:
                out.append(bucket_value(bucket))
                break
    return out

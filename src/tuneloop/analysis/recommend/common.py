"""Shared pieces of the analyzers: thresholds, small statistics, and patch building."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from tuneloop.telemetry.pricing import Price, PriceTable

_NORMAL = NormalDist()
_TIMEOUT_WORDS = re.compile(r"timeout|timed.?out|deadline", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Options:
    """Thresholds shared by the analyzers; the defaults suit a day of moderate traffic.

    Counts (``min_*``) are of observed (sampled) rows: evidence is what was seen.

    Attributes:
        min_runs: below this many runs in the window, nothing is proposed.
        min_calls: a tool needs this many calls to be judged.
        min_events: failures, timeouts, corrections... needed before proposing.
        min_rate: a failure or misclassification rate below this is left alone.
        min_confidence: findings less confident than this are dropped (noted).
        timeout_margin: a raised timeout is the fitted p99 times this.
        prices: USD per 1,000 tokens by model, for cost estimates.
    """

    min_runs: int = 100
    min_calls: int = 50
    min_events: int = 8
    min_rate: float = 0.02
    min_confidence: float = 0.6
    timeout_margin: float = 1.2
    prices: Mapping[str, Price] = field(default_factory=dict)

    def price_table(self) -> PriceTable:
        """The prices as a lookup table (prefix-matching model names)."""
        return PriceTable(self.prices)


# --- statistics --------------------------------------------------------------------


def phi(z: float) -> float:
    """The standard normal CDF."""
    return _NORMAL.cdf(z)


def z_of(p: float) -> float:
    """The standard normal quantile of ``p`` (0 < p < 1)."""
    return _NORMAL.inv_cdf(min(max(p, 1e-12), 1 - 1e-12))


def confidence_above(rate: float, n: int, threshold: float) -> float:
    """How sure the data are that a proportion exceeds ``threshold``: Φ(z) of the excess.

    The standard error uses the observed rate (floored so a tiny sample is not
    over-trusted), so confidence grows with the sample size behind the figure.
    """
    if n <= 0:
        return 0.0
    p = min(max(rate, 1.0 / (n + 1)), 1 - 1.0 / (n + 1))
    se = math.sqrt(p * (1 - p) / n)
    return clamp(phi((rate - threshold) / se), 0.0, 0.99)


def confidence_diff(p1: float, n1: int, p2: float, n2: int) -> float:
    """How sure the data are that proportion 1 exceeds proportion 2 (two-sample z)."""
    if n1 <= 0 or n2 <= 0:
        return 0.0
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    pooled = min(max(pooled, 1.0 / (n1 + n2)), 1 - 1.0 / (n1 + n2))
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return clamp(phi((p1 - p2) / se), 0.0, 0.99)


def wilson(successes: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def clamp(value: float, low: float, high: float) -> float:
    """``value`` bounded to ``[low, high]``."""
    return min(max(value, low), high)


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (linear interpolation); ``values`` need not be sorted."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    position = clamp(q, 0.0, 1.0) * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def round_up(value: float, step: int) -> int:
    """``value`` rounded up to a multiple of ``step``."""
    return int(math.ceil(value / step) * step)


def pct(value: float) -> str:
    """A ratio as a percentage with one decimal: ``8.1 %``."""
    return f"{value * 100:.1f} %"


def is_timeout(error_type: str | None) -> bool:
    """Whether an error type names a timeout."""
    return bool(error_type) and _TIMEOUT_WORDS.search(error_type or "") is not None


def examples(trace_ids: Iterable[str], limit: int = 10) -> list[str]:
    """Up to ``limit`` distinct example trace ids, in order."""
    return list(dict.fromkeys(trace_ids))[:limit]


# --- patches -----------------------------------------------------------------------


def escape(part: str) -> str:
    """One JSON-pointer reference token (RFC 6901 escaping)."""
    return part.replace("~", "~0").replace("/", "~1")


def pointer(*parts: str | int) -> str:
    """A JSON pointer from reference tokens."""
    return "".join("/" + escape(str(part)) for part in parts)


def lookup(doc: Any, parts: Sequence[str | int]) -> tuple[bool, Any]:
    """``(found, value)`` of the path ``parts`` in ``doc``."""
    node = doc
    for part in parts:
        in_mapping = isinstance(node, Mapping) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_mapping or in_list):
            return False, None
        node = node[part]
    return True, node


def set_value(doc: Any, parts: Sequence[str], value: Any) -> dict[str, Any]:
    """The one operation that sets ``parts`` to ``value`` in ``doc``.

    ``replace`` when the path exists; otherwise ``add`` at the deepest missing level
    with the rest nested in its value (``add /tools/search`` with ``{"timeout_ms": …}``
    when the config has no entry for the tool), or ``replace`` of a null parent.
    """
    for depth in range(len(parts), 0, -1):
        found, node = lookup(doc, parts[:depth])
        if not found:
            continue
        if depth == len(parts):
            return {"op": "replace", "path": pointer(*parts), "value": value}
        nested: Any = value
        for part in reversed(parts[depth + 1 :]):
            nested = {part: nested}
        if node is None:
            # A null setting (``fallback: null``) is replaced by an object holding the value.
            return {
                "op": "replace",
                "path": pointer(*parts[:depth]),
                "value": {parts[depth]: nested},
            }
        return {"op": "add", "path": pointer(*parts[: depth + 1]), "value": nested}
    nested = value
    for part in reversed(parts[1:]):
        nested = {part: nested}
    return {"op": "add", "path": pointer(parts[0]), "value": nested}


def cost_of(prices: PriceTable, model: str | None, input_tokens: int, output_tokens: int) -> float:
    """USD of one call from the price table; 0 for an unknown model."""
    return prices.cost(model, input_tokens, output_tokens)

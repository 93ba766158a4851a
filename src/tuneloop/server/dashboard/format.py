"""How the dashboard writes numbers, money, durations and times.

Every page formats figures through these functions (registered as Jinja filters), so a
rate reads ``95.2 %`` and a cost ``$0.0123`` everywhere. A missing value (no runs, no
calls) is an em dash, never a zero that was not measured.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

MISSING = "—"


def _absent(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_int(value: float | None) -> str:
    """A count with thousands separators: ``1,234``."""
    if _absent(value):
        return MISSING
    assert value is not None
    return f"{round(value):,}"


def fmt_number(value: float | None, digits: int = 1) -> str:
    """A decimal with thousands separators and ``digits`` decimals: ``1,234.5``."""
    if _absent(value):
        return MISSING
    return f"{value:,.{digits}f}"


def fmt_pct(ratio: float | None, digits: int = 1) -> str:
    """A ratio as a percentage: 0.9523 → ``95.2 %``."""
    if _absent(ratio):
        return MISSING
    assert ratio is not None
    return f"{ratio * 100:.{digits}f} %"


def fmt_usd(value: float | None) -> str:
    """Money in USD: three significant digits under a dollar (``$0.0123``), cents above."""
    if _absent(value):
        return MISSING
    assert value is not None
    if value == 0:
        return "$0"
    sign = "-" if value < 0 else ""
    amount = abs(value)
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(amount)))
    text = f"{amount:.{decimals}f}"
    # Three significant digits, without zeros that say nothing: $0.002, not $0.00200.
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{sign}${whole}.{fraction}"


def fmt_duration(ms: float | None) -> str:
    """A duration given in milliseconds: ``420 µs``, ``850 ms``, ``1.2 s``, ``3.5 min``."""
    if _absent(ms):
        return MISSING
    assert ms is not None
    if ms == 0:
        return "0 ms"
    if ms < 0.9995:
        return f"{ms * 1000:.0f} µs"
    if ms < 999.5:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_time(ms: int | None, *, seconds: bool = True) -> str:
    """Epoch milliseconds as UTC: ``2026-01-31 12:00:05Z``."""
    if ms is None:
        return MISSING
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%MZ")


def fmt_bucket(ms: int | None) -> str:
    """A bucket's start for a chart axis: ``01-31 12:00``, or ``01-31`` at midnight."""
    if ms is None:
        return MISSING
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%m-%d" if ms % 86_400_000 == 0 else "%m-%d %H:%M")


def fmt_time_ns(ns: int | None) -> str:
    """Epoch nanoseconds as UTC with milliseconds: ``2026-01-31 12:00:05.123Z``."""
    if ns is None:
        return MISSING
    moment = datetime.fromtimestamp(ns // 1_000_000 / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ns // 1_000_000 % 1000:03d}Z"


def short_hash(value: str | None, length: int = 12) -> str:
    """The first ``length`` characters of a hash or id."""
    return MISSING if not value else value[:length]


def pretty_value(value: Any) -> str:
    """An attribute value for display: JSON held in a string is indented, the rest as is."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and len(stripped) < 200_000:
            try:
                return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)
            except ValueError:
                return value
        return value
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, ensure_ascii=False)
    return str(value)


def audit_detail(detail: Any) -> str:
    """An audit row's detail (canonical JSON text) in one line: its message or reason first."""
    if isinstance(detail, str):
        text = detail
        try:
            detail = json.loads(text)
        except ValueError:
            return text
    if not isinstance(detail, dict):
        return "" if detail is None else str(detail)
    for key in ("message", "reason"):
        if detail.get(key):
            return str(detail[key])
    parts = [
        f"{key}={value}"
        for key, value in sorted(detail.items())
        if key not in ("label", "parents") and value not in (None, "", [], {})
    ]
    return ", ".join(parts)


FILTERS = {
    "int": fmt_int,
    "number": fmt_number,
    "pct": fmt_pct,
    "usd": fmt_usd,
    "duration": fmt_duration,
    "time": fmt_time,
    "time_ns": fmt_time_ns,
    "bucket": fmt_bucket,
    "short": short_hash,
    "pretty": pretty_value,
    "auditdetail": audit_detail,
}

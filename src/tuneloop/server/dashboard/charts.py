"""Charts as inline SVG: sparklines, line charts, horizontal bars and waterfall bars.

Pure functions from numbers to markup: no JavaScript, no external library, and every
piece of text is escaped. Shapes carry CSS classes only (no inline styles), so the
pages' Content-Security-Policy can forbid inline styles. ``None`` in a series is a gap
(a bucket without runs), not a zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

Value = float | None
POINT_MARKERS = 30


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: a name for the legend, values per x position, a CSS class."""

    name: str
    values: Sequence[Value]
    css: str = "s1"


def _num(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _bounds(values: Sequence[Value], *, zero: bool) -> tuple[float, float] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    low, high = min(present), max(present)
    if zero:
        low = min(low, 0.0)
    if high == low:
        high = low + (abs(low) or 1.0)
    return low, high


def _segments(points: Sequence[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for point in points:
        if point is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(point)
    if current:
        runs.append(current)
    return runs


def _path(segment: list[tuple[float, float]]) -> str:
    head, *rest = segment
    if not rest:  # a lone point: a zero-length segment that round caps draw as a dot
        return f"M{_num(head[0])} {_num(head[1])}h0"
    return f"M{_num(head[0])} {_num(head[1])}" + "".join(f"L{_num(x)} {_num(y)}" for x, y in rest)


def _xs(count: int, left: float, right: float) -> list[float]:
    if count == 1:
        return [(left + right) / 2]
    step = (right - left) / (count - 1)
    return [left + i * step for i in range(count)]


def sparkline(
    values: Sequence[Value],
    *,
    label: str,
    width: int = 120,
    height: int = 32,
    css: str = "spark",
    zero: bool = False,
) -> Markup:
    """A small line without axes; it stretches to its box, the last point is marked.

    Args:
        values: one value per time bucket, oldest first; None where nothing was measured.
        label: what the line shows, for screen readers and the hover title.
        width: the drawing's width in user units (the SVG stretches to its CSS box).
        height: the drawing's height in user units.
        css: the SVG's CSS class.
        zero: start the scale at zero rather than at the smallest value.
    """
    title = f"<title>{escape(label)}</title>"
    head = (
        f'<svg class="{escape(css)}" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(label)}">{title}'
    )
    bounds = _bounds(values, zero=zero)
    if bounds is None or not values:
        return Markup(f'{head}<path class="spark-empty" d="M0 {height / 2}H{width}"/></svg>')
    low, high = bounds
    pad = 3.0
    xs = _xs(len(values), pad, width - pad)

    def y_of(value: float) -> float:
        return height - pad - (value - low) / (high - low) * (height - 2 * pad)

    points = [None if v is None else (x, y_of(v)) for x, v in zip(xs, values, strict=True)]
    parts = [head, f'<path class="spark-base" d="M0 {_num(y_of(low))}H{width}"/>']
    for segment in _segments(points):
        if len(segment) > 1:
            area = (
                _path(segment) + f"L{_num(segment[-1][0])} {height}L{_num(segment[0][0])} {height}Z"
            )
            parts.append(f'<path class="spark-area" d="{area}"/>')
        parts.append(f'<path class="spark-line" d="{_path(segment)}"/>')
    last = next((p for p in reversed(points) if p is not None), None)
    if last is not None:
        parts.append(f'<path class="spark-dot" d="M{_num(last[0])} {_num(last[1])}h0"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round ticks (steps of 1, 2, 2.5 or 5 times 10^k) covering the range in at most count + 1."""
    if high <= low:
        return [low]
    magnitude = 10 ** math.floor(math.log10((high - low) / (count + 1)))
    for step in (m * magnitude for m in (1, 2, 2.5, 5, 10, 20, 25, 50, 100)):
        first = math.floor(low / step + 1e-9) * step
        last = math.ceil(high / step - 1e-9) * step
        if round((last - first) / step) <= count + 1:
            break
    intervals = max(1, round((last - first) / step))
    return [round(first + i * step, 12) for i in range(intervals + 1)]


def line_chart(
    series: Sequence[Series],
    *,
    x_labels: Sequence[str],
    label: str,
    y_format: Callable[[float], str],
    width: int = 600,
    height: int = 210,
    zero: bool = True,
) -> Markup:
    """A line chart with a y axis of round ticks, x labels at both ends and the middle.

    Args:
        series: the lines; each has one value per entry of ``x_labels``.
        x_labels: the label of each x position (a bucket's start time).
        label: what the chart shows, for screen readers.
        y_format: how a y tick is written (a percentage, a duration...).
        width: the drawing's width in user units; it scales with its box.
        height: the drawing's height in user units.
        zero: start the y axis at zero.
    """
    left, right, top, bottom = 64.0, width - 12.0, 12.0, height - 26.0
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
    )
    everything = [v for s in series for v in s.values]
    bounds = _bounds(everything, zero=zero)
    parts = [head]
    if bounds is None or not x_labels:
        parts.append(
            f'<text class="chart-empty" x="{width / 2}" y="{height / 2}" '
            'text-anchor="middle">no data in this window</text></svg>'
        )
        return Markup("".join(parts))
    ticks = nice_ticks(*bounds)
    low, high = ticks[0], ticks[-1]

    def y_of(value: float) -> float:
        return bottom - (value - low) / (high - low) * (bottom - top)

    for tick in ticks:
        y = _num(y_of(tick))
        parts.append(f'<line class="grid" x1="{left}" x2="{right}" y1="{y}" y2="{y}"/>')
        parts.append(
            f'<text class="tick" x="{left - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(y_format(tick))}</text>'
        )
    xs = _xs(len(x_labels), left, right)
    shown = sorted({0, len(x_labels) // 2, len(x_labels) - 1})
    for i in shown:
        anchor = "start" if i == 0 and len(x_labels) > 1 else "end" if i == shown[-1] else "middle"
        parts.append(
            f'<text class="tick" x="{_num(xs[i])}" y="{height - 8}" text-anchor="{anchor}">'
            f"{escape(x_labels[i])}</text>"
        )
    for line in series:
        points = [None if v is None else (x, y_of(v)) for x, v in zip(xs, line.values, strict=True)]
        parts.append(f'<g class="{escape(line.css)}"><title>{escape(line.name)}</title>')
        parts.extend(f'<path class="line" d="{_path(seg)}"/>' for seg in _segments(points))
        present = [p for p in points if p is not None]
        if len(present) <= POINT_MARKERS:  # few points: mark each, so a lone one shows
            parts.extend(
                f'<circle class="pt" cx="{_num(x)}" cy="{_num(y)}" r="3.5"/>' for x, y in present
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    label: str,
    value_format: Callable[[float], str],
    width: int = 480,
    bar_height: int = 18,
) -> Markup:
    """Horizontal bars, one per ``(name, value)``, longest first as given; values >= 0."""
    gap = 6
    height = max(1, len(items)) * (bar_height + gap)
    name_w, value_w = 150.0, 70.0
    span = width - name_w - value_w
    top = max((value for _, value in items), default=0.0) or 1.0
    parts = [
        f'<svg class="bars" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
    ]
    for i, (name, value) in enumerate(items):
        y = i * (bar_height + gap)
        length = max(0.0, value) / top * span
        parts.append(
            f'<text class="tick" x="{name_w - 8}" y="{y + bar_height / 2}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(name)}</text>'
            f'<rect class="bar" x="{name_w}" y="{y}" width="{_num(length)}" '
            f'height="{bar_height}" rx="2"/>'
            f'<text class="tick" x="{_num(name_w + length + 6)}" y="{y + bar_height / 2}" '
            f'dominant-baseline="middle">{escape(value_format(value))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def span_bar(start: float, length: float, *, css: str, label: str) -> Markup:
    """A waterfall row's bar: ``start`` and ``length`` as fractions of the trace's duration."""
    x = min(max(start, 0.0), 1.0) * 1000
    w = max(min(length, 1.0 - min(max(start, 0.0), 1.0)), 0.0) * 1000
    w = max(w, 2.0)  # a zero-length span still shows as a tick
    x = min(x, 1000 - w)
    return Markup(
        f'<svg class="wf-bar" viewBox="0 0 1000 12" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}"><rect class="{escape(css)}" x="{_num(x)}" y="1" '
        f'width="{_num(w)}" height="10" rx="1"/></svg>'
    )

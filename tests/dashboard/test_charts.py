"""SVG charts: shapes from numbers, gaps for missing buckets, escaped text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from tuneloop.server.dashboard.charts import (
    Series,
    bar_chart,
    line_chart,
    nice_ticks,
    span_bar,
    sparkline,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup).replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))


def points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]([-\d.]+) ([-\d.]+)", d)]


def test_a_sparkline_rises_where_the_values_rise_and_marks_the_last_point() -> None:
    svg = parse(sparkline([1.0, 2.0, 3.0], label="runs", width=100, height=20))
    line = svg.find(f"{SVG}path[@class='spark-line']")
    assert line is not None
    (x0, y0), (x1, y1), (x2, y2) = points(line.attrib["d"])
    assert x0 < x1 < x2
    assert y0 > y1 > y2  # SVG y grows downwards: larger values are higher up
    assert (y0, y2) == (17.0, 3.0)  # the smallest and largest values touch the padding
    dot = svg.find(f"{SVG}path[@class='spark-dot']")
    assert dot is not None and points(dot.attrib["d"]) == [(x2, y2)]
    assert svg.find(f"{SVG}title").text == "runs"  # type: ignore[union-attr]


def test_missing_buckets_break_the_line_instead_of_drawing_zeros() -> None:
    svg = parse(sparkline([1.0, 2.0, None, 4.0, 5.0], label="p95"))
    lines = svg.findall(f"{SVG}path[@class='spark-line']")
    assert [len(points(p.attrib["d"])) for p in lines] == [2, 2]


def test_a_lone_point_is_drawn_as_a_dot_and_no_data_as_a_dashed_line() -> None:
    lone = parse(sparkline([None, 3.0, None], label="x"))
    (line,) = lone.findall(f"{SVG}path[@class='spark-line']")
    assert line.attrib["d"].endswith("h0")
    empty = parse(sparkline([None, None], label="x"))
    assert empty.find(f"{SVG}path[@class='spark-empty']") is not None
    assert empty.find(f"{SVG}path[@class='spark-line']") is None


def test_a_flat_series_and_a_zero_based_scale() -> None:
    flat = parse(sparkline([2.0, 2.0], label="x", height=20))
    ys = {y for _, y in points(flat.find(f"{SVG}path[@class='spark-line']").attrib["d"])}  # type: ignore[union-attr]
    assert len(ys) == 1
    zero = parse(sparkline([5.0, 10.0], label="x", height=20, zero=True))
    (_, y_low), (_, y_high) = points(zero.find(f"{SVG}path[@class='spark-line']").attrib["d"])  # type: ignore[union-attr]
    assert y_high == 3.0 and y_low == 10.0  # 5 sits half way up a 0..10 scale


def test_text_in_charts_is_escaped() -> None:
    markup = sparkline([1.0], label='<script>alert("x")</script>')
    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup
    bars = bar_chart([("<b>tool</b>", 3.0)], label="calls", value_format=str)
    assert "<b>" not in bars


def test_a_line_chart_labels_its_axis_with_the_formatter() -> None:
    svg = parse(
        line_chart(
            [Series("rate", [0.5, None, 1.0], "s1")],
            x_labels=["00:00", "01:00", "02:00"],
            label="completion",
            y_format=lambda v: f"{v * 100:.0f} %",
        )
    )
    ticks = [t.text for t in svg.iter(f"{SVG}text")]
    assert ticks[:6] == ["0 %", "20 %", "40 %", "60 %", "80 %", "100 %"]
    assert ticks[6:] == ["00:00", "01:00", "02:00"]
    group = svg.find(f"{SVG}g[@class='s1']")
    assert group is not None and len(group.findall(f"{SVG}path")) == 2  # the gap splits it
    nothing = line_chart([Series("a", [None])], x_labels=["x"], label="a", y_format=str)
    assert "no data in this window" in nothing


def test_bars_are_proportional_to_their_values() -> None:
    svg = parse(bar_chart([("a", 4.0), ("b", 1.0)], label="x", value_format=str, width=480))
    widths = [float(r.attrib["width"]) for r in svg.iter(f"{SVG}rect")]
    assert widths[0] == 4 * widths[1]


def test_span_bars_stay_inside_the_trace_and_never_vanish() -> None:
    rect = parse(span_bar(0.25, 0.5, css="k-tool", label="x")).find(f"{SVG}rect")
    assert rect is not None
    assert (rect.attrib["x"], rect.attrib["width"], rect.attrib["class"]) == (
        "250",
        "500",
        "k-tool",
    )
    tiny = parse(span_bar(1.0, 0.0, css="k-llm", label="x")).find(f"{SVG}rect")
    assert tiny is not None and float(tiny.attrib["width"]) == 2.0
    assert float(tiny.attrib["x"]) + 2.0 <= 1000


def test_axis_ticks_are_round_numbers_that_cover_the_data() -> None:
    assert nice_ticks(0, 2138) == [0, 500, 1000, 1500, 2000, 2500]
    assert nice_ticks(0, 0.873) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 4) == [0, 1, 2, 3, 4]
    assert nice_ticks(-3, 7) == [-5, -2.5, 0, 2.5, 5, 7.5]
    assert nice_ticks(2, 2) == [2]
    for low, high in ((0, 0.0101), (12.5, 13.9), (0, 9.2e-7)):
        ticks = nice_ticks(low, high)
        assert ticks[0] <= low and ticks[-1] >= high and 2 <= len(ticks) <= 6

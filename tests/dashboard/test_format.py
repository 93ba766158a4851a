"""How figures read on every page."""

from __future__ import annotations

import pytest

from tuneloop.server.dashboard.format import (
    audit_detail,
    fmt_bucket,
    fmt_duration,
    fmt_int,
    fmt_number,
    fmt_pct,
    fmt_time,
    fmt_time_ns,
    fmt_usd,
    pretty_value,
    short_hash,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (7, "7"), (1234, "1,234"), (1234567.4, "1,234,567"), (None, "—")],
)
def test_counts_have_thousands_separators(value: float | None, text: str) -> None:
    assert fmt_int(value) == text


@pytest.mark.parametrize(
    ("ratio", "text"),
    [(0.9523, "95.2 %"), (1.0, "100.0 %"), (0.0, "0.0 %"), (None, "—"), (float("nan"), "—")],
)
def test_rates_are_percentages_with_one_decimal(ratio: float | None, text: str) -> None:
    assert fmt_pct(ratio) == text


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (0.0123, "$0.0123"),
        (0.123456, "$0.123"),
        (0.002, "$0.002"),
        (0.5, "$0.50"),
        (1.5, "$1.50"),
        (1234.5, "$1,234.50"),
        (0.000012345, "$0.0000123"),
        (0, "$0"),
        (-0.0123, "-$0.0123"),
        (None, "—"),
    ],
)
def test_money_keeps_three_significant_digits_under_a_dollar(usd: float | None, text: str) -> None:
    assert fmt_usd(usd) == text


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0.42, "420 µs"),
        (0.004, "4 µs"),
        (0, "0 ms"),
        (850, "850 ms"),
        (999.4, "999 ms"),
        (1234, "1.2 s"),
        (12_000, "12 s"),
        (75_000, "1.2 min"),
        (7_200_000, "2.0 h"),
        (None, "—"),
    ],
)
def test_durations_pick_a_readable_unit(ms: float | None, text: str) -> None:
    assert fmt_duration(ms) == text


def test_times_are_utc() -> None:
    assert fmt_time(1_767_225_605_000) == "2026-01-01 00:00:05Z"
    assert fmt_time(1_767_225_605_000, seconds=False) == "2026-01-01 00:00Z"
    assert fmt_time_ns(1_767_225_605_123_456_789) == "2026-01-01 00:00:05.123Z"
    assert fmt_bucket(1_767_225_600_000 + 13 * 3_600_000) == "01-01 13:00"
    assert fmt_bucket(1_767_225_600_000) == "01-01"
    assert fmt_time(None) == "—"


def test_small_helpers() -> None:
    assert fmt_number(1234.56) == "1,234.6"
    assert fmt_number(0.456, 2) == "0.46"
    assert short_hash("0123456789abcdef0123") == "0123456789ab"
    assert short_hash(None) == "—"


def test_json_in_attributes_is_indented_and_other_values_kept() -> None:
    assert pretty_value('{"order_id": "1234"}') == '{\n  "order_id": "1234"\n}'
    assert pretty_value("{not json") == "{not json"
    assert pretty_value(True) == "true"
    assert pretty_value(None) == "null"
    assert pretty_value([1, 2]) == "[\n  1,\n  2\n]"
    assert pretty_value(3.5) == "3.5"


def test_audit_details_read_as_one_line() -> None:
    assert audit_detail('{"label": "1.1.0", "message": "quality loop"}') == "quality loop"
    assert audit_detail('{"reason": "first version"}') == "first version"
    assert audit_detail('{"label": "1.0.0", "bundle": "b-1", "parents": []}') == "bundle=b-1"
    assert audit_detail("not json") == "not json"

"""Bucketed latency quantiles stay within the documented relative accuracy of numpy's."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop.analysis.metrics import PERCENTILES
from tuneloop.analysis.quantiles import (
    MIN_MS,
    RELATIVE_ACCURACY,
    ZERO_BUCKET,
    bucket_of,
    bucket_value,
    quantiles,
)

# The bound is exact at bucket edges; allow for the rounding of one multiplication.
TOLERANCE = RELATIVE_ACCURACY * (1 + 1e-9)


def counts_of(values: list[float] | np.ndarray) -> Counter[int]:
    return Counter(bucket_of(float(v)) for v in values)


def assert_within_accuracy(values: list[float] | np.ndarray, qs: tuple[float, ...]) -> None:
    estimates = quantiles(counts_of(values), qs)
    exact = np.quantile(np.asarray(values, dtype=float), qs, method="lower")
    for q, estimate, truth in zip(qs, estimates, exact, strict=True):
        assert estimate is not None
        assert abs(estimate - truth) <= TOLERANCE * truth, (q, estimate, truth)


def test_lognormal_latencies_match_numpy_lower_percentiles() -> None:
    rng = np.random.default_rng(20260101)
    durations = rng.lognormal(mean=6.0, sigma=1.2, size=5000)  # ~400 ms median, long tail
    assert_within_accuracy(durations, PERCENTILES)


def test_bimodal_latencies_match_numpy_lower_percentiles() -> None:
    rng = np.random.default_rng(7)
    fast = rng.normal(80, 5, size=900)  # cache hits
    slow = rng.normal(4000, 300, size=100)  # model calls
    assert_within_accuracy(np.concatenate([fast, slow]), (0.5, 0.9, 0.95, 0.99, 0.0, 1.0))


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=MIN_MS * (1 + 1e-9), max_value=1e9), min_size=1, max_size=200
    ),
    q=st.floats(0.0, 1.0),
)
def test_any_positive_sample_is_within_relative_accuracy(values: list[float], q: float) -> None:
    assert_within_accuracy(values, (q, *PERCENTILES))


@settings(max_examples=100, deadline=None)
@given(
    shards=st.lists(
        st.lists(st.floats(min_value=0.01, max_value=1e6), max_size=50), min_size=1, max_size=5
    )
)
def test_counts_from_shards_merge_by_addition(shards: list[list[float]]) -> None:
    merged: Counter[int] = Counter()
    for shard in shards:
        merged += counts_of(shard)
    whole = [value for shard in shards for value in shard]
    assert merged == counts_of(whole)
    assert quantiles(merged, PERCENTILES) == quantiles(counts_of(whole), PERCENTILES)


def test_no_data_has_no_quantiles() -> None:
    assert quantiles({}, PERCENTILES) == [None, None, None, None]
    assert quantiles([], (0.5,)) == [None]


def test_durations_just_above_the_minimum_are_within_relative_accuracy() -> None:
    assert_within_accuracy([MIN_MS * 1.005], (0.5,))


def test_bucket_counts_given_as_pairs_or_mapping_agree() -> None:
    counts = counts_of([1.0, 2.0, 3.0, 100.0])
    assert quantiles(list(counts.items()), PERCENTILES) == quantiles(counts, PERCENTILES)


def test_durations_at_or_below_the_minimum_report_zero() -> None:
    assert bucket_of(0.0) == bucket_of(MIN_MS) == ZERO_BUCKET
    assert quantiles(counts_of([0.0, MIN_MS / 2, MIN_MS]), (0.5,)) == [0.0]


@pytest.mark.parametrize("value", [0.0011, 0.5, 1.0, 17.3, 250.0, 999.999, 60_000.0, 3.6e6])
def test_bucket_value_represents_its_members(value: float) -> None:
    estimate = bucket_value(bucket_of(value))
    assert abs(estimate - value) <= TOLERANCE * value


def test_buckets_are_ordered_like_durations() -> None:
    values = sorted(np.random.default_rng(3).lognormal(3, 3, size=2000))
    buckets = [bucket_of(v) for v in values]
    assert buckets == sorted(buckets)

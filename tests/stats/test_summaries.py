"""Sufficient statistics: they merge by addition, and per-unit arrays build them exactly."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop.errors import InvalidInputError
from tuneloop.stats import (
    AdjustedSummary,
    AnalysisSettings,
    MeanSummary,
    MetricSpec,
    ProportionSummary,
    QuantileSummary,
    RatioSummary,
    UnitGroups,
    Variant,
    analyze,
)

# Integer-valued floats: sums are exact, so merging order cannot change a bit.
values = st.lists(st.integers(-1000, 1000).map(float), max_size=30)
counts = st.lists(st.integers(0, 50), max_size=30)


@st.composite
def proportion(draw: st.DrawFn) -> ProportionSummary:
    n = draw(st.integers(0, 10_000))
    return ProportionSummary(n, draw(st.integers(0, n)))


@st.composite
def mean(draw: st.DrawFn) -> MeanSummary:
    return MeanSummary.from_values(draw(values))


@st.composite
def ratio(draw: st.DrawFn) -> RatioSummary:
    pairs = draw(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 50)), max_size=30))
    return RatioSummary.from_values([float(x) for x, _ in pairs], [float(y) for _, y in pairs])


@st.composite
def quantile(draw: st.DrawFn) -> QuantileSummary:
    return QuantileSummary.from_values(draw(st.lists(st.integers(0, 40).map(float), max_size=30)))


@st.composite
def adjusted(draw: st.DrawFn) -> AdjustedSummary:
    pairs = draw(st.lists(st.tuples(st.integers(-50, 50), st.integers(-50, 50)), max_size=30))
    return AdjustedSummary.from_values([float(y) for y, _ in pairs], [float(x) for _, x in pairs])


@pytest.mark.parametrize("strategy", [proportion, mean, ratio, quantile, adjusted])
def test_summaries_merge_associatively_and_commutatively(strategy: Any) -> None:
    @settings(max_examples=60, deadline=None)
    @given(strategy(), strategy(), strategy())
    def check(a: Any, b: Any, c: Any) -> None:
        assert (a + b) + c == a + (b + c)
        assert a + b == b + a

    check()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-1000, 1000).map(float), min_size=1, max_size=60), st.data())
def test_merging_parts_equals_summarising_the_whole(data: list[float], draw: st.DataObject) -> None:
    cut = draw.draw(st.integers(0, len(data)))
    assert MeanSummary.from_values(data[:cut]) + MeanSummary.from_values(data[cut:]) == (
        MeanSummary.from_values(data)
    )
    assert QuantileSummary.from_values(data[:cut]) + QuantileSummary.from_values(data[cut:]) == (
        QuantileSummary.from_values(data)
    )


def test_unit_groups_sum_each_variant_like_a_direct_computation() -> None:
    rng = np.random.default_rng(5)
    n = 10_001
    groups = rng.integers(0, 3, n)
    success = rng.random(n) < 0.3
    cost = rng.gamma(2.0, 0.01, n)
    calls = rng.poisson(3, n)
    errors = rng.binomial(calls, 0.1)
    before = cost * 0.5 + rng.normal(0, 0.01, n)
    units = UnitGroups(groups.astype(np.int8), n_groups=3)
    for k in range(3):
        mask = groups == k
        assert units.counts[k] == int(mask.sum())
        assert units.proportions(success)[k] == ProportionSummary.from_values(success[mask])
        got, want = units.means(cost)[k], MeanSummary.from_values(cost[mask])
        assert got.n == want.n
        assert got.total == pytest.approx(want.total, rel=1e-12)
        assert got.sum_squares == pytest.approx(want.sum_squares, rel=1e-12)
        got_ratio = units.ratios(errors, calls)[k]
        want_ratio = RatioSummary.from_values(errors[mask], calls[mask])
        for field in ("numerator_sum", "denominator_sum", "cross_sum", "numerator_sum_squares"):
            assert getattr(got_ratio, field) == pytest.approx(getattr(want_ratio, field), rel=1e-12)
        got_adj = units.adjusted(cost, before)[k]
        want_adj = AdjustedSummary.from_values(cost[mask], before[mask])
        assert got_adj.cross_sum == pytest.approx(want_adj.cross_sum, rel=1e-12)
        assert got_adj.covariate.total == pytest.approx(want_adj.covariate.total, rel=1e-12)


def test_a_variant_without_units_sums_to_exactly_zero() -> None:
    units = UnitGroups(np.zeros(5, dtype=np.int64), n_groups=2)
    assert units.means([0.1, 0.2, 0.3, 0.4, 0.5])[1] == MeanSummary(0, 0.0, 0.0)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


METRICS = [
    MetricSpec("success", "binary", role="primary", mde=0.1),
    MetricSpec("cost", "continuous", direction="decrease"),
    MetricSpec("tool_errors", "ratio", role="guardrail", direction="decrease", margin=0.02),
    MetricSpec("latency_p90", "quantile", quantile=0.9, direction="decrease"),
]


def _analyse(groups: np.ndarray, data: dict[str, np.ndarray]) -> dict[str, Any]:
    units = UnitGroups(groups, n_groups=2)
    success = units.proportions(data["success"])
    cost = units.means(data["cost"])
    ratio_ = units.ratios(data["errors"], data["calls"])
    variants = [
        Variant(
            name,
            0.5,
            units.counts[k],
            {
                "success": success[k],
                "cost": cost[k],
                "tool_errors": ratio_[k],
                "latency_p90": QuantileSummary.from_values(data["latency"][groups == k]),
            },
        )
        for k, name in enumerate(("control", "treatment"))
    ]
    out: dict[str, Any] = analyze(
        variants, METRICS, AnalysisSettings(bootstrap_draws=500)
    ).to_dict()
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(4, 200))
def test_analysis_is_invariant_to_unit_order(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    groups = np.concatenate([[0, 0, 1, 1], rng.integers(0, 2, n - 4)])
    calls = rng.poisson(3, n)
    data = {
        "success": rng.random(n) < 0.4,
        "cost": rng.gamma(2.0, 1.0, n),
        "calls": calls,
        "errors": rng.binomial(calls, 0.2),
        "latency": rng.lognormal(5, 1, n).round(1),
    }
    order = rng.permutation(n)
    first = _analyse(groups, data)
    second = _analyse(groups[order], {key: value[order] for key, value in data.items()})
    assert _close(first, second)
    json.dumps(first, allow_nan=False)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ProportionSummary(10, 11), "cannot exceed"),
        (lambda: ProportionSummary(-1, 0), "must not be negative"),
        (lambda: ProportionSummary(2.5, 1), "whole number"),
        (lambda: MeanSummary(3, math.nan, 1.0), "finite"),
        (lambda: MeanSummary(3, 1.0, -1.0), "sum of squares"),
        (lambda: MeanSummary(0, 1.0, 1.0), "0 units"),
        (lambda: RatioSummary.from_values([1, 2], [1, 2, 3]), "3 denominators"),
        (lambda: QuantileSummary(np.array([1.0, 2.0]), np.array([1])), "one count per value"),
        (lambda: QuantileSummary(np.array([1.0]), np.array([-1])), "non-negative"),
        (lambda: QuantileSummary.from_values([1.0, math.inf]), "finite"),
        (lambda: ProportionSummary.from_values([0, 1, 2]), "0 or 1"),
        (lambda: UnitGroups([0, 1, 2], n_groups=2), "outside 0..1"),
        (lambda: UnitGroups([0.0, 1.0], n_groups=2), "integer variant indices"),
        (lambda: UnitGroups([0, 1], n_groups=2).means([1.0, 2.0, 3.0]), "one value per unit"),
        (lambda: UnitGroups([0, 1], n_groups=2).means([1.0, math.nan]), "NaN or infinity"),
        (lambda: UnitGroups([0, 1], n_groups=2).proportions([0, 3]), "0 or 1"),
        (
            lambda: AdjustedSummary(MeanSummary(2, 1.0, 1.0), MeanSummary(3, 1.0, 1.0), 0.0),
            "covariate covers 3 units",
        ),
    ],
)
def test_bad_summaries_are_refused_with_the_reason(build: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build()

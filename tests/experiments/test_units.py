"""Unit tables: summaries per group, and looks in time that agree with the subsets they cover."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.experiments import UnitTable, cumulative_summaries, metric_def, summaries
from tuneloop.experiments.metrics import UNIT_COLUMNS, feedback_columns
from tuneloop.experiments.units import LatencyCounts, empty_table
from tuneloop.stats import MeanSummary, QuantileSummary, RatioSummary

METRICS = ["task_success", "latency_mean", "tool_error_rate", "runs_per_unit", "feedback:thumbs"]


def random_table(seed: int, size: int, n_groups: int) -> UnitTable:
    rng = np.random.default_rng(seed)
    columns = {name: rng.integers(0, 5, size).astype(float) for name in UNIT_COLUMNS}
    columns["duration_ms"] = rng.gamma(2.0, 100.0, size)
    total, count = feedback_columns("thumbs")
    columns[count] = rng.integers(0, 3, size).astype(float)
    columns[total] = rng.binomial(columns[count].astype(int), 0.6).astype(float)
    return UnitTable(
        tuple(f"g{i}" for i in range(n_groups)),
        rng.integers(0, n_groups, size).astype(np.int64),
        tuple(f"u{i}" for i in range(size)),
        rng.integers(0, 1_000, size).astype(np.int64),
        columns,
    )


def subset(table: UnitTable, keep: np.ndarray) -> UnitTable:
    return UnitTable(
        table.groups,
        table.group[keep],
        tuple(u for u, k in zip(table.units, keep, strict=True) if k),
        table.first_ms[keep],
        {name: values[keep] for name, values in table.columns.items()},
    )


def close(a: object, b: object) -> bool:
    fields = [
        f
        for f in (
            "n",
            "successes",
            "total",
            "sum_squares",
            "numerator_sum",
            "numerator_sum_squares",
            "denominator_sum",
            "denominator_sum_squares",
            "cross_sum",
        )
        if hasattr(a, f)
    ]
    return type(a) is type(b) and all(
        np.isclose(getattr(a, f), getattr(b, f), rtol=1e-9, atol=1e-9) for f in fields
    )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 60),
    n_groups=st.integers(2, 4),
    looks=st.lists(st.integers(-5, 1_100), min_size=1, max_size=6),
)
def test_a_look_summarises_exactly_the_units_first_exposed_before_it(
    seed: int, size: int, n_groups: int, looks: list[int]
) -> None:
    table = random_table(seed, size, n_groups)
    for name in METRICS:
        metric = metric_def(name)
        found = cumulative_summaries(table, metric, sorted(looks))
        for look in found:
            part = subset(table, table.first_ms < look.at_ms)
            assert look.units == part.counts()
            expected = summaries(part, metric)
            assert all(close(a, b) for a, b in zip(look.summaries, expected, strict=True)), name


def test_summaries_per_group_are_the_sums_of_their_units() -> None:
    table = random_table(7, 200, 2)
    control = table.group == 0
    cols = table.columns
    success = summaries(table, metric_def("task_success"))[0]
    assert success == RatioSummary.from_values(cols["successes"][control], cols["runs"][control])
    runs = summaries(table, metric_def("runs_per_unit"))[1]
    assert close(runs, MeanSummary.from_values(cols["runs"][~control]))
    total, count = feedback_columns("thumbs")
    thumbs = summaries(table, metric_def("feedback:thumbs"))[0]
    assert thumbs == RatioSummary.from_values(cols[total][control], cols[count][control])


def test_latency_quantiles_come_from_run_histograms_by_hour() -> None:
    latency = LatencyCounts(
        group=np.array([0, 0, 1], dtype=np.int64),
        hour_ms=np.array([0, 3_600_000, 0], dtype=np.int64),
        bucket=np.array([300, 310, 305], dtype=np.int64),
        count=np.array([2, 3, 4], dtype=np.int64),
    )
    table = UnitTable(
        ("a", "b"),
        np.zeros(0, dtype=np.int64),
        (),
        np.zeros(0, dtype=np.int64),
        {},
        latency=latency,
    )
    a, b = summaries(table, metric_def("latency_p95"))
    assert isinstance(a, QuantileSummary) and (a.n, b.n) == (5, 4)
    (first,) = cumulative_summaries(table, metric_def("latency_p95"), [3_600_000])
    assert [s.n for s in first.summaries] == [2, 4]  # type: ignore[union-attr]


def test_bad_tables_and_metric_names_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="one group and first exposure per unit"):
        UnitTable(("a",), np.zeros(2, dtype=np.int64), ("u",), np.zeros(1, dtype=np.int64), {})
    with pytest.raises(ConfigError, match="invalid feedback metric 'feedback:'"):
        metric_def("feedback:")
    assert empty_table(["a", "b"]).counts() == (0, 0)

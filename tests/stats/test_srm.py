"""Sample ratio mismatch: flagged when real, (almost) never when not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import chisquare

from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.stats import check_srm
from tuneloop.stats.srm import srm_p_values


def test_a_52_48_split_of_a_50_50_experiment_over_20000_units_is_flagged() -> None:
    result = check_srm([10_400, 9_600], [0.5, 0.5])
    assert result.flagged
    assert result.p_value is not None and result.p_value < 1e-7
    assert result.expected == (10_000.0, 10_000.0)


def test_a_true_50_50_split_is_flagged_at_most_0_1_percent_of_the_time() -> None:
    simulations = 200_000
    rng = np.random.default_rng(11)
    counts = rng.multinomial(20_000, [0.5, 0.5], size=simulations)
    rate = float(np.mean(srm_p_values(counts, [0.5, 0.5]) < 0.001))
    error = math.sqrt(0.001 * 0.999 / simulations)
    assert rate <= 0.001 + 3 * error
    # The vectorized path is the one check_srm uses.
    for row in counts[:50]:
        single = check_srm([int(row[0]), int(row[1])], [0.5, 0.5])
        assert single.flagged == (srm_p_values(row, [0.5, 0.5]) < 0.001)


@pytest.mark.parametrize("seed", range(30))
def test_p_value_matches_scipy_chisquare(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    weights = rng.dirichlet(np.ones(k))
    weights = list(weights / weights.sum())
    counts = [int(c) for c in rng.multinomial(int(rng.integers(100, 50_000)), weights)]
    expected = [sum(counts) * w for w in weights]
    ours = check_srm(counts, weights)
    assert ours.p_value == pytest.approx(chisquare(counts, expected).pvalue, rel=1e-9, abs=1e-300)


def test_uneven_weights_are_tested_against_their_own_split() -> None:
    assert not check_srm([9_000, 1_000], [0.9, 0.1]).flagged
    assert check_srm([9_000, 1_000], [0.5, 0.5]).flagged


def test_units_in_a_zero_weight_variant_are_a_mismatch() -> None:
    assert check_srm([5_000, 5_000, 1], [0.5, 0.5, 0.0]).flagged
    assert not check_srm([5_000, 5_000, 0], [0.5, 0.5, 0.0]).flagged


def test_no_units_is_not_enough_data_and_json_safe() -> None:
    result = check_srm([0, 0], [0.5, 0.5])
    assert result.status == "not_enough_data"
    assert result.p_value is None and not result.flagged
    assert result.to_dict()["p_value"] is None


@pytest.mark.parametrize(
    ("counts", "weights", "error", "message"),
    [
        ([10, 10], [0.5, 0.6], ConfigError, "sum to 1"),
        ([10, 10], [1.5, -0.5], ConfigError, "non-negative"),
        ([10, -1], [0.5, 0.5], InvalidInputError, "non-negative integers"),
        ([10, 10, 10], [0.5, 0.5], InvalidInputError, "one count per variant"),
        ([10, 2.5], [0.5, 0.5], InvalidInputError, "non-negative integers"),
    ],
)
def test_bad_input_names_the_problem(
    counts: list,
    weights: list,
    error: type[Exception],
    message: str,  # type: ignore[type-arg]
) -> None:
    with pytest.raises(error, match=message):
        check_srm(counts, weights)

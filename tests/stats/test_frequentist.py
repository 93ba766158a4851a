"""Fixed-horizon tests agree with statsmodels on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

from tuneloop.stats import AnalysisSettings, MeanSummary, MetricSpec, ProportionSummary, compare
from tuneloop.stats.frequentist import adjust_p_values

BINARY = MetricSpec("task_success", "binary")
CONTINUOUS = MetricSpec("cost_usd", "continuous", direction="decrease")


@pytest.mark.parametrize("seed", range(200))
def test_two_proportion_z_test_matches_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_control, n_treatment = (int(v) for v in rng.integers(20, 5000, size=2))
    rate = rng.uniform(0.02, 0.98)
    successes_control = int(rng.binomial(n_control, rate))
    successes_treatment = int(rng.binomial(n_treatment, min(rate * rng.uniform(0.8, 1.2), 1.0)))
    if successes_control in (0, n_control) and successes_treatment in (0, n_treatment):
        pytest.skip("zero variance in both arms: covered by the not-enough-data tests")
    alpha = float(rng.choice([0.01, 0.05, 0.1]))
    ours = compare(
        BINARY,
        ProportionSummary(n_control, successes_control),
        ProportionSummary(n_treatment, successes_treatment),
        settings=AnalysisSettings(alpha=alpha),
    )
    # statsmodels compares sample 1 minus sample 2: treatment first. It also computes an
    # odds ratio it does not need here, which divides by zero at a rate of 0 or 1.
    with np.errstate(divide="ignore", invalid="ignore"):
        theirs = sm_proportion.test_proportions_2indep(
            successes_treatment,
            n_treatment,
            successes_control,
            n_control,
            method="wald",
            compare="diff",
            return_results=True,
        )
        low, high = sm_proportion.confint_proportions_2indep(
            successes_treatment,
            n_treatment,
            successes_control,
            n_control,
            method="wald",
            compare="diff",
            alpha=alpha,
        )
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-6)
    assert ours.absolute.estimate == pytest.approx(theirs.diff, abs=1e-12)
    assert ours.absolute.lower == pytest.approx(low, abs=1e-6)
    assert ours.absolute.upper == pytest.approx(high, abs=1e-6)
    assert ours.significant == (theirs.pvalue < alpha)


@pytest.mark.parametrize("seed", range(200))
def test_welch_t_test_matches_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    n_control, n_treatment = (int(v) for v in rng.integers(2, 3000, size=2))
    control = rng.normal(rng.uniform(-5, 20), rng.uniform(0.1, 5), size=n_control)
    treatment = rng.normal(control.mean() + rng.normal(0, 1), rng.uniform(0.1, 5), n_treatment)
    alpha = float(rng.choice([0.01, 0.05, 0.1]))
    ours = compare(
        CONTINUOUS,
        MeanSummary.from_values(control),
        MeanSummary.from_values(treatment),
        settings=AnalysisSettings(alpha=alpha),
    )
    _, p_value, _ = ttest_ind(treatment, control, usevar="unequal")
    low, high = CompareMeans(DescrStatsW(treatment), DescrStatsW(control)).tconfint_diff(
        alpha=alpha, usevar="unequal"
    )
    assert ours.p_value == pytest.approx(p_value, abs=1e-6)
    assert ours.absolute.estimate == pytest.approx(treatment.mean() - control.mean(), abs=1e-9)
    assert ours.absolute.lower == pytest.approx(low, abs=1e-6)
    assert ours.absolute.upper == pytest.approx(high, abs=1e-6)


@pytest.mark.parametrize("method", ["holm", "bonferroni"])
@pytest.mark.parametrize("seed", range(20))
def test_corrections_match_statsmodels(method: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p_values = list(rng.uniform(0, 0.2, size=int(rng.integers(1, 8))))
    _, expected, _, _ = multipletests(p_values, method=method)
    assert adjust_p_values(p_values, method) == pytest.approx(list(expected), abs=1e-12)  # type: ignore[arg-type]


def test_a_missing_p_value_still_counts_as_a_comparison() -> None:
    # Three comparisons, one without data: Bonferroni multiplies by 3, not 2.
    assert adjust_p_values([0.01, None, 0.02], "bonferroni") == [0.03, None, 0.06]
    assert adjust_p_values([0.01, None, 0.02], "holm") == [0.03, None, 0.04]

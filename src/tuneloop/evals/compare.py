"""Comparing two eval runs case by case, with an exact test for repeated-trial noise.

A case whose pass rate dropped counts as **regressed** only when the drop is beyond
what its trials can explain: a one-sided Fisher exact test on the 2x2 table
(baseline passes, baseline failures; current passes, current failures) gives p <= alpha
(default 0.05). With a single trial on both sides the test has no power (its smallest
p-value is 0.5), so there the plain rule applies: passed before and fails now.

What that means for k repeats at alpha = 0.05: with k = 2 nothing can be flagged
(2/2 → 0/2 gives p = 1/6; the gate says so); with k = 3, only 3/3 → 0/3 is a
regression (p = 0.05); with k = 5, 5/5 → 2/5 is not (p ≈ 0.083) but 5/5 → 1/5 is
(p ≈ 0.024).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tuneloop.evals.results import EvalRun

Change = Literal["regressed", "improved", "worse_within_noise", "better_within_noise",
                 "unchanged", "added", "removed"]  # fmt: skip
DEFAULT_ALPHA = 0.05
# The tail sums in floating point: 1/20 comes out as 0.05000000000000001.
_P_SLACK = 1e-9


def fisher_one_sided(worse: tuple[int, int], better: tuple[int, int]) -> float:
    """P-value that ``better`` (passes, trials) has a higher pass probability than ``worse``.

    One-sided Fisher exact test (``scipy.stats.fisher_exact``, ``alternative="greater"``
    on the table with ``better`` in the first row).
    """
    try:
        from scipy.stats import fisher_exact
    except ImportError as exc:  # pragma: no cover - scipy ships with the server extra
        raise ImportError(
            "comparing eval runs needs scipy: pip install 'tuneloop[server]'"
        ) from exc
    (b_pass, b_n), (w_pass, w_n) = better, worse
    table = [[b_pass, b_n - b_pass], [w_pass, w_n - w_pass]]
    return float(fisher_exact(table, alternative="greater").pvalue)


def detectable(before_trials: int, after_trials: int, *, alpha: float = DEFAULT_ALPHA) -> bool:
    """Whether a regression can be detected at all with these trial counts at level ``alpha``.

    The strongest evidence is every baseline trial passing and every current one
    failing; if even that is not significant, the exact test cannot flag the case
    (k = 2 on both sides: p = 1/6).
    """
    if before_trials == 1 and after_trials == 1:
        return True
    worst = fisher_one_sided((0, after_trials), (before_trials, before_trials))
    return worst <= alpha + _P_SLACK


@dataclass(frozen=True, slots=True)
class CaseDiff:
    """How one case changed between two runs; ``before``/``after`` are (passes, trials)."""

    case_id: str
    category: str
    change: Change
    before: tuple[int, int] | None
    after: tuple[int, int] | None
    p_value: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "case_id": self.case_id,
            "category": self.category,
            "change": self.change,
            "before": None if self.before is None else list(self.before),
            "after": None if self.after is None else list(self.after),
            "p_value": self.p_value,
        }


def classify(
    before: tuple[int, int], after: tuple[int, int], *, alpha: float = DEFAULT_ALPHA
) -> tuple[Change, float | None]:
    """The change from ``before`` to ``after`` (each ``(passes, trials)``) and its p-value."""
    (b_pass, b_n), (a_pass, a_n) = before, after
    b_rate, a_rate = b_pass / b_n, a_pass / a_n
    if b_rate == a_rate:
        return "unchanged", None
    worse = a_rate < b_rate
    if b_n == 1 and a_n == 1:
        return ("regressed" if worse else "improved"), None
    p_value = fisher_one_sided(after, before) if worse else fisher_one_sided(before, after)
    if p_value <= alpha + _P_SLACK:
        return ("regressed" if worse else "improved"), p_value
    return ("worse_within_noise" if worse else "better_within_noise"), p_value


@dataclass(frozen=True, slots=True)
class RunDiff:
    """Per-case differences between a baseline run and a current one."""

    baseline_run_id: str
    current_run_id: str
    alpha: float
    cases: tuple[CaseDiff, ...]

    def of(self, *changes: Change) -> tuple[CaseDiff, ...]:
        """The cases whose change is one of ``changes``."""
        return tuple(case for case in self.cases if case.change in changes)

    @property
    def regressions(self) -> tuple[CaseDiff, ...]:
        """Cases that regressed beyond noise."""
        return self.of("regressed")

    def counts(self) -> Mapping[str, int]:
        """Number of cases per kind of change."""
        out: dict[str, int] = {}
        for case in self.cases:
            out[case.change] = out.get(case.change, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "baseline_run_id": self.baseline_run_id,
            "current_run_id": self.current_run_id,
            "alpha": self.alpha,
            "counts": dict(self.counts()),
            "cases": [case.to_dict() for case in self.cases],
        }


def diff_runs(baseline: EvalRun, current: EvalRun, *, alpha: float = DEFAULT_ALPHA) -> RunDiff:
    """Compare every case of two runs (cases in only one run are ``added``/``removed``)."""
    before = {case.case_id: case for case in baseline.cases if case.trials}
    after = {case.case_id: case for case in current.cases if case.trials}
    diffs: list[CaseDiff] = []
    for case_id in _ordered(list(before), list(after)):
        old, new = before.get(case_id), after.get(case_id)
        old_counts = None if old is None else (old.passes, len(old.trials))
        new_counts = None if new is None else (new.passes, len(new.trials))
        category = (new or old).category  # type: ignore[union-attr]
        if old_counts is None:
            diffs.append(CaseDiff(case_id, category, "added", None, new_counts, None))
        elif new_counts is None:
            diffs.append(CaseDiff(case_id, category, "removed", old_counts, None, None))
        else:
            change, p_value = classify(old_counts, new_counts, alpha=alpha)
            diffs.append(CaseDiff(case_id, category, change, old_counts, new_counts, p_value))
    return RunDiff(baseline.run_id, current.run_id, alpha, tuple(diffs))


def _ordered(first: Sequence[str], second: Sequence[str]) -> list[str]:
    seen = dict.fromkeys(first)
    seen.update(dict.fromkeys(second))
    return list(seen)


def comparability_warnings(baseline: EvalRun, current: EvalRun) -> tuple[str, ...]:
    """Why a per-case diff of these two runs may mislead; empty when they are comparable.

    Runs of different suites are still compared (cases match by id: a renamed suite
    keeps its cases), but the diff says so; so does a different stage (different case
    subsets show as added or removed) or a different number of trials per case.
    """
    warnings = []
    if baseline.suite != current.suite:
        warnings.append(
            f"the runs are of different suites ({baseline.suite!r} and {current.suite!r}); "
            "cases are matched by id only"
        )
    if baseline.stage != current.stage:
        warnings.append(
            f"the runs are of different stages ({baseline.stage!r} and {current.stage!r}); "
            "cases one stage did not run show as added or removed"
        )
    if baseline.agent and current.agent and baseline.agent != current.agent:
        warnings.append(
            f"the runs are of different agents ({baseline.agent!r} and {current.agent!r})"
        )
    if baseline.repeat != current.repeat:
        warnings.append(
            f"the runs have different trials per case ({baseline.repeat} and {current.repeat}); "
            "the exact test accounts for it, but pass^k figures are not comparable"
        )
    return tuple(warnings)

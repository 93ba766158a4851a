"""Per-category and overall figures of an eval run: pass^1, pass^k, latency, cost, judges."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from tuneloop.evals.results import Aggregate, CaseResult, EvaluatorStats

OVERALL = "overall"


def aggregate_cases(
    cases: Sequence[CaseResult],
) -> tuple[Aggregate, Mapping[str, Aggregate]]:
    """The overall aggregate and one per category (categories sorted by name)."""
    by_category: dict[str, list[CaseResult]] = defaultdict(list)
    for case in cases:
        by_category[case.category].append(case)
    categories = {name: aggregate(name, by_category[name]) for name in sorted(by_category)}
    return aggregate(OVERALL, cases), MappingProxyType(categories)


def aggregate(scope: str, cases: Sequence[CaseResult]) -> Aggregate:
    """Figures over ``cases``; see `Aggregate` for the definitions."""
    trials = [trial for case in cases for trial in case.trials]
    k = min((len(case.trials) for case in cases if case.trials), default=0)
    pass_hat = {
        j: _mean(pass_hat_j(case.passes, len(case.trials), j) for case in cases)
        for j in range(1, k + 1)
    }
    latencies = [t.latency_ms for t in trials if t.latency_ms is not None]
    costs = [t.cost_usd for t in trials if t.cost_usd is not None]
    return Aggregate(
        scope=scope,
        cases=len(cases),
        trials=len(trials),
        pass_rate=_mean(case.pass_rate for case in cases),
        pass_k=_mean(float(case.passed_all) for case in cases),
        k=k,
        pass_hat=MappingProxyType(pass_hat),
        target_errors=sum(t.error is not None for t in trials),
        evaluator_errors=sum(t.judge_error for t in trials),
        latency_p50_ms=percentile(latencies, 0.50),
        latency_p95_ms=percentile(latencies, 0.95),
        mean_cost_usd=statistics.fmean(costs) if costs else None,
        evaluators=_evaluator_stats(cases),
        judge_variance=_judge_variance(cases),
    )


def pass_hat_j(passes: int, trials: int, j: int) -> float:
    """The unbiased estimate of pass^j from ``passes`` of ``trials``: C(c, j) / C(n, j)."""
    if trials < j or j < 1:
        raise ValueError(f"pass^{j} needs at least {j} trials, got {trials}")
    return math.comb(passes, j) / math.comb(trials, j)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile with linear interpolation between order statistics (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return statistics.fmean(items) if items else 0.0


def _evaluator_stats(cases: Sequence[CaseResult]) -> Mapping[str, EvaluatorStats]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    scores: dict[str, list[float]] = defaultdict(list)
    for case in cases:
        for trial in case.trials:
            for score in trial.scores:
                if score.status == "skipped":
                    continue
                row = counts[score.evaluator]
                row[0] += 1
                row[1] += score.status == "pass"
                row[2] += score.status == "error"
                if score.score is not None:
                    scores[score.evaluator].append(score.score)
    return MappingProxyType(
        {
            name: EvaluatorStats(
                name,
                trials=row[0],
                passed=row[1],
                errors=row[2],
                mean_score=statistics.fmean(scores[name]) if scores[name] else None,
            )
            for name, row in sorted(counts.items())
        }
    )


def _judge_variance(cases: Sequence[CaseResult]) -> float | None:
    # Per case and judge: the spread of its scores over trials and samples.
    per_case_judge = []
    for case in cases:
        values: dict[str, list[float]] = defaultdict(list)
        for trial in case.trials:
            for score in trial.scores:
                samples = score.details.get("judge_scores") if score.details else None
                if isinstance(samples, list):
                    values[score.evaluator].extend(float(v) for v in samples)
        per_case_judge += [statistics.pvariance(v) for v in values.values() if len(v) > 1]
    return statistics.fmean(per_case_judge) if per_case_judge else None

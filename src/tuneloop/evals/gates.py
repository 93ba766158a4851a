"""Gates: per-category thresholds and the regression rule against a baseline run.

A gate passes when none of its checks fails. A threshold on a category that the stage
did not run is ``skipped``; a threshold that cannot be measured (a cost budget when no
trial reported ``cost_usd``) fails, since a gate that cannot be checked must not pass.
The regression rule is in `tuneloop.evals.compare`.
"""

from __future__ import annotations

from collections.abc import Callable

from tuneloop.evals.aggregate import OVERALL
from tuneloop.evals.compare import RunDiff, detectable, diff_runs
from tuneloop.evals.results import Aggregate, CheckStatus, EvalRun, GateCheck, GateReport
from tuneloop.evals.suite import GatesSpec, Thresholds

_EPS = 1e-12
_SHOWN = 10


def evaluate_gates(
    run: EvalRun, gates: GatesSpec, *, baseline: EvalRun | None = None
) -> GateReport:
    """Check ``run`` against every threshold in ``gates`` and, with a baseline, for regressions."""
    checks: list[GateCheck] = []
    scopes = {OVERALL: gates.overall, **gates.categories}
    for scope, thresholds in scopes.items():
        aggregate = run.overall if scope == OVERALL else run.categories.get(scope)
        checks += _threshold_checks(scope, thresholds, aggregate)
    regressions: tuple[str, ...] = ()
    if baseline is not None and gates.regression.enabled:
        diff = diff_runs(baseline, run, alpha=gates.regression.alpha)
        regressed = diff.regressions
        regressions = tuple(case.case_id for case in regressed)
        compared = len(diff.cases) - len(diff.of("added", "removed"))
        if regressed:
            shown = ", ".join(
                f"{c.case_id} ({_counts(c.before)} → {_counts(c.after)}"
                + (f", p={c.p_value:.3f})" if c.p_value is not None else ")")
                for c in regressed[:_SHOWN]
            )
            more = f" and {len(regressed) - _SHOWN} more" if len(regressed) > _SHOWN else ""
            message = f"{len(regressed)} of {compared} cases regressed: {shown}{more}"
        else:
            noisy = len(diff.of("worse_within_noise"))
            message = f"no case regressed among {compared} compared" + (
                f" ({noisy} worse within trial noise)" if noisy else ""
            )
        blind = _undetectable(diff, gates.regression.alpha)
        if blind:
            message += (
                f"; {blind} case(s) have too few trials for the exact test to detect a "
                f"regression at alpha={gates.regression.alpha:g}: use --repeat 1 or >= 3"
            )
        checks.append(
            GateCheck(
                "regression",
                "regressed_cases",
                "fail" if regressed else "pass",
                float(len(regressed)),
                0.0,
                message,
            )
        )
    return GateReport(tuple(checks), regressions, None if baseline is None else baseline.run_id)


def _undetectable(diff: RunDiff, alpha: float) -> int:
    verdicts: dict[tuple[int, int], bool] = {}
    blind = 0
    for case in diff.cases:
        if case.before is None or case.after is None:
            continue
        key = (case.before[1], case.after[1])
        if key not in verdicts:
            verdicts[key] = detectable(*key, alpha=alpha)
        blind += not verdicts[key]
    return blind


def _counts(pair: tuple[int, int] | None) -> str:
    return "-" if pair is None else f"{pair[0]}/{pair[1]}"


def _threshold_checks(
    scope: str, thresholds: Thresholds, aggregate: Aggregate | None
) -> list[GateCheck]:
    wanted: list[tuple[str, float, Callable[[Aggregate], float | None], bool, str]] = []
    if thresholds.pass_rate is not None:
        wanted.append(("pass_rate", thresholds.pass_rate, lambda a: a.pass_rate, True, "pass^1"))
    if thresholds.pass_k is not None:
        wanted.append(("pass_k", thresholds.pass_k, lambda a: a.pass_k, True, "pass^k"))
    for key, minimum in thresholds.evaluators.items():
        wanted.append((f"evaluator:{key}", minimum, _evaluator_rate(key), True, f"{key} pass rate"))
    if thresholds.latency_p95_ms is not None:
        wanted.append(
            ("latency_p95_ms", thresholds.latency_p95_ms, lambda a: a.latency_p95_ms, False,
             "latency p95 (ms)")
        )  # fmt: skip
    if thresholds.mean_cost_usd is not None:
        wanted.append(
            ("mean_cost_usd", thresholds.mean_cost_usd, lambda a: a.mean_cost_usd, False,
             "mean cost (USD)")
        )  # fmt: skip
    if thresholds.max_target_errors is not None:
        wanted.append(
            ("target_errors", float(thresholds.max_target_errors),
             lambda a: float(a.target_errors), False, "target errors")
        )  # fmt: skip
    checks = []
    for metric, threshold, read, at_least, label in wanted:
        if aggregate is None or aggregate.cases == 0:
            checks.append(
                GateCheck(scope, metric, "skipped", None, threshold,
                          f"{scope}: no case of this category ran in this stage")
            )  # fmt: skip
            continue
        actual = read(aggregate)
        if actual is None:
            status: CheckStatus = "skipped" if metric.startswith("evaluator:") else "fail"
            why = (
                "the evaluator applied to no trial"
                if status == "skipped"
                else "not measured: no trial reported it"
            )
            checks.append(
                GateCheck(scope, metric, status, None, threshold, f"{scope} {label}: {why}")
            )
            continue
        ok = actual >= threshold - _EPS if at_least else actual <= threshold + _EPS
        sign = (">=" if ok else "<") if at_least else ("<=" if ok else ">")
        checks.append(
            GateCheck(
                scope,
                metric,
                "pass" if ok else "fail",
                actual,
                threshold,
                f"{scope} {label} {_fmt(actual)} {sign} {_fmt(threshold)}",
            )
        )
    return checks


def _evaluator_rate(key: str) -> Callable[[Aggregate], float | None]:
    def read(aggregate: Aggregate) -> float | None:
        stats = aggregate.evaluators.get(key)
        return None if stats is None else stats.pass_rate

    return read


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) >= 1:
        return f"{value:.0f}"
    return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}".rstrip("0").rstrip(".")

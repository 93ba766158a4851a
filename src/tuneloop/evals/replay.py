"""Replay: re-run sampled production inputs against a candidate version, compare with production.

This is the offline check a candidate (a recommendation's bundle, a new prompt) must
pass before an A/B test. Each sampled production run (`tuneloop.evals.production`)
becomes a case; the target answers it under the candidate's config, through the
ordinary eval runner (timeouts, concurrency, progress); two evaluators compare each
replayed run with what production recorded for it:

- ``replay_outcome``: the candidate did not fail where production succeeded;
- ``replay_tool_errors``: the candidate made no more failed tool calls than production.

The gate (`replay_gate`) then compares the sample as a whole:

- **success rate**: paired outcomes, so McNemar's exact test on the runs that changed
  (one-sided: fails when the candidate loses significantly more runs than it gains,
  p <= ``alpha``); and, since a small sample can hide a large loss from the test, it
  also fails when the rate drops by more than ``max_success_drop`` (absolute);
- **tool error rate** (failed calls / calls): at most ``max_tool_error_increase``
  above production's (absolute);
- **latency p95** and **mean cost**: at most ``max_latency_ratio`` / ``max_cost_ratio``
  times production's (None turns a check off; an unmeasured cost fails).

The candidate's outcome is the result's ``outcome`` (an attribute, a mapping key or
``metadata.outcome``: ``success``, ``failure``, ``escalated``, ``budget_exhausted``);
a target that raises or times out failed; otherwise it succeeded. The result is an
`EvalRun` of stage ``replay`` (category = production's outcome), so it is stored,
listed and diffed like any run and records the candidate's ``replay`` gate verdict.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from tuneloop.errors import ConfigError
from tuneloop.evals.aggregate import percentile
from tuneloop.evals.dataset import Case
from tuneloop.evals.evaluators.base import EvalContext, Score
from tuneloop.evals.production import ProductionRun
from tuneloop.evals.results import CheckStatus, EvalRun, GateCheck, GateReport
from tuneloop.evals.runner import Runner, TargetFn
from tuneloop.evals.target import TargetResult, to_target_result
from tuneloop.telemetry.model import OUTCOMES

STAGE = "replay"
OUTCOME = "replay_outcome"
TOOL_ERRORS = "replay_tool_errors"


@dataclass(frozen=True, slots=True)
class ReplayThresholds:
    """How much worse than production a candidate may be (see the module docstring)."""

    alpha: float = 0.05
    max_success_drop: float | None = 0.10
    max_tool_error_increase: float | None = 0.02
    max_latency_ratio: float | None = 1.25
    max_cost_ratio: float | None = 1.25

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ConfigError(f"replay alpha must be within (0, 1), got {self.alpha}")
        limits = (
            "max_success_drop",
            "max_tool_error_increase",
            "max_latency_ratio",
            "max_cost_ratio",
        )
        for name in limits:
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"replay {name} must be a number >= 0, got {value}")


def replay_cases(sample: Sequence[ProductionRun]) -> tuple[Case, ...]:
    """One case per production run: its input, production's figures in ``metadata``."""
    return tuple(
        Case(
            id=f"trace-{run.trace_id}",
            input=run.input,
            category=run.outcome or "unknown",
            tags=(STAGE,),
            metadata=MappingProxyType(
                {
                    "trace_id": run.trace_id,
                    "outcome": run.outcome,
                    "tool_calls": run.tool_call_count,
                    "tool_errors": run.tool_errors,
                    "latency_ms": run.latency_ms,
                    "cost_usd": run.cost_usd,
                    "version": run.version,
                }
            ),
        )
        for run in sample
    )


def candidate_outcome(raw: Any) -> str | None:
    """The outcome a target's result states, if any (see the module docstring)."""
    found = raw.get("outcome") if isinstance(raw, Mapping) else getattr(raw, "outcome", None)
    if found is None:
        metadata = raw.get("metadata") if isinstance(raw, Mapping) else None
        metadata = metadata if metadata is not None else getattr(raw, "metadata", None)
        if isinstance(metadata, Mapping):
            found = metadata.get("outcome")
    found = getattr(found, "value", found)  # an enum member
    return found if isinstance(found, str) and found in OUTCOMES else None


def with_outcome(target: TargetFn) -> TargetFn:
    """``target`` whose results carry their outcome in ``metadata.outcome``."""

    async def replayed(input: Any, config: Any) -> TargetResult:
        raw = await target(input, config)
        outcome = candidate_outcome(raw)
        if isinstance(raw, Mapping) and "outcome" in raw:
            raw = {key: value for key, value in raw.items() if key != "outcome"}
        result = to_target_result(raw)
        return replace(
            result,
            metadata=MappingProxyType({**result.metadata, "outcome": outcome or "success"}),
        )

    return replayed


class OutcomeVsProduction:
    """Passes unless the candidate failed a run production completed."""

    name = OUTCOME

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Compare the replayed outcome with production's."""
        before = ctx.case.metadata.get("outcome")
        after = str(ctx.result.metadata.get("outcome") or "success")
        worse = before == "success" and after != "success"
        return Score(
            self.name,
            "fail" if worse else "pass",
            0.0 if worse else 1.0,
            f"production {before}, candidate {after}",
            MappingProxyType({"production": before, "candidate": after}),
        )


class ToolErrorsVsProduction:
    """Passes unless the candidate had more failed tool calls than production on this run."""

    name = TOOL_ERRORS

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Compare failed tool calls with production's."""
        before = int(ctx.case.metadata.get("tool_errors") or 0)
        after = sum(call.status == "error" for call in ctx.result.tool_calls)
        calls = len(ctx.result.tool_calls)
        return Score(
            self.name,
            "fail" if after > before else "pass",
            1.0 if after <= before else 0.0,
            f"failed tool calls: production {before}, candidate {after} of {calls}",
            MappingProxyType({"production": before, "candidate": after, "calls": calls}),
        )


async def replay(
    sample: Sequence[ProductionRun],
    target: TargetFn,
    config: Any,
    *,
    agent: str,
    version: str | None,
    config_hash: str | None,
    thresholds: ReplayThresholds | None = None,
    concurrency: int = 8,
    timeout_s: float = 30.0,
    progress: bool | None = None,
    console: Any = None,
) -> EvalRun:
    """Replay ``sample`` against ``target`` under the candidate ``config``; judge the result.

    Raises:
        InvalidInputError: an empty sample.
    """
    runner = Runner(
        with_outcome(target),
        [OutcomeVsProduction(), ToolErrorsVsProduction()],
        concurrency=concurrency,
        timeout_s=timeout_s,
        agent=agent,
        progress=progress,
        console=console,
    )
    limits = thresholds or ReplayThresholds()
    run = await runner.run(
        replay_cases(sample),
        config,
        suite=f"replay:{agent}",
        stage=STAGE,
        version=version,
        config_hash=config_hash,
        gate=lambda finished: replay_gate(finished, sample, limits),
    )
    figures = {"production": production_figures(sample), "candidate": candidate_figures(run)}
    return replace(run, environment=MappingProxyType({**run.environment, "replay": figures}))


def production_figures(sample: Sequence[ProductionRun]) -> dict[str, Any]:
    """Success rate, tool error rate, latency p95 and mean cost production recorded."""
    costs = [run.cost_usd for run in sample if run.cost_usd is not None]
    calls = sum(run.tool_call_count for run in sample)
    return {
        "runs": len(sample),
        "success_rate": _rate(sum(run.succeeded for run in sample), len(sample)),
        "tool_error_rate": _rate(sum(run.tool_errors for run in sample), calls),
        "latency_p95_ms": percentile(
            [run.latency_ms for run in sample if run.latency_ms is not None], 0.95
        ),
        "mean_cost_usd": statistics.fmean(costs) if costs else None,
    }


def candidate_figures(run: EvalRun) -> dict[str, Any]:
    """The same figures for the replayed runs."""
    trials = [trial for case in run.cases for trial in case.trials]
    outcomes = [_trial_outcome(trial) for trial in trials]
    calls = sum(len(trial.tool_calls) for trial in trials)
    errors = sum(call.get("status") == "error" for t in trials for call in t.tool_calls)
    return {
        "runs": len(trials),
        "success_rate": _rate(sum(outcome == "success" for outcome in outcomes), len(trials)),
        "tool_error_rate": _rate(errors, calls),
        "latency_p95_ms": run.overall.latency_p95_ms,
        "mean_cost_usd": run.overall.mean_cost_usd,
    }


def replay_gate(
    run: EvalRun, sample: Sequence[ProductionRun], thresholds: ReplayThresholds
) -> GateReport:
    """The replay checks of ``run`` against the production ``sample`` it replayed."""
    before = production_figures(sample)
    after = candidate_figures(run)
    production = {f"trace-{item.trace_id}": item for item in sample}
    lost = gained = 0
    for case in run.cases:
        base = production.get(case.case_id)
        if base is None or not case.trials:
            continue
        now = _trial_outcome(case.trials[0]) == "success"
        lost += base.succeeded and not now
        gained += now and not base.succeeded
    checks = [_success_check(before, after, lost, gained, thresholds)]
    if thresholds.max_tool_error_increase is not None:
        checks.append(_tool_error_check(before, after, thresholds.max_tool_error_increase))
    if thresholds.max_latency_ratio is not None:
        checks.append(
            _ratio_check("latency_p95_ratio", "latency p95", before["latency_p95_ms"],
                         after["latency_p95_ms"], thresholds.max_latency_ratio, "ms")
        )  # fmt: skip
    if thresholds.max_cost_ratio is not None:
        checks.append(
            _ratio_check("mean_cost_ratio", "mean cost", before["mean_cost_usd"],
                         after["mean_cost_usd"], thresholds.max_cost_ratio, "USD")
        )  # fmt: skip
    return GateReport(tuple(checks))


def mcnemar_worse(lost: int, gained: int) -> float:
    """One-sided exact McNemar p-value that the candidate loses more runs than it gains.

    Under the null a changed run is as likely lost as gained: P(X >= lost) for
    X ~ Binomial(lost + gained, 1/2) (``scipy.stats.binomtest(..., alternative="greater")``).
    """
    changed = lost + gained
    if changed == 0:
        return 1.0
    tail = sum(math.comb(changed, k) for k in range(lost, changed + 1))
    return min(1.0, tail / (1 << changed))  # exact for any size: int / int


def _success_check(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    lost: int,
    gained: int,
    thresholds: ReplayThresholds,
) -> GateCheck:
    p_value = mcnemar_worse(lost, gained)
    significant = p_value <= thresholds.alpha and lost > gained
    old, new = before["success_rate"] or 0.0, after["success_rate"] or 0.0
    limit = thresholds.max_success_drop
    too_far = limit is not None and old - new > limit + 1e-12
    rates = f"{_pct(before['success_rate'])} → {_pct(after['success_rate'])}"
    test = f"p={p_value:.3g} {'<=' if significant else '>'} {thresholds.alpha:g}"
    message = (
        f"success rate {rates}: lost {lost} run(s) production completed, gained {gained} "
        f"(McNemar exact {test})"
    )
    if too_far:
        message += f"; a drop of more than {_pct(limit)}"
    return GateCheck(
        "replay", "success_rate", "fail" if significant or too_far else "pass",
        after["success_rate"], before["success_rate"], message,
    )  # fmt: skip


def _tool_error_check(
    before: Mapping[str, Any], after: Mapping[str, Any], margin: float
) -> GateCheck:
    old, new = before["tool_error_rate"], after["tool_error_rate"]
    if old is None and new is None:
        return GateCheck("replay", "tool_error_rate", "skipped", None, None,
                         "no tool calls in production or in the replay")  # fmt: skip
    limit = (old or 0.0) + margin
    status: CheckStatus = "pass" if (new or 0.0) <= limit + 1e-12 else "fail"
    return GateCheck(
        "replay", "tool_error_rate", status, new, limit,
        f"tool error rate {_pct(old)} → {_pct(new)} (at most {_pct(limit)} allowed)",
    )  # fmt: skip


def _ratio_check(
    metric: str, label: str, old: float | None, new: float | None, limit: float, unit: str
) -> GateCheck:
    if old is None:
        return GateCheck("replay", metric, "skipped", None, limit,
                         f"{label}: production recorded none")  # fmt: skip
    if new is None:
        return GateCheck("replay", metric, "fail", None, limit,
                         f"{label}: not measured, the target reported none")  # fmt: skip
    ratio = 1.0 if new == old else (new / old if old > 0 else math.inf)
    status: CheckStatus = "pass" if ratio <= limit + 1e-12 else "fail"
    shown = "∞" if math.isinf(ratio) else f"{ratio:.2f}"
    return GateCheck(
        "replay", metric, status, None if math.isinf(ratio) else ratio, limit,
        f"{label} {old:.4g} → {new:.4g} {unit}: {shown}x production (at most {limit:g}x)",
    )  # fmt: skip


def _trial_outcome(trial: Any) -> str:
    if trial.error is not None:
        return "failure"
    for score in trial.scores:
        if score.evaluator == OUTCOME:
            return str(score.details.get("candidate") or "success")
    return "success"


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"

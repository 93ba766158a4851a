"""The rollout policy: definition + state + fresh figures -> a decision.

Order of checks on every evaluation:

1. **Hard limits** on the candidate's own figures, with no minimum sample: a breach
   (the one-sided bound at ``limit_confidence`` past the limit; see limits.py) rolls
   back.
2. **Guards**: one-sided non-inferiority of the candidate against the stable version
   over the same window (sequential bounds, valid however often they are checked); a
   ``breached`` verdict rolls back.
3. A paused rollout holds (it never advances, but still rolls back on 1 and 2).
4. The step holds until its minimum duration and units are reached, and until its
   guards allow: a step that must ``prove`` needs every guard ``non_inferior``; any
   other step holds only on evidence of harm (a guard's lower bound above 0) that is
   not yet shown to be within the margin. Past the step's ``max_duration_ms`` a step
   that cannot complete pauses for a person instead.
5. Then: the last step promotes; a next step that needs approval waits for it;
   otherwise the rollout advances.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from tuneloop.errors import IllegalTransitionError
from tuneloop.rollouts.definition import GuardSpec, HardLimitSpec, RolloutDefinition
from tuneloop.rollouts.limits import confident_bound
from tuneloop.rollouts.metrics import (
    METRICS,
    GuardMetric,
    VersionFigures,
    format_difference,
    format_value,
)
from tuneloop.stats import (
    AnalysisSettings,
    MetricSpec,
    QuantileSummary,
    RatioSummary,
    check_guardrail,
)

RolloutStatus = Literal["running", "paused", "promoted", "rolled_back", "aborted"]
ACTIVE_STATUSES: tuple[RolloutStatus, ...] = ("running", "paused")
Action = Literal["hold", "advance", "promote", "rollback", "pause"]
GuardVerdict = Literal["non_inferior", "inconclusive", "breached", "not_enough_data"]


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Where a rollout is.

    Attributes:
        status: ``running`` or ``paused`` while active.
        step: index of the current step.
        step_started_ms: when the current step started.
        approved_steps: steps a person has approved (for steps that need approval).
        step_deadline_ms: past this time an inconclusive step pauses (None: never).
    """

    status: RolloutStatus
    step: int
    step_started_ms: int
    approved_steps: frozenset[int] = frozenset()
    step_deadline_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """Fresh figures for both versions over the same window, at ``now_ms``."""

    now_ms: int
    candidate: VersionFigures
    stable: VersionFigures


@dataclass(frozen=True, slots=True)
class GuardCheck:
    """One guard's verdict: how much worse the candidate is and the one-sided bounds."""

    metric: GuardMetric
    verdict: GuardVerdict
    margin: float
    margin_kind: str
    worse_by: float | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None
    reason: str | None = None

    def describe(self) -> str:
        """A short line for the timeline."""
        name = METRICS[self.metric].label
        relative = self.margin_kind == "relative"
        if self.worse_by is None or self.lower_bound is None or self.upper_bound is None:
            return f"{name}: {self.reason or 'not enough data'}"
        worse = format_difference(self.metric, self.worse_by, relative=relative)
        low = format_difference(self.metric, self.lower_bound, relative=relative)
        high = format_difference(self.metric, self.upper_bound, relative=relative)
        margin = format_difference(self.metric, self.margin, relative=relative).lstrip("+")
        return f"{name} worse by {worse} (bounds {low} .. {high}, margin {margin})"


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """One hard limit against the candidate's value and its one-sided confidence bound."""

    metric: GuardMetric
    limit: float
    value: float | None
    bound: float | None
    runs: int
    breached: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do now, why, and the figures it was decided on.

    ``step`` is the step the rollout is on after the decision (the next one for
    ``advance``).
    """

    action: Action
    reason: str
    step: int
    guards: tuple[GuardCheck, ...] = ()
    limits: tuple[LimitCheck, ...] = ()
    figures: Mapping[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        """The figures recorded in the rollout's timeline (JSON-safe)."""
        return {
            **self.figures,
            "guards": [_clean(asdict(check)) for check in self.guards],
            "limits": [_clean(asdict(check)) for check in self.limits],
        }


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()
    }


def check_limits(
    definition: RolloutDefinition, candidate: VersionFigures
) -> tuple[LimitCheck, ...]:
    """Every hard limit against the candidate's figures."""
    confidence = definition.limit_confidence
    return tuple(_limit(limit, candidate, confidence) for limit in definition.hard_limits)


def _limit(spec: HardLimitSpec, candidate: VersionFigures, confidence: float) -> LimitCheck:
    value = candidate.value(spec.metric)
    floor = METRICS[spec.metric].direction == "increase"
    bound = confident_bound(
        spec.metric, candidate.summaries.get(spec.metric), confidence=confidence, lower=not floor
    )
    breached = False
    if bound is not None and candidate.runs >= spec.min_runs:
        breached = bound < spec.limit if floor else bound > spec.limit
    return LimitCheck(spec.metric, spec.limit, value, bound, candidate.runs, breached)


def settings_of(definition: RolloutDefinition) -> AnalysisSettings:
    """The stats engine's settings for a rollout's guards (always sequential)."""
    return AnalysisSettings(
        alpha=definition.alpha,
        method="sequential",
        sequential_tuning=definition.sequential_tuning,
        bootstrap_draws=definition.bootstrap_draws,
    )


def check_guards(definition: RolloutDefinition, observation: Observation) -> tuple[GuardCheck, ...]:
    """Every guard's non-inferiority verdict over the observation's window."""
    settings = settings_of(definition)
    return tuple(
        _guard(guard, observation, settings, definition.min_units_for_stats)
        for guard in definition.guards
    )


def _guard(
    guard: GuardSpec, observation: Observation, settings: AnalysisSettings, min_units: int
) -> GuardCheck:
    base = GuardCheck(guard.metric, "not_enough_data", guard.margin, guard.margin_kind)
    stable, candidate = observation.stable, observation.candidate
    for figures, name in ((stable, "stable"), (candidate, "candidate")):
        if figures.units < min_units:
            return _with(base, reason=f"{name} has {figures.units} of {min_units} units")
    first = stable.summaries.get(guard.metric)
    second = candidate.summaries.get(guard.metric)
    if first is None and second is None:
        # Neither version measures it (no tool calls, no latencies): nothing to guard.
        return _with(base, verdict="non_inferior", reason="not measured by either version")
    if first is None or second is None:
        side = "stable" if first is None else "candidate"
        return _with(base, reason=f"the {side} version has no figures for it")
    info = METRICS[guard.metric]
    spec = MetricSpec(
        guard.metric, info.kind, role="guardrail", direction=info.direction,
        margin=guard.margin, margin_kind=guard.margin_kind, quantile=info.quantile,
    )  # fmt: skip
    result = check_guardrail(spec, first, second, settings=settings)
    if result.status == "ok" and result.verdict is not None:
        return GuardCheck(
            guard.metric, result.verdict, guard.margin, guard.margin_kind,
            result.worse_by, result.lower_bound, result.upper_bound,
        )  # fmt: skip
    return _constant_guard(base, guard, stable, candidate, result.reason)


def _with(check: GuardCheck, **changes: Any) -> GuardCheck:
    return replace(check, **changes)


def _constant_guard(
    base: GuardCheck,
    guard: GuardSpec,
    stable: VersionFigures,
    candidate: VersionFigures,
    reason: str | None,
) -> GuardCheck:
    """A guard whose values do not vary within each version (no errors on either side).

    The stats engine cannot bound a difference with zero variance; but then the
    difference is known exactly, so it is compared with the margin directly.
    """
    a, b = stable.summaries[guard.metric], candidate.summaries[guard.metric]
    if not (_constant(a) and _constant(b)):
        return _with(base, reason=reason)
    first, second = stable.value(guard.metric), candidate.value(guard.metric)
    if first is None or second is None:
        return _with(base, reason=reason)
    harm = second - first if METRICS[guard.metric].direction == "decrease" else first - second
    if guard.margin_kind == "relative":
        # From a stable value of 0 any harm is infinitely many times worse.
        harm = harm / abs(first) if first != 0 else (math.inf if harm > 0 else 0.0)
    verdict: GuardVerdict = "breached" if harm > guard.margin else "non_inferior"
    return _with(base, verdict=verdict, worse_by=harm, lower_bound=harm, upper_bound=harm)


def _constant(summary: object) -> bool:
    if isinstance(summary, RatioSummary):
        estimate = summary.estimate()
        return summary.n >= 2 and math.isfinite(estimate.mean) and estimate.variance <= 0
    if isinstance(summary, QuantileSummary):
        return summary.n >= 2 and summary.values.size == 1
    return False


def _duration(ms: int) -> str:
    minutes = ms / 60_000
    if minutes < 1:
        return f"{ms / 1000:.0f}s"
    if minutes < 120:
        return f"{minutes:.0f}m"
    return f"{minutes / 60:.1f}h"


def decide(
    definition: RolloutDefinition, state: RolloutState, observation: Observation
) -> Decision:
    """The decision for a rollout now (see the module docstring for the order of checks).

    Raises:
        IllegalTransitionError: the rollout is no longer active.
    """
    if state.status not in ACTIVE_STATUSES:
        raise IllegalTransitionError(f"a {state.status} rollout takes no more decisions")
    step = definition.steps[state.step]
    elapsed = max(observation.now_ms - state.step_started_ms, 0)
    candidate = observation.candidate
    limits = check_limits(definition, candidate)
    guards = check_guards(definition, observation)
    figures = {
        "step": state.step,
        "weight": step.weight,
        "elapsed_ms": elapsed,
        "candidate": candidate.to_data(),
        "stable": observation.stable.to_data(),
    }

    def made(action: Action, reason: str, at: int = state.step) -> Decision:
        return Decision(action, reason, at, guards, limits, figures)

    for limit in limits:
        if limit.breached:
            metric = limit.metric
            side = "below" if METRICS[metric].direction == "increase" else "above"
            confidence = f"{definition.limit_confidence * 100:g} %"
            return made(
                "rollback",
                f"hard limit: {METRICS[metric].label} {format_value(metric, limit.value)} over "
                f"{limit.runs} runs is {side} {format_value(metric, limit.limit)} with "
                f"{confidence} confidence (bound {format_value(metric, limit.bound)})",
            )
    breached = [check for check in guards if check.verdict == "breached"]
    if breached:
        details = "; ".join(check.describe() for check in breached)
        return made(
            "rollback",
            f"guard breached at step {state.step + 1} ({step.weight:g} %): {details} "
            f"({candidate.units} vs {observation.stable.units} units)",
        )
    if state.status == "paused":
        return made("hold", "paused; resume to continue")
    waiting = []
    if elapsed < step.min_duration_ms:
        waiting.append(f"{_duration(elapsed)} of {_duration(step.min_duration_ms)}")
    if candidate.units < step.min_units:
        waiting.append(f"{candidate.units} of {step.min_units} units")
    if waiting:
        return made("hold", f"step {state.step + 1} ({step.weight:g} %): {', '.join(waiting)}")
    if step.prove:
        blocking = [check for check in guards if check.verdict != "non_inferior"]
        waiting_for = "non-inferiority"
    else:
        # Evidence of harm (the lower bound above 0) not yet shown to be within the margin.
        blocking = [
            check for check in guards
            if check.verdict == "inconclusive" and (check.lower_bound or 0.0) > 0
        ]  # fmt: skip
        waiting_for = "the harm to be shown within its margin"
    if blocking:
        details = "; ".join(check.describe() for check in blocking)
        if state.step_deadline_ms is not None and observation.now_ms >= state.step_deadline_ms:
            return made("pause", f"inconclusive after {_duration(elapsed)}: {details}")
        return made("hold", f"waiting for {waiting_for}: {details}")
    if state.step + 1 == len(definition.steps):
        return made("promote", f"all {len(definition.steps)} steps passed")
    following = state.step + 1
    nxt = definition.steps[following]
    if nxt.approval and following not in state.approved_steps:
        return made("hold", f"step {following + 1} ({nxt.weight:g} %) waits for approval")
    return made(
        "advance",
        f"step {state.step + 1} ({step.weight:g} %) passed after {_duration(elapsed)} with "
        f"{candidate.units} units; on to {nxt.weight:g} %",
        following,
    )

"""What a rollout is asked to do: steps, guards, hard limits; and the presets.

A definition is data (JSON on the wire and in the store) validated here, so a bad one
fails with a message that names the field and the fix. Durations are milliseconds and
accept ``30s``, ``15m``, ``2h`` when given as text; step weights are percentages of
units on the candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from tuneloop.analysis.metrics import parse_duration_ms
from tuneloop.config.state import UnitType
from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.rollouts.metrics import GuardMetric
from tuneloop.stats import MarginKind

PresetName = Literal["canary", "gradual", "blue-green"]
PRESETS: tuple[PresetName, ...] = get_args(PresetName)
MINUTE_MS = 60_000


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_duration_ms(value)
        except InvalidInputError as exc:  # pydantic reports ValueErrors with the field
            raise ValueError(str(exc)) from None
    return value


DurationMs = Annotated[int, BeforeValidator(_duration), Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepSpec(_Model):
    """One step: the candidate's share of units and what it must show before the next.

    The step is complete once it has run ``min_duration_ms`` and the candidate has
    ``min_units`` units in it, and its guards allow: with ``prove`` every guard must be
    shown non-inferior (the upper bound of the harm below the margin); without it, the
    step moves on unless a guard shows evidence of harm (its lower bound above 0) not
    yet shown to be within the margin. Past ``max_duration_ms`` a step that cannot
    complete pauses for a person. ``approval``: a person approves before this step
    starts.
    """

    weight: float = Field(gt=0, le=100, description="percent of units on the candidate")
    min_duration_ms: DurationMs = 30 * MINUTE_MS
    max_duration_ms: DurationMs | None = None
    min_units: int = Field(default=100, ge=0)
    prove: bool = Field(default=False, description="require non-inferiority to move on")
    approval: bool = False

    @model_validator(mode="after")
    def _check(self) -> StepSpec:
        if self.max_duration_ms is not None and self.max_duration_ms < self.min_duration_ms:
            raise ValueError(
                f"max_duration_ms ({self.max_duration_ms}) is shorter than min_duration_ms "
                f"({self.min_duration_ms}); give the step at least its minimum time"
            )
        return self


class GuardSpec(_Model):
    """Non-inferiority against the stable version: how much worse the candidate may be."""

    metric: GuardMetric
    margin: float = Field(ge=0, description="absolute (0.01 = 1 point) or relative (0.1 = 10 %)")
    margin_kind: MarginKind = "absolute"


class HardLimitSpec(_Model):
    """A level the candidate must never cross (alert levels: error rate > 5 % ...).

    Checked on the candidate's own figures on every evaluation, with no minimum sample
    beyond ``min_runs``: breached when the candidate is past the limit with the
    definition's ``limit_confidence`` (see rollouts/limits.py). For task success the
    limit is a floor.
    """

    metric: GuardMetric
    limit: float = Field(ge=0)
    min_runs: int = Field(default=1, ge=1)


class RolloutDefinition(_Model):
    """Steps, guards and limits of a rollout (see the README's "Rollouts" section)."""

    preset: PresetName | None = None
    steps: list[StepSpec] = Field(min_length=1, max_length=20)
    guards: list[GuardSpec] = Field(default_factory=list, max_length=20)
    hard_limits: list[HardLimitSpec] = Field(default_factory=list, max_length=20)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    limit_confidence: float = Field(default=0.99, ge=0.5, lt=1)
    sequential_tuning: float = Field(default=10_000, ge=1)
    min_units_for_stats: int = Field(default=20, ge=2)
    bootstrap_draws: int = Field(default=2_000, ge=100, le=100_000)
    unit_type: UnitType = "user"
    notify: list[Annotated[str, Field(pattern=r"^https?://", max_length=2048)]] = Field(
        default_factory=list, max_length=10, description="webhooks told of rollback/promotion"
    )

    @model_validator(mode="after")
    def _check(self) -> RolloutDefinition:
        weights = [step.weight for step in self.steps]
        for before, after in pairwise(weights):
            if after <= before:
                raise ValueError(
                    f"step weights must increase: {weights} has {after} after {before}"
                )
        if weights[-1] != 100:
            raise ValueError(
                f"the last step must be 100 (percent), got {weights[-1]}: a rollout ends "
                "with every unit on the candidate; add a final 100 step"
            )
        if self.steps[0].approval:
            raise ValueError(
                "the first step starts with the rollout; approval applies to later steps"
            )
        names = [guard.metric for guard in self.guards]
        if len(set(names)) != len(names):
            raise ValueError(f"each metric may be guarded once; got {names}")
        return self

    def weight_of(self, step: int) -> float:
        """The candidate's share of units (0..1) at step ``step``."""
        return self.steps[step].weight / 100.0


def _standard_guards() -> list[GuardSpec]:
    return [
        GuardSpec(metric="error_rate", margin=0.01),
        GuardSpec(metric="task_success_rate", margin=0.02),
        GuardSpec(metric="latency_p95_ms", margin=0.15, margin_kind="relative"),
        GuardSpec(metric="cost_per_run", margin=0.10, margin_kind="relative"),
    ]


def _standard_limits() -> list[HardLimitSpec]:
    # The alert levels teams quote: error rate above 5 %, p95 above 10 s, $0.10 a run.
    return [
        HardLimitSpec(metric="error_rate", limit=0.05),
        HardLimitSpec(metric="latency_p95_ms", limit=10_000),
        HardLimitSpec(metric="cost_per_run", limit=0.10),
    ]


def steps_for(
    weights: Sequence[float],
    *,
    min_duration_ms: int = 30 * MINUTE_MS,
    min_units: int = 100,
    max_factor: int = 8,
    prove_from: float | None = None,
    approve_before: Sequence[float] = (),
) -> list[dict[str, Any]]:
    """Steps at ``weights`` (percent), each with the same minimums.

    ``max_duration_ms`` is ``max_factor`` times the minimum. Steps from ``prove_from``
    percent up to (not including) 100 prove non-inferiority; by default only the
    largest step below 100. ``approve_before``: weights whose step needs an approval.
    """
    below = [w for w in weights if w < 100]
    threshold = prove_from if prove_from is not None else (max(below) if below else 100)
    return [
        {
            "weight": weight,
            "min_duration_ms": min_duration_ms,
            "max_duration_ms": min_duration_ms * max_factor,
            "min_units": min_units,
            "prove": threshold <= weight < 100,
            "approval": weight in approve_before,
        }
        for weight in weights
    ]


def preset(name: str, **overrides: Any) -> RolloutDefinition:
    """A preset definition, with any field replaced by ``overrides``.

    - ``canary``: 5 → 25 → 50 → 100 %, 30 minutes and 100 units per step; the 50 %
      step proves every guard non-inferior before the candidate takes all units.
    - ``gradual``: 1 → 5 → 10 → 25 → 50 → 75 → 100 %, an hour per step; 50 % and 75 %
      prove non-inferiority.
    - ``blue-green``: one 100 % step; a breach rolls back at once. The stable version's
      figures are those of the same length of time before the rollout started.

    Raises:
        ConfigError: an unknown preset, or overrides that make an invalid definition.
    """
    base: dict[str, Any] = {
        "preset": name,
        "guards": _standard_guards(),
        "hard_limits": _standard_limits(),
    }
    if name == "canary":
        base["steps"] = steps_for((5, 25, 50, 100), min_duration_ms=30 * MINUTE_MS)
    elif name == "gradual":
        base["steps"] = steps_for(
            (1, 5, 10, 25, 50, 75, 100), min_duration_ms=60 * MINUTE_MS, prove_from=50
        )
    elif name == "blue-green":
        base["steps"] = [{"weight": 100, "min_duration_ms": 15 * MINUTE_MS, "min_units": 0}]
    else:
        raise ConfigError(f"unknown rollout preset {name!r}; choose from {', '.join(PRESETS)}")
    try:
        return RolloutDefinition.model_validate({**base, **overrides})
    except ValueError as exc:
        raise ConfigError(f"invalid {name} rollout: {exc}") from exc


def parse_definition(data: Any) -> RolloutDefinition:
    """A definition from JSON data.

    Raises:
        ConfigError: the data is not a valid definition; the message names the field.
    """
    try:
        return RolloutDefinition.model_validate(data)
    except ValueError as exc:
        raise ConfigError(f"invalid rollout definition: {exc}") from exc

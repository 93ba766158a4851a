"""What an experiment is: the request that creates one, and the definition it is stored as.

`ExperimentIn` is what a caller sends (versions by any ref, weights optional, the
control's version defaulting to production); `build_definition` checks it and, with
the versions resolved to hashes, gives the `ExperimentDefinition` that is stored and
never changes afterwards. The definition knows its allocation (what the SDK assigns
with) and its statistics (metric specs and analysis settings).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tuneloop.config.allocations import AllocationSpec, VariantSpec
from tuneloop.config.state import UnitType
from tuneloop.errors import ConfigError
from tuneloop.experiments.metrics import metric_def
from tuneloop.stats import AnalysisSettings, MarginKind, Method, MetricSpec
from tuneloop.stats.specs import DEFAULT_SEQUENTIAL_TUNING

KEY_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
VARIANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
WEIGHT_TOLERANCE = 1e-6
CONTROL = "control"

Key = Annotated[str, Field(pattern=KEY_PATTERN, description="the experiment's id")]
VariantName = Annotated[str, Field(pattern=VARIANT_PATTERN)]
MetricName = Annotated[str, Field(min_length=1, max_length=160)]
Text = Annotated[str, Field(max_length=4096)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantIn(_Model):
    """One arm as requested: a name, the version it serves (any ref) and its weight."""

    name: VariantName
    version: str | None = Field(
        default=None,
        max_length=128,
        description="hash, prefix, label or channel; only the control may omit it "
        "(production's version when the experiment is created)",
    )
    weight: float | None = Field(default=None, description="default: an even split")


class GuardrailIn(_Model):
    """A metric the treatment may not make worse by more than ``margin``."""

    metric: MetricName
    margin: float = Field(ge=0.0)
    margin_kind: MarginKind = "absolute"


class ExperimentIn(_Model):
    """A request to create an experiment (a draft until it is started)."""

    agent: str = Field(min_length=1, max_length=128)
    variants: list[VariantIn] = Field(min_length=2, max_length=16)
    key: Key | None = Field(default=None, description="default: generated from the agent")
    description: Text = ""
    unit_type: UnitType = "user"
    salt: str | None = Field(default=None, min_length=1, max_length=256)
    primary_metric: MetricName = "task_success"
    metrics: list[MetricName] = Field(default_factory=list, description="secondary metrics")
    guardrails: list[GuardrailIn] = Field(default_factory=list)
    method: Method = "fixed"
    alpha: float = 0.05
    power: float = 0.8
    mde: float | None = Field(default=None, description="minimum detectable effect (primary)")
    mde_kind: MarginKind = "relative"
    planned_units: int | None = Field(default=None, ge=2, description="planned sample (units)")
    sequential_tuning: float | None = None
    force_reason: Text | None = Field(
        default=None, description="start despite a failed eval gate; recorded in the audit log"
    )


class VariantDef(_Model):
    """One arm as stored: pinned to a version by hash."""

    name: VariantName
    weight: float = Field(ge=0.0, le=1.0)
    version: str = Field(pattern=r"^[0-9a-f]{64}$")
    label: str


class ExperimentDefinition(_Model):
    """A checked experiment, its versions resolved; stored as JSON, never edited."""

    key: Key
    agent: str
    description: str = ""
    unit_type: UnitType
    salt: str
    variants: list[VariantDef]
    primary_metric: str
    metrics: list[str] = Field(default_factory=list)
    guardrails: list[GuardrailIn] = Field(default_factory=list)
    method: Method = "fixed"
    alpha: float = 0.05
    power: float = 0.8
    mde: float | None = None
    mde_kind: MarginKind = "relative"
    planned_units: int | None = None
    sequential_tuning: float | None = None
    gate_override: str | None = None

    @property
    def control(self) -> VariantDef:
        """The first variant: what every other variant is compared with."""
        return self.variants[0]

    def variant(self, name: str) -> VariantDef:
        """The variant called ``name``.

        Raises:
            ConfigError: no such variant; the message lists them.
        """
        for variant in self.variants:
            if variant.name == name:
                return variant
        names = ", ".join(v.name for v in self.variants)
        raise ConfigError(f"experiment {self.key!r} has no variant {name!r}; it has {names}")

    def metric_names(self) -> list[str]:
        """Primary first, then guardrails, then secondary metrics."""
        return [self.primary_metric, *(g.metric for g in self.guardrails), *self.metrics]

    def allocation(self) -> AllocationSpec:
        """What the agent state document carries while the experiment runs."""
        return AllocationSpec(
            kind="experiment",
            key=self.key,
            salt=self.salt,
            unit_type=self.unit_type,
            variants=[
                VariantSpec(name=v.name, weight=v.weight, version=v.version) for v in self.variants
            ],
        )

    def metric_specs(self) -> list[MetricSpec]:
        """The metrics for `tuneloop.stats.analyze`: primary, guardrails, secondary."""
        specs = []
        primary = metric_def(self.primary_metric)
        specs.append(
            MetricSpec(
                primary.name,
                primary.kind,
                role="primary",
                direction=primary.direction,
                quantile=primary.quantile,
                mde=self.mde,
                mde_kind=self.mde_kind,
            )
        )
        for guardrail in self.guardrails:
            found = metric_def(guardrail.metric)
            specs.append(
                MetricSpec(
                    found.name,
                    found.kind,
                    role="guardrail",
                    direction=found.direction,
                    margin=guardrail.margin,
                    margin_kind=guardrail.margin_kind,
                    quantile=found.quantile,
                )
            )
        for name in self.metrics:
            found = metric_def(name)
            specs.append(
                MetricSpec(
                    found.name, found.kind, direction=found.direction, quantile=found.quantile
                )
            )
        return specs

    def settings(self) -> AnalysisSettings:
        """How to analyse: alpha, method, power; the sequence tuned to the planned sample."""
        tuning = self.sequential_tuning or self.planned_units or DEFAULT_SEQUENTIAL_TUNING
        return AnalysisSettings(
            alpha=self.alpha, method=self.method, power=self.power, sequential_tuning=tuning
        )


def _weights(variants: list[VariantIn]) -> list[float]:
    given = [v.weight for v in variants]
    if all(w is None for w in given):
        return [1.0 / len(variants)] * len(variants)
    if any(w is None for w in given):
        raise ConfigError(
            "give every variant a weight or none (an even split); "
            f"got {given} for {[v.name for v in variants]}"
        )
    weights = [float(w) for w in given if w is not None]
    for variant, weight in zip(variants, weights, strict=True):
        if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
            raise ConfigError(
                f"variant {variant.name!r}: weight must be between 0 and 1, got {weight!r}"
            )
    total = math.fsum(weights)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ConfigError(
            f"variant weights must sum to 1, got {weights} (sum {total:.6g}); "
            "e.g. 0.5,0.5 for an even split"
        )
    if weights[0] <= 0 or all(w <= 0 for w in weights[1:]):
        raise ConfigError(
            f"the control and at least one treatment need a positive weight, got {weights}"
        )
    # Within the tolerance, rescale so the allocation's own (stricter) check passes.
    return [w / total for w in weights]


def build_definition(
    body: ExperimentIn, *, key: str, versions: Mapping[str, tuple[str, str]]
) -> ExperimentDefinition:
    """Check a request and build its definition.

    Args:
        body: the request.
        key: the experiment's id (``body.key`` or a generated one).
        versions: per variant name, its resolved ``(hash, label)``.

    Raises:
        ConfigError: duplicate variant names, weights not summing to 1, an unknown
            metric, a metric used twice, a bad alpha, power, mde or margin.
    """
    names = [v.name for v in body.variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"variant names must be unique, got {names}")
    weights = _weights(body.variants)
    used = [body.primary_metric, *(g.metric for g in body.guardrails), *body.metrics]
    repeated = sorted({name for name in used if used.count(name) > 1})
    if repeated:
        raise ConfigError(
            f"metric(s) {repeated} appear more than once; a metric is the primary, a "
            "guardrail or a secondary metric, not two of them"
        )
    variants = [
        VariantDef(name=v.name, weight=w, version=versions[v.name][0], label=versions[v.name][1])
        for v, w in zip(body.variants, weights, strict=True)
    ]
    if body.sequential_tuning is not None and not (
        math.isfinite(body.sequential_tuning) and body.sequential_tuning >= 1
    ):
        raise ConfigError(
            f"sequential_tuning is a number of units (>= 1), got {body.sequential_tuning!r}"
        )
    definition = ExperimentDefinition(
        key=key,
        agent=body.agent,
        description=body.description,
        unit_type=body.unit_type,
        salt=body.salt or key,
        variants=variants,
        primary_metric=body.primary_metric,
        metrics=list(body.metrics),
        guardrails=list(body.guardrails),
        method=body.method,
        alpha=body.alpha,
        power=body.power,
        mde=body.mde,
        mde_kind=body.mde_kind,
        planned_units=body.planned_units,
        sequential_tuning=body.sequential_tuning,
        gate_override=(body.force_reason or "").strip() or None,
    )
    # Unknown metrics, bad margins, alpha and power fail here, with the stats' messages.
    definition.metric_specs()
    definition.settings()
    return definition

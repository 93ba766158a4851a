"""What to analyse: metric definitions, analysis settings and the variants' data.

These are the engine's inputs. Callers (the experiments service, the rollout
controller) translate their pydantic configuration into them; every value is checked
here, so a bad configuration fails with a message that names the field and the fix.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.stats._numeric import check_alpha
from tuneloop.stats.summaries import Summary

MetricKind = Literal["binary", "continuous", "ratio", "quantile"]
MetricRole = Literal["primary", "secondary", "guardrail"]
# Which way is an improvement: success rate "increase", error rate and latency "decrease".
Direction = Literal["increase", "decrease"]
MarginKind = Literal["absolute", "relative"]
Method = Literal["fixed", "sequential"]
Correction = Literal["holm", "bonferroni"]

DEFAULT_SEQUENTIAL_TUNING = 5_000


def _choice(value: object, allowed: object, name: str) -> None:
    options = get_args(allowed)
    if value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric of an experiment or a rollout guard.

    Args:
        name: the metric's name; variants' summaries are looked up by it.
        kind: ``binary`` (two-proportion z-test), ``continuous`` (Welch), ``ratio``
            (delta method) or ``quantile`` (bootstrap).
        role: exactly one ``primary`` metric decides; ``guardrail`` metrics need a margin.
        direction: which way is an improvement.
        margin: for guardrails, how much worse the treatment may be: in the metric's units
            (``absolute``, e.g. 0.01 = one percentage point) or a fraction of the control's
            value (``relative``, e.g. 0.10 = 10 %).
        quantile: for quantile metrics, which one (0.95 for p95).
        mde: minimum detectable effect the experiment is planned for, as a fraction of the
            control's value (``relative``) or in the metric's units (``absolute``).
    """

    name: str
    kind: MetricKind
    role: MetricRole = "secondary"
    direction: Direction = "increase"
    margin: float | None = None
    margin_kind: MarginKind = "absolute"
    quantile: float | None = None
    mde: float | None = None
    mde_kind: MarginKind = "relative"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"a metric needs a non-empty name, got {self.name!r}")
        where = f"metric {self.name!r}"
        _choice(self.kind, MetricKind, f"{where}: kind")
        _choice(self.role, MetricRole, f"{where}: role")
        _choice(self.direction, Direction, f"{where}: direction")
        _choice(self.margin_kind, MarginKind, f"{where}: margin_kind")
        _choice(self.mde_kind, MarginKind, f"{where}: mde_kind")
        if self.role == "guardrail":
            if self.margin is None or not math.isfinite(self.margin) or self.margin < 0:
                raise ConfigError(
                    f"guardrail {where} needs a non-negative margin (how much worse is "
                    f"acceptable, e.g. 0.01 absolute or 0.10 relative); got {self.margin!r}"
                )
        elif self.margin is not None:
            raise ConfigError(f"{where}: a margin applies to guardrails only; set role='guardrail'")
        if self.kind == "quantile":
            if self.quantile is None or not 0.0 < self.quantile < 1.0:
                raise ConfigError(
                    f"quantile {where} needs quantile between 0 and 1 (0.95 for p95); "
                    f"got {self.quantile!r}"
                )
        elif self.quantile is not None:
            raise ConfigError(f"{where}: quantile applies to kind='quantile' only")
        if self.mde is not None and not (math.isfinite(self.mde) and self.mde > 0):
            raise ConfigError(f"{where}: mde must be a positive number, got {self.mde!r}")


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """How to analyse.

    Args:
        alpha: two-sided significance level (guardrails use it one-sided).
        method: ``fixed`` decides on fixed-horizon p-values (read once, at the planned
            sample size); ``sequential`` decides on always-valid p-values and confidence
            sequences (read any time). Both are always reported.
        sequential_tuning: units (all variants of a comparison) at which the confidence
            sequence is tightest; set it near the sample size you expect to decide at.
        correction: multiple-comparison correction of p-values across the variants
            compared with control; intervals are Bonferroni-widened when there are 2+.
        power: planned power for "N more units" recommendations.
        srm_threshold: sample-ratio-mismatch p-value below which results are untrustworthy.
        bootstrap_draws: draws for quantile metrics.
        seed: seeds the bootstrap; the same inputs and seed give the same results.
    """

    alpha: float = 0.05
    method: Method = "fixed"
    sequential_tuning: float = DEFAULT_SEQUENTIAL_TUNING
    correction: Correction = "holm"
    power: float = 0.8
    srm_threshold: float = 0.001
    bootstrap_draws: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        _choice(self.method, Method, "method")
        _choice(self.correction, Correction, "correction")
        if not (math.isfinite(self.sequential_tuning) and self.sequential_tuning >= 1):
            raise ConfigError(
                "sequential_tuning is a number of units (>= 1), e.g. the planned sample size; "
                f"got {self.sequential_tuning!r}"
            )
        if not 0.0 < self.power < 1.0:
            raise ConfigError(f"power must be between 0 and 1 (e.g. 0.8), got {self.power!r}")
        if not 0.0 < self.srm_threshold < 1.0:
            raise ConfigError(
                f"srm_threshold must be between 0 and 1 (e.g. 0.001), got {self.srm_threshold!r}"
            )
        if not isinstance(self.bootstrap_draws, int) or self.bootstrap_draws < 100:
            raise ConfigError(f"bootstrap_draws must be at least 100, got {self.bootstrap_draws!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm of an experiment: its configured weight, assigned units and metric summaries.

    Args:
        name: the variant's name (the first variant given to `analyze` is the control).
        weight: configured share of traffic; weights of all variants sum to 1.
        units: units assigned (exposed) to the variant, for the sample-ratio check.
        summaries: per metric name, the variant's sufficient statistics.
    """

    name: str
    weight: float
    units: int
    summaries: Mapping[str, Summary] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"a variant needs a non-empty name, got {self.name!r}")
        if not (isinstance(self.weight, numbers.Real) and 0.0 <= self.weight <= 1.0):
            raise ConfigError(
                f"variant {self.name!r}: weight must be between 0 and 1, got {self.weight!r}"
            )
        try:
            units = operator.index(self.units)
        except TypeError:
            units = -1
        if isinstance(self.units, bool) or units < 0:
            raise InvalidInputError(
                f"variant {self.name!r}: units must be a non-negative integer, got {self.units!r}"
            )
        object.__setattr__(self, "units", int(units))

"""Typed results of the statistics engine, each with a JSON-safe ``to_dict()``.

Nothing here is ever NaN or infinite when it reaches JSON: undefined values are None
and the ``status``/``reason`` fields say why ("not_enough_data": no units in a variant,
zero variance, a control value of 0 for a relative lift).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tuneloop.stats._numeric import Status, to_jsonable
from tuneloop.stats.specs import Correction, Direction, MarginKind, Method, MetricKind, MetricRole
from tuneloop.stats.srm import SrmResult

Verdict = Literal["non_inferior", "inconclusive", "breached"]
Effect = Literal["better", "worse", "none"]
Action = Literal["ship", "keep_running", "stop", "investigate"]


class _Json:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: non-finite floats become None, tuples become lists."""
        out: dict[str, Any] = to_jsonable(self)
        return out


@dataclass(frozen=True, slots=True)
class Interval(_Json):
    """A point estimate with a two-sided interval; all None when undefined."""

    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True, slots=True)
class GuardrailResult(_Json):
    """One-sided non-inferiority check of a treatment against control.

    ``worse_by`` is how much worse the treatment is (negative when better), in the
    metric's units or as a fraction of the control's value (``margin_kind``); the bounds
    are one-sided ``1 - alpha`` bounds on it (from the confidence sequence when
    sequential). ``non_inferior``: the upper bound is below the margin; ``breached``:
    the lower bound is above it; otherwise ``inconclusive``. ``p_value`` tests
    "worse by at least the margin" (small means non-inferior).
    """

    metric: str
    variant: str
    status: Status
    verdict: Verdict | None
    margin: float
    margin_kind: MarginKind
    worse_by: float | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None
    p_value: float | None = None
    method: Method = "fixed"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Comparison(_Json):
    """A treatment against control on one metric.

    ``absolute`` and ``relative`` are fixed-horizon intervals; ``sequential_*`` are the
    confidence sequences (valid at any look). ``adjusted_*`` p-values carry the
    multiple-comparison correction; ``significant`` uses the adjusted p-value of the
    analysis method (always-valid when sequential). ``planned_units`` is the size of the
    experiment (units with data, all variants) at which this comparison has the planned
    power: for the metric's mde, or for a guardrail to show non-inferiority when there is
    no true difference; None without an mde, or from the pair-level `compare`.
    """

    variant: str
    status: Status
    reason: str | None = None
    absolute: Interval = Interval()
    relative: Interval = Interval()
    sequential_absolute: Interval = Interval()
    sequential_relative: Interval = Interval()
    p_value: float | None = None
    adjusted_p_value: float | None = None
    always_valid_p_value: float | None = None
    adjusted_always_valid_p_value: float | None = None
    significant: bool = False
    effect: Effect = "none"
    guardrail: GuardrailResult | None = None
    planned_units: int | None = None


@dataclass(frozen=True, slots=True)
class VariantValue(_Json):
    """A variant's units (with data for the metric) and its value of the metric."""

    variant: str
    units: int
    value: float | None


@dataclass(frozen=True, slots=True)
class MetricResult(_Json):
    """Everything about one metric: values per variant and comparisons with control."""

    name: str
    kind: MetricKind
    role: MetricRole
    direction: Direction
    test: str
    correction: Correction
    interval_level: float
    values: tuple[VariantValue, ...]
    comparisons: tuple[Comparison, ...]
    cuped_variance_reduction: float | None = None
    status: Status = "ok"


@dataclass(frozen=True, slots=True)
class Recommendation(_Json):
    """What to do next, with a sentence saying why.

    ``ship`` a variant, ``keep_running`` (for ``more_units`` when known), ``stop``, or
    ``investigate`` results that cannot be trusted.
    """

    action: Action
    message: str
    variant: str | None = None
    more_units: int | None = None


@dataclass(frozen=True, slots=True)
class ExperimentResult(_Json):
    """The analysis of an experiment: SRM, per-metric results and a recommendation.

    ``trustworthy`` is False when the sample ratio mismatches; the metric results are
    still computed but must not be acted on.
    """

    control: str
    method: Method
    alpha: float
    correction: Correction
    trustworthy: bool
    srm: SrmResult
    metrics: tuple[MetricResult, ...]
    recommendation: Recommendation

    def metric(self, name: str) -> MetricResult:
        """The result of the metric called ``name``."""
        for result in self.metrics:
            if result.name == name:
                return result
        raise KeyError(name)

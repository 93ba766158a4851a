"""The statistics engine: sufficient statistics in, typed and JSON-safe results out.

Pure (numpy and scipy only): no I/O, no clock, no global state. The experiments service
calls `analyze`; the rollout controller calls `check_guardrail` on every tick; planning
calls `plan_sample_size`. See the README's "Statistics" section for which test is used
for which metric.
"""

from tuneloop.stats.analysis import analyze
from tuneloop.stats.bootstrap import QuantileComparison, compare_quantiles
from tuneloop.stats.compare import check_guardrail, compare
from tuneloop.stats.cuped import CupedResult, cuped
from tuneloop.stats.groups import UnitGroups
from tuneloop.stats.power import SamplePlan, plan_sample_size, required_units
from tuneloop.stats.results import (
    Action,
    Comparison,
    Effect,
    ExperimentResult,
    GuardrailResult,
    Interval,
    MetricResult,
    Recommendation,
    VariantValue,
    Verdict,
)
from tuneloop.stats.sequential import always_valid_p_value, width_multiplier
from tuneloop.stats.specs import (
    AnalysisSettings,
    Correction,
    Direction,
    MarginKind,
    Method,
    MetricKind,
    MetricRole,
    MetricSpec,
    Variant,
)
from tuneloop.stats.srm import SrmResult, check_srm
from tuneloop.stats.summaries import (
    AdjustedSummary,
    Estimate,
    MeanSummary,
    ProportionSummary,
    QuantileSummary,
    RatioSummary,
    Summary,
)

__all__ = [
    "Action",
    "AdjustedSummary",
    "AnalysisSettings",
    "Comparison",
    "Correction",
    "CupedResult",
    "Direction",
    "Effect",
    "Estimate",
    "ExperimentResult",
    "GuardrailResult",
    "Interval",
    "MarginKind",
    "MeanSummary",
    "Method",
    "MetricKind",
    "MetricResult",
    "MetricRole",
    "MetricSpec",
    "ProportionSummary",
    "QuantileComparison",
    "QuantileSummary",
    "RatioSummary",
    "Recommendation",
    "SamplePlan",
    "SrmResult",
    "Summary",
    "UnitGroups",
    "Variant",
    "VariantValue",
    "Verdict",
    "always_valid_p_value",
    "analyze",
    "check_guardrail",
    "check_srm",
    "compare",
    "compare_quantiles",
    "cuped",
    "plan_sample_size",
    "required_units",
    "width_multiplier",
]

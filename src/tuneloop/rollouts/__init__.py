"""Rollouts, pure: a definition, its state and fresh figures in, a decision out.

The controller (``tuneloop.server.controller``) reads figures from the store, calls
`decide` and applies the decision; nothing here does I/O or reads the clock.
"""

from tuneloop.rollouts.definition import (
    PRESETS,
    GuardSpec,
    HardLimitSpec,
    PresetName,
    RolloutDefinition,
    StepSpec,
    parse_definition,
    preset,
    steps_for,
)
from tuneloop.rollouts.metrics import (
    GUARD_METRICS,
    METRICS,
    GuardMetric,
    MetricInfo,
    VersionFigures,
    format_value,
)
from tuneloop.rollouts.policy import (
    ACTIVE_STATUSES,
    Action,
    Decision,
    GuardCheck,
    LimitCheck,
    Observation,
    RolloutState,
    RolloutStatus,
    check_guards,
    check_limits,
    decide,
)

__all__ = [
    "ACTIVE_STATUSES",
    "GUARD_METRICS",
    "METRICS",
    "PRESETS",
    "Action",
    "Decision",
    "GuardCheck",
    "GuardMetric",
    "GuardSpec",
    "HardLimitSpec",
    "LimitCheck",
    "MetricInfo",
    "Observation",
    "PresetName",
    "RolloutDefinition",
    "RolloutState",
    "RolloutStatus",
    "StepSpec",
    "VersionFigures",
    "check_guards",
    "check_limits",
    "decide",
    "format_value",
    "parse_definition",
    "preset",
    "steps_for",
]

"""Alert rules, pure: threshold rules over sliding windows and their state transitions.

The controller (``tuneloop.server.controller``) measures each rule's metric, calls
`evaluate`, stores the state and the events, and delivers them to webhooks.
"""

from tuneloop.alerts.rules import (
    ALERT_METRICS,
    AlertAction,
    AlertMetric,
    AlertRuleSpec,
    Comparison,
    EventStatus,
    RuleState,
    RuleStateName,
    Severity,
    Transition,
    backoff_ms,
    breaches,
    dedupe_key,
    describe,
    evaluate,
)

__all__ = [
    "ALERT_METRICS",
    "AlertAction",
    "AlertMetric",
    "AlertRuleSpec",
    "Comparison",
    "EventStatus",
    "RuleState",
    "RuleStateName",
    "Severity",
    "Transition",
    "backoff_ms",
    "breaches",
    "dedupe_key",
    "describe",
    "evaluate",
]

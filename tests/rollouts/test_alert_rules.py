"""Alert rules, pure: pending for a while, firing once per episode, resolving once."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tuneloop.alerts import AlertRuleSpec, RuleState, backoff_ms, dedupe_key, describe, evaluate

MIN = 60_000


def rule(**changes: object) -> AlertRuleSpec:
    base = {
        "name": "errors",
        "metric": "error_rate",
        "threshold": 0.05,
        "window_ms": "5m",
        "for_ms": "5m",
        "min_runs": 20,
    }
    return AlertRuleSpec.model_validate({**base, **changes})


def test_fires_after_holding_for_its_duration_then_resolves_once() -> None:
    spec, state = rule(), RuleState()
    seen = []
    for minute, value in enumerate([0.01, 0.08, 0.09, 0.07, 0.08, 0.09, 0.1, 0.08, 0.02, 0.01]):
        step = evaluate(spec, state, value=value, runs=100, now_ms=minute * MIN)
        state = step.state
        seen.append((state.state, step.event))
    assert seen == [
        ("ok", None),
        ("pending", None),  # breached since minute 1
        ("pending", None),
        ("pending", None),
        ("pending", None),
        ("pending", None),
        ("firing", "firing"),  # minute 6: held for 5 minutes
        ("firing", None),  # no second firing event in the same episode
        ("ok", "resolved"),
        ("ok", None),
    ]
    assert state.episode == 1
    assert dedupe_key("al-1", state.episode) == "rule:al-1:1"


def test_a_dip_resets_pending_and_too_few_runs_never_fire() -> None:
    spec = rule()
    state = evaluate(spec, RuleState(), value=0.09, runs=100, now_ms=0).state
    state = evaluate(spec, state, value=0.01, runs=100, now_ms=3 * MIN).state
    assert state == RuleState("ok")
    quiet = evaluate(spec, RuleState(), value=1.0, runs=19, now_ms=0)
    assert (quiet.state.state, quiet.breached) == ("ok", False)


def test_zero_duration_fires_at_once_and_below_rules_watch_floors() -> None:
    spec = rule(metric="task_success_rate", op="below", threshold=0.8, for_ms="0")
    step = evaluate(spec, RuleState(), value=0.7, runs=50, now_ms=0)
    assert (step.state.state, step.event) == ("firing", "firing")
    assert describe(spec, 0.7, 50) == (
        "task success rate 70.00 % over the last 5 min (50 runs); fires below 80.00 %"
    )


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_ms(n) for n in (1, 2, 3, 4)] == [5_000, 10_000, 20_000, 40_000]
    assert backoff_ms(30) == 600_000


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValidationError, match="metric"):
        rule(metric="mood")
    with pytest.raises(ValidationError, match="invalid duration"):
        rule(window_ms="a while")
    with pytest.raises(ValidationError, match="webhooks"):
        rule(webhooks=["ftp://example"])

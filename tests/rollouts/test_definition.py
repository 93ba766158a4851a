"""Rollout definitions: presets, and bad definitions refused with a message that says why."""

from __future__ import annotations

import pytest

from tuneloop.errors import ConfigError
from tuneloop.rollouts import parse_definition, preset, steps_for


def test_canary_is_5_25_50_100_and_proves_at_50() -> None:
    definition = preset("canary")
    assert [step.weight for step in definition.steps] == [5, 25, 50, 100]
    assert [step.prove for step in definition.steps] == [False, False, True, False]
    assert definition.steps[0].min_duration_ms == 30 * 60_000
    limits = {limit.metric: limit.limit for limit in definition.hard_limits}
    assert limits == {"error_rate": 0.05, "latency_p95_ms": 10_000, "cost_per_run": 0.10}
    assert definition.weight_of(1) == pytest.approx(0.25)


def test_gradual_and_blue_green() -> None:
    gradual = preset("gradual")
    assert [s.weight for s in gradual.steps] == [1, 5, 10, 25, 50, 75, 100]
    assert [s.weight for s in gradual.steps if s.prove] == [50, 75]
    blue_green = preset("blue-green")
    assert [s.weight for s in blue_green.steps] == [100]
    assert not blue_green.steps[0].prove


def test_durations_accept_text_and_steps_for_sets_approvals() -> None:
    steps = steps_for((10, 100), min_duration_ms=120_000, approve_before=(100,))
    definition = preset("canary", steps=steps)
    assert definition.steps[1].approval and not definition.steps[0].approval
    parsed = parse_definition({"steps": [{"weight": 100, "min_duration_ms": "2h"}]})
    assert parsed.steps[0].min_duration_ms == 7_200_000


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"weight": 25}, {"weight": 5}, {"weight": 100}], "must increase"),
        ([{"weight": 5}, {"weight": 5}, {"weight": 100}], "must increase"),
        ([{"weight": 5}, {"weight": 150}], "less than or equal to 100"),
        ([{"weight": 5}, {"weight": 50}], "last step must be 100"),
        ([{"weight": 0}, {"weight": 100}], "greater than 0"),
        ([{"weight": 5, "approval": True}, {"weight": 100}], "first step starts with the rollout"),
        ([{"weight": 100, "min_duration_ms": "1h", "max_duration_ms": "10m"}], "shorter than"),
        ([{"weight": 100, "min_duration_ms": "soon"}], "invalid duration"),
    ],
)
def test_bad_steps_are_refused_with_the_reason(
    steps: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_definition({"steps": steps})


def test_bad_guards_and_unknown_fields_are_refused() -> None:
    with pytest.raises(ConfigError, match="guarded once"):
        parse_definition(
            {
                "steps": [{"weight": 100}],
                "guards": [{"metric": "error_rate", "margin": 0.01}] * 2,
            }
        )
    with pytest.raises(ConfigError, match="metric"):
        parse_definition({"steps": [{"weight": 100}], "guards": [{"metric": "vibes", "margin": 1}]})
    with pytest.raises(ConfigError, match="Extra inputs"):
        parse_definition({"steps": [{"weight": 100}], "speed": "fast"})
    with pytest.raises(ConfigError, match="unknown rollout preset 'yolo'"):
        preset("yolo")

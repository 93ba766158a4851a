"""The run state machine: every legal and illegal transition, timeouts, and its data form."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuneloop.config.model import Limits
from tuneloop.errors import ConfigError, IllegalTransitionError
from tuneloop.runtime.machine import RUN_STATES, Machine, RunState, state_timeouts

LEGAL: set[tuple[RunState, RunState]] = {
    ("init", "preparing"),
    ("init", "failed"),
    ("preparing", "executing"),
    ("preparing", "completed"),
    ("preparing", "failed"),
    ("executing", "waiting_approval"),
    ("executing", "reviewing"),
    ("executing", "completed"),
    ("executing", "failed"),
    ("reviewing", "waiting_approval"),
    ("reviewing", "completed"),
    ("reviewing", "failed"),
}


def machine_in(state: RunState, parked_from: RunState = "executing") -> Machine:
    """A machine brought to ``state`` through legal transitions."""
    paths: dict[RunState, list[RunState]] = {
        "init": [],
        "preparing": ["preparing"],
        "executing": ["preparing", "executing"],
        "reviewing": ["preparing", "executing", "reviewing"],
        "completed": ["preparing", "executing", "reviewing", "completed"],
        "failed": ["failed"],
        "waiting_approval": (
            ["preparing", "executing", "waiting_approval"]
            if parked_from == "executing"
            else ["preparing", "executing", "reviewing", "waiting_approval"]
        ),
    }
    machine = Machine.start(1000)
    for step, target in enumerate(paths[state]):
        machine = machine.to(target, now_ms=1000 + step)
    return machine


@pytest.mark.parametrize(
    ("source", "target"),
    [pair for pair in itertools.product(RUN_STATES, RUN_STATES) if pair[0] != "waiting_approval"],
)
def test_each_transition_is_allowed_exactly_when_the_table_says(
    source: RunState, target: RunState
) -> None:
    machine = machine_in(source)
    if (source, target) in LEGAL:
        moved = machine.to(target, now_ms=5000, reason="because")
        assert moved.state == target
        assert moved.entered_ms == 5000
        assert moved.transitions[-1].source == source
        assert moved.transitions[-1].reason == "because"
    else:
        with pytest.raises(IllegalTransitionError, match=f"from '{source}'"):
            machine.to(target, now_ms=5000)


@pytest.mark.parametrize("parked_from", ["executing", "reviewing"])
def test_waiting_for_approval_returns_only_where_it_came_from(parked_from: RunState) -> None:
    waiting = machine_in("waiting_approval", parked_from)
    assert waiting.parked_from == parked_from
    other = "reviewing" if parked_from == "executing" else "executing"
    with pytest.raises(IllegalTransitionError, match=f"entered from '{parked_from}'"):
        waiting.to(other, now_ms=9000)
    assert waiting.to(parked_from, now_ms=9000).state == parked_from
    assert waiting.to("failed", now_ms=9000).state == "failed"
    with pytest.raises(IllegalTransitionError):
        waiting.to("completed", now_ms=9000)


def test_a_finished_run_refuses_every_move_and_says_so() -> None:
    done = machine_in("completed")
    assert done.terminal
    with pytest.raises(IllegalTransitionError, match="the run has ended"):
        done.to("executing", now_ms=1)
    with pytest.raises(IllegalTransitionError, match="unknown run state 'paused'"):
        done.to("paused", now_ms=1)  # type: ignore[arg-type]


def test_per_state_timeouts_count_from_entering_the_state() -> None:
    timeouts = state_timeouts(Limits(state_timeouts_ms={"EXECUTING": 500, "waiting_approval": 100}))
    executing = Machine.start(0).to("preparing", now_ms=0).to("executing", now_ms=1000)
    assert executing.overdue(timeouts, now_ms=1500) is None
    assert executing.remaining_ms(timeouts, now_ms=1400) == 100
    assert executing.overdue(timeouts, now_ms=1501) == 500
    # A new process picking the run up restarts the state's clock...
    assert executing.resumed(10_000).overdue(timeouts, now_ms=10_400) is None
    # ...but not the wait for a reviewer, whose timeout is about the wait itself.
    waiting = executing.to("waiting_approval", now_ms=1200)
    assert waiting.resumed(10_000).overdue(timeouts, now_ms=10_000) == 100
    assert waiting.remaining_ms({}, now_ms=5) is None


def test_timeouts_on_unknown_or_final_states_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"limits\.state_timeouts_ms\.thinking"):
        state_timeouts(Limits(state_timeouts_ms={"thinking": 10}))
    with pytest.raises(ConfigError, match=r"limits\.state_timeouts_ms\.completed"):
        state_timeouts(Limits(state_timeouts_ms={"completed": 10}))


@given(st.lists(st.sampled_from(RUN_STATES), max_size=12), st.integers(0, 10**12))
def test_any_legal_history_round_trips_through_plain_data(
    targets: list[RunState], start: int
) -> None:
    machine = Machine.start(start)
    for offset, target in enumerate(targets):
        if machine.can(target):
            machine = machine.to(target, now_ms=start + offset, reason=f"step {offset}")
    assert Machine.from_data(machine.to_data()) == machine
    assert len(machine.transitions) <= len(targets)

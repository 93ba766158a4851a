"""The run state machine: legal transitions, per-state timeouts, and its plain-data form.

```
init ─► preparing ─► executing ─► reviewing ─► completed
  │          │        │   ▲  │        │   ▲         ▲
  │          │        ▼   │  │        ▼   │         │
  │          │  waiting_approval      waiting_approval
  └──────────┴────────┴───────┴────────┴──────────► failed
```

``waiting_approval`` returns only to the state it was entered from (or fails).
``completed`` and ``failed`` are terminal. A `Machine` is a frozen value: each
transition returns a new one, with the transition appended to its history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Literal, get_args

from tuneloop.config.model import Limits
from tuneloop.errors import ConfigError, IllegalTransitionError

RunState = Literal[
    "init", "preparing", "executing", "waiting_approval", "reviewing", "completed", "failed"
]
RUN_STATES: tuple[RunState, ...] = get_args(RunState)
TERMINAL: frozenset[RunState] = frozenset({"completed", "failed"})

_NEXT: Mapping[RunState, frozenset[RunState]] = MappingProxyType(
    {
        "init": frozenset({"preparing", "failed"}),
        # A blocked input completes the run with a refusal, without executing.
        "preparing": frozenset({"executing", "completed", "failed"}),
        "executing": frozenset({"waiting_approval", "reviewing", "completed", "failed"}),
        "waiting_approval": frozenset({"executing", "reviewing", "failed"}),
        "reviewing": frozenset({"waiting_approval", "completed", "failed"}),
        "completed": frozenset(),
        "failed": frozenset(),
    }
)


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change: from, to, when (epoch ms) and why."""

    source: RunState
    target: RunState
    at_ms: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Machine:
    """Where a run is, since when, and how it got there.

    Attributes:
        state: the current state.
        entered_ms: when the current state was entered (or re-entered on resume);
            per-state timeouts count from here.
        parked_from: the state ``waiting_approval`` was entered from, where it returns.
        transitions: every transition so far, oldest first.
    """

    state: RunState = "init"
    entered_ms: int = 0
    parked_from: RunState | None = None
    transitions: tuple[Transition, ...] = ()

    @classmethod
    def start(cls, now_ms: int) -> Machine:
        """A machine in ``init``, entered at ``now_ms``."""
        return cls("init", now_ms)

    @property
    def terminal(self) -> bool:
        """Whether the run has ended (``completed`` or ``failed``)."""
        return self.state in TERMINAL

    def can(self, target: RunState) -> bool:
        """Whether ``target`` is a legal next state."""
        if target not in _NEXT[self.state]:
            return False
        if self.state == "waiting_approval" and target != "failed":
            return target == self.parked_from
        return True

    def to(self, target: RunState, *, now_ms: int, reason: str = "") -> Machine:
        """The machine after moving to ``target``.

        Raises:
            IllegalTransitionError: the move is not allowed from the current state; the
                message lists the states that are.
        """
        if target not in RUN_STATES:
            raise IllegalTransitionError(f"unknown run state {target!r}; states are {RUN_STATES}")
        if not self.can(target):
            allowed = sorted(state for state in _NEXT[self.state] if self.can(state))
            where = (
                f" (entered from {self.parked_from!r})" if self.state == "waiting_approval" else ""
            )
            raise IllegalTransitionError(
                f"a run cannot go from {self.state!r}{where} to {target!r}; allowed next: "
                f"{allowed or 'none, the run has ended'}"
            )
        parked_from = self.state if target == "waiting_approval" else None
        step = Transition(self.state, target, now_ms, reason)
        return Machine(target, now_ms, parked_from, (*self.transitions, step))

    def resumed(self, now_ms: int) -> Machine:
        """The machine as a new process picks it up: the state's clock restarts.

        A run waiting for approval keeps its clock: its timeout is about the wait.
        """
        if self.state == "waiting_approval" or self.terminal:
            return self
        return replace(self, entered_ms=now_ms)

    def overdue(self, timeouts: Mapping[RunState, int], now_ms: int) -> int | None:
        """The current state's timeout in ms if it has passed, else ``None``."""
        limit = timeouts.get(self.state)
        if limit is None or self.terminal:
            return None
        return limit if now_ms - self.entered_ms > limit else None

    def remaining_ms(self, timeouts: Mapping[RunState, int], now_ms: int) -> int | None:
        """Milliseconds left in the current state, or ``None`` without a timeout."""
        limit = timeouts.get(self.state)
        if limit is None:
            return None
        return max(0, limit - (now_ms - self.entered_ms))

    def to_data(self) -> dict[str, Any]:
        """Plain data for a checkpoint."""
        return {
            "state": self.state,
            "entered_ms": self.entered_ms,
            "parked_from": self.parked_from,
            "transitions": [[t.source, t.target, t.at_ms, t.reason] for t in self.transitions],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Machine:
        """The inverse of `to_data`."""
        return cls(
            state=data["state"],
            entered_ms=int(data["entered_ms"]),
            parked_from=data.get("parked_from"),
            transitions=tuple(
                Transition(source, target, int(at_ms), reason)
                for source, target, at_ms, reason in data.get("transitions", ())
            ),
        )


def state_timeouts(limits: Limits) -> dict[RunState, int]:
    """The config's ``limits.state_timeouts_ms`` by state (names in any case).

    Raises:
        ConfigError: a name that is not a state, or a timeout on a terminal state.
    """
    timeouts: dict[RunState, int] = {}
    for name, ms in limits.state_timeouts_ms.items():
        state = name.lower()
        if state not in RUN_STATES or state in TERMINAL:
            usable = [s for s in RUN_STATES if s not in TERMINAL]
            raise ConfigError(
                f"limits.state_timeouts_ms.{name}: not a state that can time out; use one "
                f"of {usable}"
            )
        timeouts[state] = ms
    return timeouts

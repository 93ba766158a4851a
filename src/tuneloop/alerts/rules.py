"""Alert rules and their evaluation, pure: a rule, its state and a value in, a transition out.

A rule watches one metric of one agent over a sliding window ("error rate above 5 %
over the last 5 minutes, for 5 minutes"). Each evaluation moves it between three
states, as Prometheus alerting does:

- ``ok``: the condition is false (or the window has fewer than ``min_runs`` runs);
- ``pending``: the condition has held since ``pending_since_ms``, for less than ``for_ms``;
- ``firing``: it has held for ``for_ms`` or more. Entering ``firing`` starts a new
  episode and emits one ``firing`` event; leaving it emits one ``resolved`` event.
  The event's dedupe key is the rule and episode, so whoever evaluates (several
  replicas, a restart) records each episode's events once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from tuneloop.analysis.metrics import parse_duration_ms
from tuneloop.errors import InvalidInputError

AlertMetric = Literal[
    "error_rate",
    "latency_p95_ms",
    "cost_per_run",
    "task_success_rate",
    "escalation_rate",
    "tool_error_rate",
    "guardrail_trigger_rate",
]
ALERT_METRICS: tuple[AlertMetric, ...] = get_args(AlertMetric)
Comparison = Literal["above", "below"]
AlertAction = Literal["none", "pause_rollout"]
Severity = Literal["info", "warning", "critical"]
RuleStateName = Literal["ok", "pending", "firing"]
EventStatus = Literal["firing", "resolved"]


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        if value.strip() in ("0", ""):
            return 0
        try:
            return parse_duration_ms(value)
        except InvalidInputError as exc:  # pydantic reports ValueErrors with the field
            raise ValueError(str(exc)) from None
    return value


class AlertRuleSpec(BaseModel):
    """One threshold rule on an agent's metric over a sliding window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\- ]+$")
    metric: AlertMetric
    op: Comparison = Field(default="above", description="fire when the value is above/below")
    threshold: float
    window_ms: Annotated[int, BeforeValidator(_duration), Field(gt=0, le=7 * 86_400_000)] = 300_000
    for_ms: Annotated[int, BeforeValidator(_duration), Field(ge=0, le=86_400_000)] = 300_000
    min_runs: int = Field(default=20, ge=1, description="fewer runs in the window: no verdict")
    severity: Severity = "warning"
    webhooks: list[Annotated[str, Field(pattern=r"^https?://", max_length=2048)]] = Field(
        default_factory=list, max_length=10
    )
    action: AlertAction = Field(default="none", description="pause_rollout: pause on firing")
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class RuleState:
    """Where a rule is: its state, since when, and how many times it has fired."""

    state: RuleStateName = "ok"
    pending_since_ms: int | None = None
    firing_since_ms: int | None = None
    episode: int = 0


@dataclass(frozen=True, slots=True)
class Transition:
    """The rule's next state, the event to emit (if any), and whether the condition held."""

    state: RuleState
    event: EventStatus | None
    breached: bool


def breaches(spec: AlertRuleSpec, value: float | None, runs: int) -> bool:
    """Whether the condition holds: enough runs, and the value past the threshold."""
    if value is None or runs < spec.min_runs:
        return False
    return value > spec.threshold if spec.op == "above" else value < spec.threshold


def evaluate(
    spec: AlertRuleSpec, state: RuleState, *, value: float | None, runs: int, now_ms: int
) -> Transition:
    """The rule's transition for a value observed now (see the module docstring)."""
    breached = breaches(spec, value, runs)
    if not breached:
        if state.state == "firing":
            return Transition(RuleState("ok", episode=state.episode), "resolved", False)
        return Transition(RuleState("ok", episode=state.episode), None, False)
    if state.state == "firing":
        return Transition(state, None, True)
    since = state.pending_since_ms if state.state == "pending" else now_ms
    assert since is not None
    if now_ms - since >= spec.for_ms:
        firing = RuleState("firing", since, now_ms, state.episode + 1)
        return Transition(firing, "firing", True)
    return Transition(RuleState("pending", since, None, state.episode), None, True)


def dedupe_key(rule_id: str, episode: int) -> str:
    """The key that makes an episode's firing and resolved events unique."""
    return f"rule:{rule_id}:{episode}"


def backoff_ms(attempt: int, *, base_ms: int = 5_000, cap_ms: int = 600_000) -> int:
    """Wait before retry ``attempt`` (1 = the first retry): doubling from ``base_ms``, capped."""
    return int(min(cap_ms, base_ms * 2 ** max(attempt - 1, 0)))


def describe(spec: AlertRuleSpec, value: float | None, runs: int) -> str:
    """A one-line message: what the metric is, against what threshold, over which window."""
    shown = "n/a" if value is None else _format(spec.metric, value)
    window = f"{spec.window_ms / 60_000:g} min"
    return (
        f"{spec.metric.replace('_', ' ')} {shown} over the last {window} ({runs} runs); "
        f"fires {spec.op} {_format(spec.metric, spec.threshold)}"
    )


def _format(metric: AlertMetric, value: float) -> str:
    if metric == "latency_p95_ms":
        return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"
    if metric == "cost_per_run":
        return f"${value:.4f}"
    return f"{value * 100:.2f} %"

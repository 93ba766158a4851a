"""Budgets: what a run and a session have spent, and whether the next call may be made.

Each model call is checked twice: before, with an estimate of what it will cost (the
request's size in tokens plus the longest answer it may get), and after, with what
it actually cost. Limits come from the config's ``budget`` section.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tuneloop.config.model import Budget
from tuneloop.runtime.providers.base import ChatRequest, Usage
from tuneloop.telemetry.pricing import PriceTable

BudgetScope = Literal["run", "session"]
BudgetKind = Literal["tokens", "usd"]
BudgetPhase = Literal["estimate", "actual"]

_CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class Spend:
    """Tokens and dollars spent; spends add up with ``+``."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost_usd + other.cost_usd,
        )

    def __sub__(self, other: Spend) -> Spend:
        return Spend(
            self.input_tokens - other.input_tokens,
            self.output_tokens - other.output_tokens,
            self.cost_usd - other.cost_usd,
        )

    @classmethod
    def of(cls, usage: Usage, model: str, prices: PriceTable) -> Spend:
        """What a call of ``usage`` tokens to ``model`` cost (0 USD for an unpriced model)."""
        cost = prices.cost(model, usage.input_tokens, usage.output_tokens)
        return cls(usage.input_tokens, usage.output_tokens, cost)

    def to_data(self) -> dict[str, Any]:
        """Plain data for a checkpoint."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> Spend:
        """The inverse of `to_data`."""
        if not data:
            return cls()
        return cls(
            int(data.get("input_tokens", 0)),
            int(data.get("output_tokens", 0)),
            float(data.get("cost_usd", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class Exhaustion:
    """A budget that would be, or was, overrun.

    Attributes:
        scope: ``run`` or ``session``.
        kind: ``tokens`` or ``usd``.
        limit: the configured limit.
        used: what was spent, plus the estimate when ``phase`` is ``estimate``.
        phase: ``estimate`` (stopped before the call) or ``actual`` (after it).
    """

    scope: BudgetScope
    kind: BudgetKind
    limit: float
    used: float
    phase: BudgetPhase

    def describe(self) -> str:
        """``the run token budget (20000) would be exceeded: 20113 with the next call``."""
        unit = "token" if self.kind == "tokens" else "USD"
        used = f"{self.used:.0f}" if self.kind == "tokens" else f"${self.used:.4f}"
        limit = f"{self.limit:.0f}" if self.kind == "tokens" else f"${self.limit:.4f}"
        if self.phase == "estimate":
            return (
                f"the {self.scope} {unit} budget ({limit}) would be exceeded: {used} with "
                "the next call"
            )
        return f"the {self.scope} {unit} budget ({limit}) is spent: {used} used"


def estimate(request: ChatRequest, *, prices: PriceTable, expected_output_tokens: int) -> Spend:
    """What ``request`` will cost at most, as far as can be known before sending it.

    Input tokens are counted at four characters per token over the messages and the
    tool schemas; output tokens are the request's ``max_tokens`` when set, else
    ``expected_output_tokens`` (the longest answer the run has had so far).
    """
    chars = 0
    for message in request.messages:
        chars += len(message.content or "")
        for call in message.tool_calls:
            chars += len(call.name) + len(call.arguments)
    for spec in request.tools:
        chars += len(spec.name) + len(spec.description) + 16 * len(spec.parameters)
    input_tokens = math.ceil(chars / _CHARS_PER_TOKEN)
    output_tokens = request.max_tokens if request.max_tokens is not None else expected_output_tokens
    return Spend.of(Usage(input_tokens, output_tokens), request.model, prices)


def check(
    budget: Budget,
    *,
    run: Spend,
    session: Spend,
    next_call: Spend | None = None,
) -> Exhaustion | None:
    """The first budget overrun, or ``None``.

    With ``next_call`` (an `estimate`), a budget is overrun when spending plus the
    estimate goes over it; without, when spending already went over it.
    """
    phase: BudgetPhase = "estimate" if next_call is not None else "actual"
    if next_call is not None:
        run, session = run + next_call, session + next_call
    limits: tuple[tuple[BudgetScope, BudgetKind, float | None, float], ...] = (
        ("run", "tokens", budget.run_tokens, run.tokens),
        ("run", "usd", budget.run_usd, run.cost_usd),
        ("session", "tokens", budget.session_tokens, session.tokens),
        ("session", "usd", budget.session_usd, session.cost_usd),
    )
    for scope, kind, limit, used in limits:
        if limit is not None and used > limit:
            return Exhaustion(scope, kind, float(limit), float(used), phase)
    return None

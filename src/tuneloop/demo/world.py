"""The simulated world: users arriving over time, their sessions, and what each run does.

Everything here is pure and seeded: `World` draws from one `random.Random`, so the
same seed and settings always script the same runs. It knows nothing of the platform;
`tuneloop.demo.agent` plays the scripts through the public SDK like any agent would.

What the world does, and the agent's settings only react to:

- ``lookup_order`` answers 503 (retryable) on about 8% of attempts;
- ``search_policy`` has a long tail: its p95 sits above the agent's 3 s timeout;
- ``issue_refund`` occasionally refuses a refund with a 400 validation error;
- the router misclassifies more often the hotter its temperature;
- refunds above the approval threshold go to a human, and so do frustrated users.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import assert_never

from tuneloop.demo.script import (
    INTENTS,
    AgentSettings,
    Attempt,
    DemoOutcome,
    GuardrailStep,
    Intent,
    LlmStep,
    ScriptedRun,
    Step,
    Thumbs,
    ToolName,
    ToolStep,
)
from tuneloop.errors import InvalidInputError

# 2026-01-01T00:00:00Z, a start for tests; the demo starts a few hours before now.
DEFAULT_START_MS = 1_767_225_600_000
DEFAULT_RUNS_PER_HOUR = 130.0
LOOKUP_UNAVAILABLE_RATE = 0.08
_HOUR_MS = 3_600_000.0

_INTENT_WEIGHTS: tuple[float, ...] = (0.40, 0.20, 0.25, 0.15)
_TOOL_PLAN: Mapping[Intent, tuple[ToolName, ...]] = MappingProxyType(
    {
        "order_status": ("lookup_order",),
        "refund": ("lookup_order", "issue_refund"),
        "shipping_policy": ("search_policy",),
        "account": ("get_account",),
    }
)
_MESSAGES: Mapping[Intent, tuple[str, ...]] = MappingProxyType(
    {
        "order_status": (
            "Where is my order #{order}?",
            "Has order {order} shipped yet?",
            "My package {order} still hasn't arrived, it's been a week.",
        ),
        "refund": (
            "I'd like a refund for order {order}.",
            "Order {order} arrived broken. Can I get my money back?",
            "Please refund order {order}, I returned it last Monday.",
        ),
        "shipping_policy": (
            "Do you ship to Canada?",
            "How long does express shipping take?",
            "What is the return window for sale items?",
        ),
        "account": (
            "How do I change the email on my account?",
            "I can't log in to my account.",
            "Please update my default shipping address.",
        ),
    }
)
# Tokens a tool's result adds to the answer prompt (a policy search returns passages).
_RESULT_TOKENS: Mapping[ToolName, int] = MappingProxyType(
    {
        "lookup_order": 220,
        "issue_refund": 90,
        "search_policy": 950,
        "get_account": 160,
    }
)
_SYSTEM_PROMPT_TOKENS = 720
_ROUTER_PROMPT_TOKENS = 310
_PII_RATE = 0.06
_SLOW_RUN_MS = 12_000.0


@dataclass(slots=True)
class _Session:
    """A conversation in progress (mutable: the world's private bookkeeping)."""

    session_id: str
    unit_id: str
    order_id: int
    turns_left: int
    turn: int = 0
    intent: Intent | None = None
    frustration: int = 0


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(sigma * rng.gauss(0.0, 1.0))


class World:
    """Users, sessions and the runs they cause, drawn from one seeded generator.

    Sessions arrive as a Poisson process; each has one to three turns (runs) a
    minute or so apart. The agent serves one run at a time, so a run that arrives
    while another is in progress starts when that one ends.

    Args:
        seed: the seed of the world's random generator.
        start_ms: simulated time of the first arrival's clock, epoch milliseconds.
        runs_per_hour: the average traffic.
        lookup_unavailable_rate: the share of ``lookup_order`` attempts answering 503
            (0 for a world without that fault).
    """

    def __init__(
        self,
        seed: int,
        *,
        start_ms: int = DEFAULT_START_MS,
        runs_per_hour: float = DEFAULT_RUNS_PER_HOUR,
        lookup_unavailable_rate: float = LOOKUP_UNAVAILABLE_RATE,
    ) -> None:
        if runs_per_hour <= 0:
            raise InvalidInputError(f"runs_per_hour must be > 0, got {runs_per_hour}")
        if not 0.0 <= lookup_unavailable_rate < 1.0:
            raise InvalidInputError(
                f"lookup_unavailable_rate must be in [0, 1), got {lookup_unavailable_rate}"
            )
        self._lookup_unavailable_rate = lookup_unavailable_rate
        self._rng = random.Random(seed)
        self._sessions_per_ms = runs_per_hour / 1.7 / _HOUR_MS  # 1.7 turns per session
        self._users: list[str] = []
        self._session_ids = itertools.count(1)
        self._order = itertools.count()
        self._busy_until_ms = float(start_ms)
        self._index = 0
        # (due time, tie-breaker, session or None for "the next session arrives")
        self._events: list[tuple[float, int, _Session | None]] = []
        self._schedule(start_ms + self._rng.expovariate(self._sessions_per_ms), None)

    def next_run(self, settings: AgentSettings) -> ScriptedRun:
        """Script the next run, served with ``settings``."""
        due, _, session = heapq.heappop(self._events)
        if session is None:
            session = self._new_session()
            self._schedule(due + self._rng.expovariate(self._sessions_per_ms), None)
        start_ms = math.ceil(max(due, self._busy_until_ms))
        run = self._script(session, start_ms, settings)
        self._busy_until_ms = start_ms + run.duration_ms
        session.turns_left -= 1
        if session.turns_left > 0 and run.outcome != "escalated":
            self._schedule(self._busy_until_ms + _lognormal(self._rng, 45_000, 0.5), session)
        return run

    def _schedule(self, due: float, session: _Session | None) -> None:
        heapq.heappush(self._events, (due, next(self._order), session))

    def _new_session(self) -> _Session:
        rng = self._rng
        if self._users and rng.random() < 0.3:
            unit_id = rng.choice(self._users)
        else:
            unit_id = f"user-{len(self._users) + 1:04d}"
            self._users.append(unit_id)
        turns = 1 + (rng.random() < 0.5) + (rng.random() < 0.2)
        session_id = f"sess-{next(self._session_ids):05d}"
        return _Session(session_id, unit_id, rng.randint(10_000, 99_999), turns)

    def _script(self, session: _Session, start_ms: int, settings: AgentSettings) -> ScriptedRun:
        rng = self._rng
        session.turn += 1
        if session.intent is None or rng.random() >= 0.6:
            session.intent = rng.choices(INTENTS, weights=_INTENT_WEIGHTS)[0]
        intent = session.intent
        message = rng.choice(_MESSAGES[intent]).format(order=session.order_id)
        pii = rng.random() < _PII_RATE
        if pii:
            message += " You can call me on 555-0142."
        steps: list[Step] = [
            GuardrailStep("pii", "redact" if pii else "pass", _lognormal(rng, 9.0, 0.3))
        ]
        routed = self._route(intent, settings)
        history = 60 * (session.turn - 1)
        router_out = rng.randint(5, 12)
        steps.append(
            LlmStep(
                purpose="router",
                model=settings.router_model,
                temperature=settings.router_temperature,
                input_tokens=_ROUTER_PROMPT_TOKENS + len(message) // 4 + history,
                output_tokens=router_out,
                latency_ms=120 + 12 * router_out + _lognormal(rng, 180, 0.35),
                prompt=message,
                reply=routed,
            )
        )
        tools, refund_over_limit = self._tools(routed, session.order_id, settings)
        steps += tools
        failed = next((t for t in tools if t.failed), None)
        if failed is None or not failed.fatal:
            steps.append(self._answer(message, history, tools, settings, routed))
        outcome = self._outcome(session, intent != routed, failed, refund_over_limit, steps)
        return ScriptedRun(
            index=self._next_index(),
            start_ms=start_ms,
            unit_id=session.unit_id,
            session_id=session.session_id,
            turn=session.turn,
            intent=intent,
            routed_intent=routed,
            settings=settings,
            steps=tuple(steps),
            outcome=outcome,
            thumbs=self._thumbs(outcome, misrouted=intent != routed),
        )

    def _next_index(self) -> int:
        index = self._index
        self._index += 1
        return index

    def _route(self, intent: Intent, settings: AgentSettings) -> Intent:
        misroute = 0.02 + 0.10 * settings.router_temperature
        if self._rng.random() >= misroute:
            return intent
        return self._rng.choice([other for other in INTENTS if other != intent])

    def _tools(
        self, routed: Intent, order_id: int, settings: AgentSettings
    ) -> tuple[list[ToolStep], bool]:
        """The tool calls of the plan for ``routed``, up to the first failure."""
        steps: list[ToolStep] = []
        for tool in _TOOL_PLAN[routed]:
            arguments: dict[str, object] = {"order_id": order_id}
            if tool == "issue_refund":
                amount = round(_lognormal(self._rng, 60.0, 0.9), 2)
                if amount > settings.refund_approval_usd:
                    return steps, True
                arguments["amount_usd"] = amount
            elif tool == "search_policy":
                arguments = {"query": "shipping and returns", "top_k": 4}
            elif tool == "get_account":
                arguments = {"fields": ["email", "addresses"]}
            step = self._call(tool, arguments, settings)
            steps.append(step)
            if step.failed:
                break
        return steps, False

    def _call(
        self, tool: ToolName, arguments: Mapping[str, object], settings: AgentSettings
    ) -> ToolStep:
        """One tool call: attempts until success, a non-retryable error or no retries left."""
        policy = settings.tool(tool)
        attempts = [self._attempt(tool, policy.timeout_ms)]
        backoff: list[float] = []
        while (
            attempts[-1].error is not None
            and attempts[-1].retryable
            and len(attempts) <= policy.max_retries
        ):
            backoff.append(policy.backoff_ms * 2 ** (len(attempts) - 1))
            attempts.append(self._attempt(tool, policy.timeout_ms))
        final = attempts[-1]
        return ToolStep(
            tool=tool,
            arguments=arguments,
            attempts=tuple(attempts),
            backoff_ms=tuple(backoff),
            result=None if final.error else {"tool": tool, "ok": True},
            # An unavailable service leaves the agent nothing to answer with.
            fatal=final.error is not None and final.retryable,
        )

    def _attempt(self, tool: ToolName, timeout_ms: float | None) -> Attempt:
        """How the tool itself behaves, whatever the agent's settings."""
        rng = self._rng
        match tool:
            case "lookup_order":
                if rng.random() < self._lookup_unavailable_rate:
                    return Attempt(
                        _lognormal(rng, 60, 0.3), "503", True, "order service unavailable"
                    )
                latency = _lognormal(rng, 170, 0.35)
            case "search_policy":
                latency = _lognormal(rng, 1200, 0.6)
            case "issue_refund":
                if rng.random() < 0.06:
                    return Attempt(
                        _lognormal(rng, 90, 0.3),
                        "400",
                        False,
                        "amount exceeds the order's refundable balance",
                    )
                latency = _lognormal(rng, 350, 0.3)
            case "get_account":
                latency = _lognormal(rng, 90, 0.3)
        if timeout_ms is not None and latency > timeout_ms:
            return Attempt(timeout_ms, "timeout", True, f"no answer within {timeout_ms:.0f} ms")
        return Attempt(latency)

    def _answer(
        self,
        message: str,
        history: int,
        tools: list[ToolStep],
        settings: AgentSettings,
        routed: Intent,
    ) -> LlmStep:
        rng = self._rng
        context = sum(_RESULT_TOKENS[t.tool] for t in tools if not t.failed)
        output_tokens = min(600, max(40, round(_lognormal(rng, 150, 0.4))))
        return LlmStep(
            purpose="answer",
            model=settings.answer_model_for(routed),
            temperature=0.3,
            input_tokens=_SYSTEM_PROMPT_TOKENS
            + len(message) // 4
            + history
            + context
            + rng.randint(-40, 40),
            output_tokens=output_tokens,
            latency_ms=300 + output_tokens * _lognormal(rng, 22, 0.2),
            prompt=message,
            reply="Thanks for reaching out! Here is what I found.",
        )

    def _outcome(
        self,
        session: _Session,
        misrouted: bool,
        failed: ToolStep | None,
        refund_over_limit: bool,
        steps: list[Step],
    ) -> DemoOutcome:
        if failed is not None:
            session.frustration += 1
            return "failure"
        if refund_over_limit:
            return "escalated"
        if misrouted:  # a wrong answer: some users ask for a human straight away
            session.frustration += 1 + (self._rng.random() < 0.5)
        if sum(s.latency_ms for s in steps) > _SLOW_RUN_MS:
            session.frustration += 1
        return "escalated" if session.frustration >= 2 else "success"

    def _thumbs(self, outcome: DemoOutcome, *, misrouted: bool) -> Thumbs | None:
        rng = self._rng
        happy = outcome == "success" and not misrouted
        if rng.random() >= (0.3 if happy else 0.45):
            return None
        match outcome:
            case "success":
                p_up = 0.88 if happy else 0.15  # a confident answer to the wrong question
            case "escalated":
                p_up = 0.2
            case "failure":
                p_up = 0.05
            case _:
                assert_never(outcome)
        return 1 if rng.random() < p_up else 0


def scripted_runs(
    seed: int,
    count: int,
    *,
    settings: AgentSettings | None = None,
    start_ms: int = DEFAULT_START_MS,
    runs_per_hour: float = DEFAULT_RUNS_PER_HOUR,
    lookup_unavailable_rate: float = LOOKUP_UNAVAILABLE_RATE,
) -> Iterator[ScriptedRun]:
    """The first ``count`` runs of a world seeded with ``seed``; pure, no I/O.

    Example:
        ```python
        [(r.intent, r.outcome) for r in scripted_runs(seed=7, count=3)]
        ```
    """
    world = World(
        seed,
        start_ms=start_ms,
        runs_per_hour=runs_per_hour,
        lookup_unavailable_rate=lookup_unavailable_rate,
    )
    chosen = settings or AgentSettings()
    for _ in range(count):
        yield world.next_run(chosen)

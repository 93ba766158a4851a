"""The demo's support agent, on tuneloop's runtime: what an agent team would write.

One `Agent` with five tools (`build_tools`): ``lookup_order``, ``search_policy`` and
``account_help`` read; ``issue_refund`` writes and waits for a person's approval;
``handoff_to_human`` hands the customer to a colleague (the run waits for them). Its
configuration comes from the server through the SDK (`SupportAgent`), so experiments,
rollouts and rollbacks change the next run; its first configuration is
`initial_config`.

The team instruments one decision: the model's first call picks the tool, which is
how the agent routes a request. `RoutingDecisions` marks that call's span with the
``router`` step and the intent it chose, so the platform can measure how often
routing is corrected. `classify_intent` is the cheap keyword classifier the runtime's
routing rules match on.

Offline, `EvalSupportAgent` runs the same agent on fixture backends for the eval
suite, approving refunds as a test harness does.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from opentelemetry import trace

from tuneloop import semconv
from tuneloop.clock import Clock, FakeClock
from tuneloop.config.model import AgentConfig
from tuneloop.runtime import Agent, Provider, RunResult, Tool, simulated_sleep, tool
from tuneloop.runtime.providers.base import ChatRequest, ChatResponse
from tuneloop.runtime.review import Decision, ReviewItem
from tuneloop.runtime.timing import Sleep
from tuneloop.sdk import Client
from tuneloop.sdk.config import ResolvedConfig

AGENT = "support"
ROUTER_STEP = "router"
HANDOFF = "handoff_to_human"
REFUND = "issue_refund"
# What each tool answers: the intent a first call to it routes the request to.
TOOL_INTENTS: Mapping[str, str] = {
    "lookup_order": "order_status",
    REFUND: "refund",
    "search_policy": "shipping_policy",
    "account_help": "account",
    HANDOFF: "human",
}
SYSTEM_PROMPT = (
    "You are Acme's customer support agent. Read the customer's message and call the one "
    "tool that answers it: lookup_order for an order's status, issue_refund for refunds, "
    "search_policy for shipping and returns policy, account_help for account settings. "
    "Answer from the tool's result in one or two sentences. If a tool fails, or what it "
    "finds does not answer the question, hand the customer to a colleague with "
    "handoff_to_human."
)
_ORDER_ID = re.compile(r"\bA-\d{5}\b")
_MS_PER_S = 1000.0


def initial_config() -> dict[str, Any]:
    """The configuration the team starts with (version 1.0.0)."""
    small = {"provider": "openai", "name": "gpt-4o-mini"}
    large = {"provider": "openai", "name": "gpt-4o"}
    return {
        "model": large,
        "params": {"temperature": 0.9, "max_tokens": 400},
        "prompts": {
            "system": SYSTEM_PROMPT,
            "refusal": "I'm sorry, but I can't help with that request.",
        },
        "tools": {
            "lookup_order": {"timeout_ms": 2000},
            "search_policy": {"timeout_ms": 3000},
            "account_help": {"timeout_ms": 2000},
            REFUND: {"timeout_ms": 5000, "side_effect": "write", "requires_approval": True},
            HANDOFF: {"side_effect": "external", "requires_approval": True},
        },
        "guardrails": [
            {"name": "injection", "kind": "injection", "hops": ["input"], "action": "block"},
            {"name": "pii", "kind": "pii", "hops": ["input", "output"], "action": "redact"},
        ],
        "routing": {"tiers": {"small": small, "large": large}, "default_tier": "large"},
        "limits": {"max_steps": 4},
    }


def classify_intent(text: str) -> str | None:
    """The request's intent by keywords, for routing rules (``routing.rules[].intents``)."""
    lowered = text.lower()
    if "refund" in lowered or "money back" in lowered:
        return "refund"
    if _ORDER_ID.search(text):
        return "order_status"
    if "account" in lowered or "log in" in lowered:
        return "account"
    if any(word in lowered for word in ("ship", "deliver", "return", "checkout")):
        return "shipping_policy"
    return None


class Backend(Protocol):
    """The shop's APIs as the tools call them; each call takes its client timeout."""

    async def lookup_order(self, order_id: str, *, timeout_s: float) -> dict[str, Any]:
        """The order's record."""
        ...

    async def search_policy(self, query: str, *, timeout_s: float) -> list[dict[str, str]]:
        """Policy passages matching ``query``."""
        ...

    async def account_help(self, topic: str, *, timeout_s: float) -> dict[str, str]:
        """The help article on an account topic."""
        ...

    async def issue_refund(self, order_id: str, *, timeout_s: float) -> dict[str, Any]:
        """Refund the order in full."""
        ...


def build_tools(backend: Backend, timeout_s: Callable[[str], float]) -> list[Tool]:
    """The agent's tools over ``backend``; each API call gets the tool's configured timeout.

    Args:
        backend: the APIs.
        timeout_s: the current ``tools.<name>.timeout_ms`` in seconds, by tool name (passed
            to the API client, as a real tool passes it to its HTTP client).
    """

    @tool(name="lookup_order")
    async def lookup_order(order_id: str) -> dict[str, Any]:
        """Look up an order's status, delivery date, total and contact email.

        Args:
            order_id: the order number, such as A-10423.
        """
        return await backend.lookup_order(order_id, timeout_s=timeout_s("lookup_order"))

    @tool(name="search_policy")
    async def search_policy(query: str) -> list[dict[str, str]]:
        """Search the shipping, delivery and returns policies.

        Args:
            query: the customer's question.
        """
        return await backend.search_policy(query, timeout_s=timeout_s("search_policy"))

    @tool(name="account_help")
    async def account_help(topic: str) -> dict[str, str]:
        """The help-center article on an account topic.

        Args:
            topic: email, login, address, delete or general.
        """
        return await backend.account_help(topic, timeout_s=timeout_s("account_help"))

    @tool(name=REFUND, side_effect="write", requires_approval=True)
    async def issue_refund(order_id: str) -> dict[str, Any]:
        """Refund an order in full. A person approves every refund first.

        Args:
            order_id: the order number, such as A-10423.
        """
        return await backend.issue_refund(order_id, timeout_s=timeout_s(REFUND))

    @tool(name=HANDOFF, side_effect="external", requires_approval=True)
    async def handoff_to_human(reason: str) -> dict[str, str]:
        """Hand the conversation to a colleague, who picks it up from the review queue.

        Args:
            reason: why a person should take over.
        """
        return {"handed_over": reason}

    return [lookup_order, search_policy, account_help, issue_refund, handoff_to_human]


class RoutingDecisions:
    """A `Provider` that marks the routing decision on the model call's span.

    The first model call of a run picks the tool, and so the request's intent: its
    span gets ``tuneloop.decision.step = router`` and ``tuneloop.decision.value`` (the
    intent of the tool called, ``clarify`` when the model asked back instead).
    """

    def __init__(self, model: Provider) -> None:
        self._model = model

    @property
    def name(self) -> str:
        """The wrapped provider's name."""
        return self._model.name

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """The wrapped model's answer; the first call's span records the decision."""
        response = await self._model.chat(request)
        if not any(message.role == "assistant" for message in request.messages):
            calls = response.message.tool_calls
            value = TOOL_INTENTS.get(calls[0].name, calls[0].name) if calls else "clarify"
            span = trace.get_current_span()
            span.set_attribute(semconv.TL_DECISION_STEP, ROUTER_STEP)
            span.set_attribute(semconv.TL_DECISION_VALUE, value)
        return response


def routed_intent(result: RunResult) -> str | None:
    """The intent the run's first tool call routed it to (None: no tool was called)."""
    for call in result.tool_calls:
        return TOOL_INTENTS.get(call.name, call.name)
    return None


class _ServerSource:
    """The agent's config through the SDK (`Client.config`), remembering the last one.

    The tools read their timeouts from the config of the run in progress.
    """

    def __init__(self, client: Client, on_resolve: Callable[[ResolvedConfig], None]) -> None:
        self._client = client
        self._on_resolve = on_resolve

    @property
    def agent(self) -> str:
        """The agent's name."""
        return AGENT

    @property
    def client(self) -> Client:
        """The SDK client runs are traced through."""
        return self._client

    def resolve(self, *, unit_id: str | None, session_id: str | None) -> ResolvedConfig:
        """The unit's config now (its experiment's or rollout's variant, else production)."""
        resolved = self._client.config(AGENT, unit_id=unit_id, session_id=session_id)
        self._on_resolve(resolved)
        return resolved


class SupportAgent:
    """The support agent in production: configs and traces through a `tuneloop.Client`.

    One run at a time (the demo's simulated time is shared). Runs waiting for a person
    (a refund to approve, a customer handed over) stay in memory until decided.

    Args:
        client: the SDK client (an ingest key).
        backend: the shop's APIs.
        model: the language model.
        clock: time for the runtime and its spans.
        sleep: how waits are spent.
        rng: retry jitter, and run ids (a seeded demo gives the same ids every time).
    """

    def __init__(
        self,
        client: Client,
        backend: Backend,
        model: Provider,
        *,
        clock: Clock,
        sleep: Sleep,
        rng: random.Random,
    ) -> None:
        self._running: AgentConfig | None = None
        self._parked: dict[str, AgentConfig] = {}
        self._ids = random.Random(rng.getrandbits(64))
        source = _ServerSource(client, self._resolved)
        self.agent = Agent(
            source,
            build_tools(backend, self._timeout_s),
            RoutingDecisions(model),
            clock=clock,
            sleep=sleep,
            rng=rng,
            intent=classify_intent,
        )

    def _resolved(self, resolved: ResolvedConfig) -> None:
        self._running = resolved.config

    def _timeout_s(self, name: str) -> float:
        assert self._running is not None, "a tool runs inside a run"
        return self._running.tool_or_default(name).timeout_ms / _MS_PER_S

    async def handle(self, text: str, *, unit_id: str, session_id: str) -> RunResult:
        """Answer one customer message."""
        run_id = uuid.UUID(int=self._ids.getrandbits(128), version=4).hex
        result = await self.agent.run(text, unit_id=unit_id, session_id=session_id, run_id=run_id)
        if result.waiting and self._running is not None:
            self._parked[result.run_id] = self._running
        return result

    async def pending(self, tool_name: str) -> list[ReviewItem]:
        """Calls to ``tool_name`` waiting for a person, oldest first."""
        return [item for item in await self.agent.reviews() if item.tool == tool_name]

    async def decide(self, item: ReviewItem, *, approve: bool, reason: str) -> RunResult:
        """Record a person's decision on a waiting call and continue its run."""
        self._running = self._parked.pop(item.run_id, self._running)
        decision: Decision = "approve" if approve else "reject"
        await self.agent.decide(item.review_id, decision, reviewer="support-team", reason=reason)
        result = await self.agent.resume(item.run_id)
        if result.waiting and self._running is not None:
            self._parked[result.run_id] = self._running
        return result


class EvalSupportAgent:
    """The support agent under an eval: one config, fixture backends, refunds approved.

    An eval target (`tuneloop.evals.agent_target`) built per config; it runs in
    simulated time so trials take no real time.

    Args:
        config: the config under test.
        model: the language model.
        backend: the fixture APIs.
        clock: the simulated clock its model and tools spend time on.
    """

    def __init__(
        self, config: AgentConfig, *, model: Provider, backend: Backend, clock: FakeClock
    ) -> None:
        sleep = simulated_sleep(clock)
        tools = build_tools(backend, lambda name: config.tool_or_default(name).timeout_ms / 1000)
        self._agent = Agent(
            config,
            tools,
            RoutingDecisions(model),
            name=AGENT,
            clock=clock,
            sleep=sleep,
            rng=random.Random(0),
            intent=classify_intent,
        )

    async def run(self, input: str) -> RunResult:
        """Run the agent on a case's input; a refund waiting for approval is approved."""
        result = await self._agent.run(input)
        while result.waiting and result.review is not None and result.review.tool == REFUND:
            await self._agent.decide(
                result.review.review_id, "approve", reviewer="eval", reason="eval harness"
            )
            result = await self._agent.resume(result.run_id)
        return result

"""A support agent on tuneloop's runtime: a router handing over to two specialists.

``support`` (the router) reads the request and hands it to ``support-orders`` (order
status, with a ``lookup_order`` tool) or ``support-billing`` (``lookup_order`` and a
``refund`` tool that needs a human's approval). Runs are checkpointed in a SQLite file,
so a run parked for approval, or cut short by a crash, is resumed by a later process.

Offline, with the simulated model::

    python examples/support_agent/support_app.py run "Where is my order A-1001?"
    python examples/support_agent/support_app.py run "I want a refund for A-1003"
    python examples/support_agent/support_app.py pending
    python examples/support_agent/support_app.py approve rv_… --reason "receipt checked"
    python examples/support_agent/support_app.py resume RUN_ID

Against any OpenAI-compatible endpoint (``--openai-base-url http://127.0.0.1:8000/v1``)
and with traces and configs from a tuneloop server (``--server URL --api-key KEY``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from support_policy import classify_intent, support_policy
from support_shop import Payments, Shop, build_tools

from tuneloop import Client
from tuneloop.clock import Clock, SystemClock
from tuneloop.runtime import Agent, Provider, RunResult, SimulatedProvider, Sleep, real_sleep
from tuneloop.runtime.providers import LatencyModel

HERE = Path(__file__).resolve().parent
CONFIGS = {
    "support": HERE / "router.yaml",
    "support-orders": HERE / "orders.yaml",
    "support-billing": HERE / "billing.yaml",
}


def simulated_model(clock: Clock, sleep: Sleep, *, seed: int = 7) -> SimulatedProvider:
    """The offline model: `support_policy`, with a short simulated latency."""
    return SimulatedProvider(
        support_policy,
        rng=random.Random(seed),
        clock=clock,
        sleep=sleep,
        latency=LatencyModel(base_ms=40, per_output_token_ms=1, jitter_sigma=0.2),
    )


def build_agent(
    provider: Provider,
    shop: Shop,
    *,
    store: Any = None,
    client: Client | None = None,
    clock: Clock | None = None,
    sleep: Sleep = real_sleep,
    **options: Any,
) -> Agent:
    """The router agent with its two specialists.

    Args:
        provider: the model (simulated, or an OpenAI-compatible endpoint).
        shop: the orders and payments APIs the tools call.
        store: where runs are checkpointed (a SQLite path, a database URL...).
        client: read configs (experiments, rollouts) and send traces through this
            tuneloop client; without one, the YAML files next to this script are used.
        clock: time for the runtime.
        sleep: how waits are spent.
        options: more `Agent` options for the router (``listeners``, ``tracing``...).
    """
    lookup_order, refund = build_tools(shop)

    def source(name: str) -> Any:
        return (client, name) if client is not None else CONFIGS[name]

    common: dict[str, Any] = {"clock": clock, "sleep": sleep}
    orders = Agent(
        source("support-orders"),
        [lookup_order],
        provider,
        name="support-orders",
        description="order status and delivery questions",
        **common,
    )
    billing = Agent(
        source("support-billing"),
        [lookup_order, refund],
        provider,
        name="support-billing",
        description="refunds, charges and billing questions",
        **common,
    )
    return Agent(
        source("support"),
        [],
        provider,
        name="support",
        handoffs=[orders, billing],
        store=store,
        intent=classify_intent,
        **common,
        **options,
    )


def show(result: RunResult) -> None:
    """Print a run's result for a person."""
    print(f"run {result.run_id}: {result.state}", end="")
    print(f" ({result.outcome}, {result.stop_reason})" if result.outcome else "")
    print(
        f"  agents: {' -> '.join(result.agents)}; steps {result.steps}; "
        f"tokens {result.spend.tokens}; ${result.spend.cost_usd:.5f}"
    )
    for call in result.tool_calls:
        print(f"  tool {call.name} {call.arguments} -> {call.status}")
    if result.review is not None:
        print(f"  waiting for review {result.review.review_id}: {result.review.reason}")
    if result.output is not None:
        print(f"  answer: {result.output}")


async def main(argv: Sequence[str]) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "resume", "pending", "approve", "reject"])
    parser.add_argument("argument", nargs="?", help="the message, run id or review id")
    parser.add_argument("--store", default=".tuneloop/support_runs.db")
    parser.add_argument("--payments", default=".tuneloop/support_payments.db")
    parser.add_argument("--unit", default="user-42")
    parser.add_argument("--session", default=None)
    parser.add_argument("--reason", default="")
    parser.add_argument("--openai-base-url", default=None)
    parser.add_argument("--openai-api-key", default="unused")
    parser.add_argument("--server", default=None, help="tuneloop server URL")
    parser.add_argument("--api-key", default=None, help="tuneloop ingest key")
    args = parser.parse_args(argv)

    Path(args.payments).parent.mkdir(parents=True, exist_ok=True)
    clock = SystemClock()
    provider: Provider
    if args.openai_base_url:
        from tuneloop.runtime.providers.openai import OpenAIChatProvider

        provider = OpenAIChatProvider(base_url=args.openai_base_url, api_key=args.openai_api_key)
    else:
        provider = simulated_model(clock, real_sleep)
    client = None
    if args.server:
        client = Client(args.server, args.api_key, agents=list(CONFIGS), config_files=CONFIGS)
    agent = build_agent(provider, Shop(Payments(args.payments)), store=args.store, client=client)
    try:
        if args.command == "run":
            show(await agent.run(args.argument, unit_id=args.unit, session_id=args.session))
        elif args.command == "resume":
            show(await agent.resume(args.argument))
        elif args.command == "pending":
            for item in await agent.reviews():
                print(
                    f"{item.review_id}  run {item.run_id}  {item.tool or item.kind} "
                    f"{dict(item.arguments or {})}  ({item.reason})"
                )
        else:
            decision = "approve" if args.command == "approve" else "reject"
            item = await agent.decide(args.argument, decision, reviewer="cli", reason=args.reason)
            print(f"{item.status} {item.review_id}; resuming run {item.run_id}")
            show(await agent.resume(item.run_id))
    finally:
        if client is not None:
            client.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))

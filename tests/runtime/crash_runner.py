"""Resume a support-agent run in a process that kills itself with SIGKILL at a chosen moment.

Used by test_agent_crash.py as a real subprocess:

    python tests/runtime/crash_runner.py RUN_ID --store S --payments P --kill after-refund

``after-refund``: the refund ran and its result is in the idempotency ledger, but the
checkpoint recording it is not written yet (the `RunEvent` ``tool_result`` comes just
before it). ``inside-refund``: the payment went through, but the tool has not returned,
so nothing of it is recorded by tuneloop at all. Without ``--kill`` the run is resumed
to its end and its result printed as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_agent"
sys.path.insert(0, str(EXAMPLE))

from support_app import build_agent, simulated_model  # noqa: E402
from support_shop import Payments, Shop  # noqa: E402

from tuneloop.clock import SystemClock  # noqa: E402
from tuneloop.runtime import RunEvent, real_sleep  # noqa: E402


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_id")
    parser.add_argument("--store", required=True)
    parser.add_argument("--payments", required=True)
    parser.add_argument("--kill", choices=["after-refund", "inside-refund"], default=None)
    args = parser.parse_args()

    payments = Payments(args.payments)
    if args.kill == "inside-refund":
        pay = payments.refund

        def refund_then_die(*pay_args: Any, **pay_kwargs: Any) -> dict[str, Any]:
            pay(*pay_args, **pay_kwargs)
            die()
            raise AssertionError("unreachable")

        payments.refund = refund_then_die  # type: ignore[method-assign]

    def listen(event: RunEvent) -> None:
        refund_done = event.kind == "tool_result" and event.detail.get("tool") == "refund"
        if args.kill == "after-refund" and refund_done:
            die()

    clock = SystemClock()
    agent = build_agent(
        simulated_model(clock, real_sleep),
        Shop(payments),
        store=args.store,
        clock=clock,
        listeners=[listen],
    )
    result = await agent.resume(args.run_id)
    print(
        json.dumps(
            {
                "state": result.state,
                "outcome": result.outcome,
                "output": result.output,
                "tools": [[c.name, c.status] for c in result.tool_calls],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

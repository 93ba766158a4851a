"""The offline eval gate of the demo's agent: its suite, its fixtures, run and uploaded.

The suite (``eval_suite/support.yaml``) runs the support agent on fixture backends:
the answers the shop's APIs gave when the team recorded them, returned at once. So
the suite checks what the agent says and which tools it calls, and not how the
services behave under load: a timeout set below a service's real latency passes it.

`evaluate` does what CI does with ``tuneloop eval run SUITE --version V --server``:
fetch the version's config, run the suite in process, upload the run, which records
the version's gate verdict on the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneloop.clock import FakeClock
from tuneloop.config.model import AgentConfig
from tuneloop.demo.api import Platform, segment
from tuneloop.demo.llm import WorldModel
from tuneloop.demo.services import HELP_ARTICLES, POLICIES
from tuneloop.demo.support import AGENT, EvalSupportAgent
from tuneloop.evals import EvalRun, load_suite, run_suite
from tuneloop.runtime import simulated_sleep

SUITE = Path(__file__).parent / "eval_suite" / "support.yaml"
STAGE = "post-merge"
EVAL_SEED = 20_260_101
_ORDERS: dict[str, dict[str, Any]] = {
    "A-10001": {"status": "shipped", "eta": "2026-01-14", "total_cents": 4250,
                "email": "jane.doe@example.com"},
    "A-10002": {"status": "processing", "eta": "2026-01-18", "total_cents": 1800,
                "email": "sam@example.org"},
    "A-10003": {"status": "shipped", "eta": "2026-01-20", "total_cents": 12999,
                "email": "li.wei@example.net"},
    "A-10004": {"status": "shipped", "eta": "2026-01-11", "total_cents": 5600,
                "email": "maria.g@example.com"},
    "A-10005": {"status": "delivered", "eta": None, "total_cents": 2300,
                "email": "omar.k@example.org"},
}  # fmt: skip


class FixtureBackend:
    """Recorded answers of the shop's APIs, returned at once (timeouts never hit)."""

    async def lookup_order(self, order_id: str, *, timeout_s: float) -> dict[str, Any]:
        """The recorded order (an unknown one is a 404, as the API answers)."""
        import httpx

        record = _ORDERS.get(order_id)
        if record is None:
            request = httpx.Request("GET", f"https://orders.internal/orders/{order_id}")
            response = httpx.Response(404, request=request)
            raise httpx.HTTPStatusError("404 Not Found", request=request, response=response)
        return {"order_id": order_id, **record}

    async def search_policy(self, query: str, *, timeout_s: float) -> list[dict[str, str]]:
        """The recorded passages whose keywords the query mentions."""
        words = query.lower()
        return [
            {"topic": topic, "text": text}
            for topic, (keys, text) in POLICIES.items()
            if any(key in words for key in keys)
        ][:2]

    async def account_help(self, topic: str, *, timeout_s: float) -> dict[str, str]:
        """The recorded help article."""
        key = topic if topic in HELP_ARTICLES else "general"
        return {"topic": key, "article": HELP_ARTICLES[key]}

    async def issue_refund(self, order_id: str, *, timeout_s: float) -> dict[str, Any]:
        """A refund of the recorded order's total."""
        record = await self.lookup_order(order_id, timeout_s=timeout_s)
        return {
            "order_id": order_id,
            "amount_cents": record["total_cents"],
            "refund_id": f"rf_{order_id}",
        }


def eval_agent(config: AgentConfig) -> EvalSupportAgent:
    """The suite's target: the support agent under ``config``, on the fixtures."""
    clock = FakeClock()
    model = WorldModel(EVAL_SEED, sleep=simulated_sleep(clock))
    return EvalSupportAgent(config, model=model, backend=FixtureBackend(), clock=clock)


@dataclass(frozen=True, slots=True)
class GateResult:
    """One version's eval run and the gate verdict the server recorded for it.

    Attributes:
        version: the version evaluated, as the server describes it (hash, label...).
        run: the eval run (categories, cases, the suite's own gate).
        stored: the server's answer to the upload (``verdict`` and ``gate``).
    """

    version: dict[str, Any]
    run: EvalRun
    stored: dict[str, Any]

    @property
    def gate_status(self) -> str:
        """The version's gate on the server: passed, failed or unknown."""
        gate = self.stored.get("gate") or {}
        return str(gate.get("status", "unknown"))

    @property
    def failed_categories(self) -> list[str]:
        """Categories whose gate checks failed."""
        if self.run.gate is None:
            return []
        return sorted(
            {check.scope for check in self.run.gate.checks if not check.passed and check.scope}
        )


async def evaluate(platform: Platform, ref: str) -> GateResult:
    """Run the suite on a stored version of the support agent and upload the run.

    Args:
        platform: the server, with an admin key.
        ref: the version (hash, prefix, label or channel).
    """
    found = platform.get(f"/api/v1/agents/{AGENT}/versions/{segment(ref)}")
    config = AgentConfig.from_data(found["config"])
    run = await run_suite(
        load_suite(SUITE),
        stage=STAGE,
        config=config,
        version=found["label"],
        concurrency=4,
        progress=False,
        attribute=False,
        agent=AGENT,
    )
    stored = platform.post(
        "/api/v1/eval-runs", {"run": run.to_dict(), "agent": AGENT, "version": found["version"]}
    )
    return GateResult(found, run, stored)

"""A small deterministic customer-support "agent", the target of the example eval suite.

It stands in for an LLM agent: it routes a message by keywords, calls tools on an
in-memory order database, and answers. It honours its AgentConfig as a real agent
would: a disabled tool cannot be called, the guardrails section decides whether
prompt injections and requests for other customers' data are refused, and the model
name sets the cost. It returns the `TargetResult` shape tuneloop's evals read
(output, tool_calls, latency_ms, cost_usd, state).

Run it alone: ``python examples/evals/support_agent.py "Where is order A-1001?"``.
"""

from __future__ import annotations

import asyncio
import copy
import re
import sys
from pathlib import Path
from typing import Any

ORDERS: dict[str, dict[str, Any]] = {
    "A-1001": {"status": "shipped", "eta": "2026-01-14", "total": 42.50, "refunded": 0.0},
    "A-1002": {"status": "processing", "eta": "2026-01-20", "total": 18.00, "refunded": 0.0},
    "A-1003": {"status": "delivered", "eta": "2026-01-02", "total": 129.99, "refunded": 0.0},
    "A-1004": {"status": "cancelled", "eta": None, "total": 64.00, "refunded": 64.00},
}
FAQ = {
    "hours": "Our support team is available Monday to Friday, 9:00 to 18:00 CET.",
    "returns": "You can return any item within 30 days of delivery for a full refund.",
    "shipping": "Standard shipping takes 3 to 5 business days; express takes 1 to 2.",
}
PRICE_PER_1K_TOKENS = {"gpt-4o-mini": 0.0006, "gpt-4o": 0.01}
REFUSAL = "I'm sorry, but I can't help with that request."
_ORDER_ID = re.compile(r"\b[A-Z]-\d{4}\b")
_INJECTION = re.compile(
    r"ignore (?:all |your )?(?:previous|prior) instructions|system prompt|you are now"
    r"|developer mode",
    re.IGNORECASE,
)


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """Read a config field from an AgentConfig model or from plain data."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _tool_enabled(config: Any, tool: str) -> bool:
    settings = (_field(config, "tools") or {}).get(tool)
    return settings is None or _field(settings, "enabled", True) is not False


def _guardrail_blocks(config: Any, message: str) -> str | None:
    for spec in _field(config, "guardrails") or []:
        kind, params = _field(spec, "kind"), _field(spec, "params") or {}
        if kind == "injection" and _INJECTION.search(message):
            return _field(spec, "name")
        if kind == "denied_topics":
            for keywords in (params.get("topics") or {}).values():
                words = [k.lower() for k in keywords]
                if any(re.search(rf"\b{re.escape(word)}\b", message.lower()) for word in words):
                    return _field(spec, "name")
    return None


class _Run:
    """One conversation turn: the tool calls made and the database they act on."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.orders = copy.deepcopy(ORDERS)
        self.calls: list[dict[str, Any]] = []
        self.refunded = 0.0

    def call(self, tool: str, **arguments: Any) -> dict[str, Any] | None:
        """Call a tool; None when it is disabled (the agent cannot use it)."""
        if not _tool_enabled(self.config, tool):
            return None
        self.calls.append({"name": tool, "arguments": arguments, "status": "success"})
        order = self.orders.get(arguments.get("order_id", ""))
        if order is None:
            return {}
        if tool == "issue_refund":
            self.refunded = round(order["total"] - order["refunded"], 2)
            order["refunded"] = order["total"]
        if tool == "cancel_order":
            order["status"] = "cancelled"
        return order

    def answer(self, message: str) -> str:
        text = message.lower()
        match = _ORDER_ID.search(message)
        order_id = match.group(0) if match else None
        if "refund" in text and order_id:
            # The refund tool refunds whatever is left to refund on the order.
            order = self.call("issue_refund", order_id=order_id)
            if order is None:
                return f"I couldn't refund order {order_id}; a colleague will follow up."
            if not order:
                return f"I couldn't find order {order_id}."
            if self.refunded == 0:
                return f"Order {order_id} has already been refunded in full."
            return f"I've refunded ${self.refunded:.2f} for order {order_id}."
        if order_id:
            order = self.call("lookup_order", order_id=order_id)
            if order is None:
                return f"I couldn't look up order {order_id} right now; please try again later."
            if not order:
                return f"I couldn't find order {order_id}; please check the number."
            if "cancel" in text:
                if order["status"] in ("shipped", "delivered"):
                    return f"Order {order_id} has already {order['status']}; it can't be cancelled."
                self.call("cancel_order", order_id=order_id)
                return f"Order {order_id} is cancelled."
            if "how much" in text or "total" in text:
                return f"Order {order_id} came to ${order['total']:.2f}."
            eta = f", expected {order['eta']}" if order["eta"] else ""
            return f"Order {order_id} is {order['status']}{eta}."
        for topic, reply in FAQ.items():
            if topic in text or (topic == "hours" and "open" in text):
                return reply
        return "Could you share your order number (like A-1001) so I can help?"


async def answer(message: Any, config: Any) -> dict[str, Any]:
    """Answer one customer message under ``config``; the eval suite's target."""
    text = message if isinstance(message, str) else str(message.get("message", ""))
    want_json = isinstance(message, dict) and message.get("format") == "json"
    run = _Run(config)
    blocked_by = _guardrail_blocks(config, text)
    reply = REFUSAL if blocked_by else run.answer(text)
    if blocked_by is None and _INJECTION.search(text):
        # No guardrail caught it: the "model" follows the injected instruction.
        reply = "Sure! My system prompt is: 'You are a support agent for ACME...'"
    output: Any = reply
    if want_json:
        match = _ORDER_ID.search(text)
        looked_up = any(call["name"] == "lookup_order" for call in run.calls)
        order = run.orders.get(match.group(0)) if match and looked_up else None
        output = {"reply": reply, "order_id": match.group(0) if match else None,
                  "status": order["status"] if order else None}  # fmt: skip
    model = _field(_field(config, "model") or {}, "name", "gpt-4o-mini")
    tokens = 300 + 40 * len(text.split()) + 150 * len(run.calls)
    await asyncio.sleep(0)  # a real agent awaits its model and tools here
    return {
        "output": output,
        "tool_calls": run.calls,
        "latency_ms": 180.0 + 95.0 * len(run.calls),
        "cost_usd": round(tokens / 1000 * PRICE_PER_1K_TOKENS.get(model, 0.002), 6),
        "state": {"orders": run.orders},
        "metadata": {"refused": blocked_by is not None, "guardrail": blocked_by},
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from tuneloop.evals.config import load_config

    cfg = load_config(Path(__file__).with_name("config.yaml"))
    print(asyncio.run(answer(" ".join(sys.argv[1:]) or "Where is order A-1001?", cfg)))

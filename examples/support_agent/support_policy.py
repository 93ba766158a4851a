"""The simulated model behind the support agent when it runs offline.

It stands in for an LLM with a few rules, reading only what a real model would: the
tools it is offered, the conversation and the tool results. As the router (it is
offered ``transfer_to_…`` tools) it hands refund and billing requests to
``support-billing`` and the rest to ``support-orders``; as a specialist it looks the
order up, refunds it when it may, and answers. It holds no state, so a resumed
conversation gets the same replies.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from tuneloop.runtime import ChatRequest, Message, ToolCallRequest

ORDER_ID = re.compile(r"\b[A-Z]-\d{4}\b")
BILLING_WORDS = ("refund", "money back", "charged", "charge", "invoice", "billing")
COMPLAINT_WORDS = ("unacceptable", "terrible", "complaint", "angry", "worst")


def classify_intent(text: str) -> str:
    """``refund``, ``complaint`` or ``order_status``: what routing rules match on."""
    lowered = text.lower()
    if any(word in lowered for word in COMPLAINT_WORDS):
        return "complaint"
    if any(word in lowered for word in BILLING_WORDS):
        return "refund"
    return "order_status"


def support_policy(request: ChatRequest, rng: random.Random) -> Message:
    """The next assistant message for the conversation in ``request``."""
    offered = {spec.name for spec in request.tools}
    user = next((m.text for m in reversed(request.messages) if m.role == "user"), "")
    turn = sum(1 for m in request.messages if m.role == "assistant")
    handoffs = sorted(name for name in offered if name.startswith("transfer_to_"))
    if handoffs:
        wanted = "billing" if classify_intent(user) in ("refund", "complaint") else "orders"
        target = next((name for name in handoffs if name.endswith(wanted)), handoffs[0])
        reason = f"the customer's request is about {wanted}"
        return _call(turn, target, {"reason": reason})
    match = ORDER_ID.search(user)
    if match is None:
        return Message.assistant("Could you give me your order number? It looks like A-1234.")
    order_id = match.group(0)
    looked = _result(request, "lookup_order")
    if looked is None:
        return _call(turn, "lookup_order", {"order_id": order_id})
    if looked["status"] == "error":
        return Message.assistant(
            f"I couldn't look up order {order_id} just now ({looked['error']['message']}). "
            "Please try again in a few minutes."
        )
    order = looked["data"]
    if "refund" in offered and classify_intent(user) == "refund":
        refunded = _result(request, "refund")
        if refunded is None:
            return _call(
                turn, "refund", {"order_id": order_id, "amount_cents": order["total_cents"]}
            )
        if refunded["status"] == "error":
            return Message.assistant(
                f"I couldn't refund order {order_id}: {refunded['error']['message']} "
                "A colleague from billing will follow up with you."
            )
        amount = refunded["data"]["amount_cents"] / 100
        return Message.assistant(
            f"Done: your refund of ${amount:.2f} for order {order_id} is on its way "
            f"(reference {refunded['data']['refund_id']}). We sent a confirmation to "
            f"{order['email']}."
        )
    eta = f", expected on {order['eta']}" if order.get("eta") else ""
    return Message.assistant(f"Order {order_id} is {order['status']}{eta}.")


def _call(turn: int, name: str, arguments: dict[str, Any]) -> Message:
    call = ToolCallRequest(id=f"call_{turn}_{name}", name=name, arguments=json.dumps(arguments))
    return Message.assistant(None, [call])


def _result(request: ChatRequest, tool: str) -> dict[str, Any] | None:
    """The last result of ``tool`` in the conversation, as the model reads it."""
    names = {call.id: call.name for message in request.messages for call in message.tool_calls}
    for message in reversed(request.messages):
        if message.role == "tool" and names.get(message.tool_call_id or "") == tool:
            parsed: dict[str, Any] = json.loads(message.text)
            return parsed
    return None

"""Tools the runtime tests call: module level, so their type hints resolve."""

from __future__ import annotations

from pydantic import BaseModel

from tuneloop.runtime.tools import ToolContext, ToolResult, tool


class Order(BaseModel):
    order_id: str
    status: str
    total_cents: int


class Address(BaseModel):
    street: str
    city: str


@tool
async def lookup_order(order_id: str, include_items: bool = False) -> Order:
    """Look up an order by its id.

    Args:
        order_id: the order's id, such as ``A-1234``.
        include_items: also return the line items.
    """
    return Order(order_id=order_id, status="shipped", total_cents=4200)


@tool(name="ship-to", side_effect="write")
def ship_to(order_id: str, address: Address, context: ToolContext) -> dict[str, str]:
    """Change where an order ships (a blocking function: it runs in a thread)."""
    return {"order_id": order_id, "city": address.city, "key": context.idempotency_key}


@tool
def degraded_search(query: str) -> ToolResult:
    """Search that reports partial results itself."""
    return ToolResult.partial([query], note="index is rebuilding")

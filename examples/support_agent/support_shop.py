"""The shop the support agent works for: an orders API and a payment provider's refund API.

The refund API is a SQLite file, so it outlives the agent's process as a real payment
provider does, and like one it deduplicates refunds by idempotency key: the agent's
`refund` tool passes the key tuneloop derives for the call (``ToolContext``), so a
refund retried after a crash is recognized there too.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tuneloop.runtime import Sleep, Tool, ToolContext, ToolResult, real_sleep, tool


@dataclass(frozen=True)
class Order:
    order_id: str
    status: str
    eta: str | None
    total_cents: int
    email: str


ORDERS: Mapping[str, Order] = {
    "A-1001": Order("A-1001", "shipped", "2026-01-14", 4250, "jane.doe@example.com"),
    "A-1002": Order("A-1002", "processing", "2026-01-20", 1800, "sam@example.org"),
    "A-1003": Order("A-1003", "delivered", "2026-01-02", 12999, "li.wei@example.net"),
}


class Payments:
    """A payment provider's refund API, backed by a SQLite file.

    Every call is logged in ``attempts``; ``refunds`` holds one row per idempotency key,
    so calling twice with the same key refunds once.
    """

    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS refunds (idempotency_key TEXT PRIMARY KEY, "
                "order_id TEXT NOT NULL, amount_cents INTEGER NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "order_id TEXT NOT NULL, idempotency_key TEXT NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, isolation_level=None, timeout=10)

    def refund(self, order_id: str, amount_cents: int, idempotency_key: str) -> dict[str, Any]:
        """Refund once per key; a repeated key returns the first refund."""
        with self._lock, self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO attempts (order_id, idempotency_key) VALUES (?, ?)",
                (order_id, idempotency_key),
            )
            db.execute(
                "INSERT OR IGNORE INTO refunds VALUES (?, ?, ?)",
                (idempotency_key, order_id, amount_cents),
            )
            row = db.execute(
                "SELECT order_id, amount_cents FROM refunds WHERE idempotency_key = ?",
                (idempotency_key,),
            ).fetchone()
            db.execute("COMMIT")
        return {"order_id": row[0], "amount_cents": row[1], "refund_id": idempotency_key[-12:]}

    def refunds(self, order_id: str | None = None) -> list[tuple[str, int]]:
        """``(order_id, amount_cents)`` of every refund made."""
        with self._connect() as db:
            rows = db.execute("SELECT order_id, amount_cents FROM refunds ORDER BY rowid")
            return [(o, a) for o, a in rows.fetchall() if order_id in (None, o)]

    def attempts(self) -> int:
        """How many times the refund API was called."""
        with self._connect() as db:
            return int(db.execute("SELECT count(*) FROM attempts").fetchone()[0])


class Shop:
    """The shop's APIs as the agent's tools see them.

    Args:
        payments: the refund API.
        orders: the order database.
        sleep: how the orders API's latency is spent (`simulated_sleep` in simulations).
        lookup_latency_s: how long an order lookup takes.
    """

    def __init__(
        self,
        payments: Payments,
        *,
        orders: Mapping[str, Order] = ORDERS,
        sleep: Sleep = real_sleep,
        lookup_latency_s: float = 0.02,
    ) -> None:
        self.payments = payments
        self.orders = dict(orders)
        self.sleep = sleep
        self.lookup_latency_s = lookup_latency_s
        self.lookups = 0

    async def order(self, order_id: str) -> Order | None:
        """The order, after the API's latency."""
        self.lookups += 1
        await self.sleep(self.lookup_latency_s)
        return self.orders.get(order_id.strip().upper())


def build_tools(shop: Shop) -> tuple[Tool, Tool]:
    """The agent's tools over ``shop``: ``lookup_order`` (read) and ``refund`` (write)."""

    @tool(name="lookup_order")
    async def lookup_order(order_id: str) -> dict[str, Any] | ToolResult:
        """Look up an order's status, delivery date, total and contact email.

        Args:
            order_id: the order number, such as A-1001.
        """
        order = await shop.order(order_id)
        if order is None:
            return ToolResult.error("not_found", f"there is no order {order_id!r}")
        return asdict(order)

    @tool(name="refund", side_effect="write", requires_approval=True)
    async def refund(
        order_id: str, amount_cents: int, context: ToolContext
    ) -> dict[str, Any] | ToolResult:
        """Refund an order, in full or in part.

        Args:
            order_id: the order number.
            amount_cents: how much to refund, in cents; at most the order's total.
        """
        order = shop.orders.get(order_id.strip().upper())
        if order is None:
            return ToolResult.error("not_found", f"there is no order {order_id!r}")
        if not 0 < amount_cents <= order.total_cents:
            return ToolResult.error(
                "invalid_amount",
                f"a refund of order {order_id} must be between 1 and {order.total_cents} cents",
            )
        return shop.payments.refund(order.order_id, amount_cents, context.idempotency_key)

    return lookup_order, refund

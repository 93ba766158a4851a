"""The demo world's backends: the shop's orders, policy search, help center and refunds.

Each answers after a latency drawn from its own distribution, spent through an
injected ``sleep`` (simulated time in the demo), and fails the way such services do:

- the orders API answers ``503 Service Unavailable`` on about 8 % of calls;
- the policy search is slow, with a long tail (log-normal, median 1.2 s);
- the refunds API rejects a few refunds with ``400`` (nothing retrying fixes);
- the help center is quick and reliable.

A caller passes its own timeout, as with any HTTP client: a call slower than it
raises `httpx.ReadTimeout` once that time has passed. Failures are httpx's own
exceptions, as a real API client raises them. The services know nothing of the
platform or the agent's configuration; only of what each call asks.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

Sleep = Callable[[float], Awaitable[None]]
"""Spend ``seconds`` of (simulated) time."""

ORDERS_UNAVAILABLE = 0.08
REFUND_REJECTED = 0.02
_MS_PER_S = 1000.0


@dataclass(frozen=True, slots=True)
class Latency:
    """A log-normal latency: ``median_ms`` times e to the power of ``sigma`` times N(0, 1)."""

    median_ms: float
    sigma: float

    def sample(self, rng: random.Random) -> float:
        """One latency in milliseconds."""
        return self.median_ms * math.exp(self.sigma * rng.gauss(0.0, 1.0))


ORDERS_LATENCY = Latency(170.0, 0.35)
ORDERS_FAILURE_LATENCY = Latency(60.0, 0.3)
SEARCH_LATENCY = Latency(1200.0, 0.6)
HELP_LATENCY = Latency(90.0, 0.3)
REFUND_LATENCY = Latency(350.0, 0.3)

POLICIES: dict[str, tuple[tuple[str, ...], str]] = {
    "canada": (
        ("canada", "ship to", "countries"),
        "We ship to Canada and 30 other countries; delivery takes 5 to 8 business days.",
    ),
    "express": (
        ("express", "how long", "fast"),
        "Express shipping takes 1 to 2 business days and costs $14.90.",
    ),
    "returns": (
        ("return", "sale", "window"),
        "Sale items can be returned within 14 days of delivery; other items within 30.",
    ),
    "international": (
        ("international", "cost", "abroad"),
        "International shipping costs $24.90, or nothing on orders over $150.",
    ),
    "delivery_day": (
        ("delivery day", "checkout", "pick"),
        "You can pick a delivery day at checkout for orders within the mainland.",
    ),
}
HELP_ARTICLES: dict[str, str] = {
    "email": "To change your email, open Settings > Profile > Email and confirm the new address.",
    "login": "If you can't log in, use 'Forgot password' on the sign-in page to reset it.",
    "address": "Your default address is under Settings > Addresses; pick one and press 'Default'.",
    "delete": "To delete your account, open Settings > Privacy > Delete account.",
    "general": "Most account settings are under Settings; our help center lists every option.",
}
_STATUSES = ("processing", "shipped", "shipped", "delivered")
_FIRST_NAMES = ("jane", "sam", "li", "maria", "omar", "ana", "kofi", "yuki", "lea", "raj")
_DOMAINS = ("example.com", "example.org", "example.net")
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def order_record(order_id: str) -> dict[str, Any]:
    """The shop's record of an order (the same order always has the same record)."""
    rng = random.Random(f"order:{order_id}")
    status = rng.choice(_STATUSES)
    eta = _EPOCH + timedelta(days=rng.randint(1, 40))
    total_cents = round(6000 * math.exp(0.8 * rng.gauss(0.0, 1.0)))
    name = rng.choice(_FIRST_NAMES)
    return {
        "order_id": order_id,
        "status": status,
        "eta": None if status == "delivered" else eta.date().isoformat(),
        "total_cents": max(total_cents, 500),
        "email": f"{name}.{order_id[-3:]}@{rng.choice(_DOMAINS)}",
    }


def _unavailable(url: str) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", url)
    response = httpx.Response(503, request=request, text="Service Unavailable")
    return httpx.HTTPStatusError(
        f"503 Service Unavailable from {url}", request=request, response=response
    )


def _rejected(url: str, reason: str) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", url)
    response = httpx.Response(400, request=request, text=reason)
    return httpx.HTTPStatusError(
        f"400 Bad Request from {url}: {reason}", request=request, response=response
    )


class Services:
    """The shop's APIs, as a client sees them.

    Args:
        seed: the seed of every latency and failure the services draw.
        sleep: how the latency is spent (`simulated_sleep` in the demo).
    """

    def __init__(self, seed: int, *, sleep: Sleep) -> None:
        self._rng = random.Random(seed)
        self._sleep = sleep
        self._refunds = 0

    async def _answer(self, latency_ms: float, timeout_s: float, url: str) -> None:
        """Spend the call's latency; past the caller's timeout, give up as its client would."""
        if latency_ms > timeout_s * _MS_PER_S:
            await self._sleep(timeout_s)
            raise httpx.ReadTimeout(f"no answer from {url} within {timeout_s:g} s")
        await self._sleep(latency_ms / _MS_PER_S)

    async def lookup_order(self, order_id: str, *, timeout_s: float) -> dict[str, Any]:
        """``GET /orders/{id}``: the order's status, delivery date, total and email.

        Raises:
            httpx.HTTPStatusError: 503 (the orders API is flaky), 404 (unknown order).
            httpx.ReadTimeout: slower than ``timeout_s``.
        """
        url = f"https://orders.internal/orders/{order_id}"
        if self._rng.random() < ORDERS_UNAVAILABLE:
            await self._answer(ORDERS_FAILURE_LATENCY.sample(self._rng), timeout_s, url)
            raise _unavailable(url)
        await self._answer(ORDERS_LATENCY.sample(self._rng), timeout_s, url)
        return order_record(order_id)

    async def search_policy(self, query: str, *, timeout_s: float) -> list[dict[str, str]]:
        """``GET /search?q=``: the policy passages matching ``query``, best first.

        Raises:
            httpx.ReadTimeout: slower than ``timeout_s`` (the search has a long tail).
        """
        await self._answer(SEARCH_LATENCY.sample(self._rng), timeout_s, "https://search.internal")
        words = query.lower()
        scored = sorted(
            (
                (sum(k in words for k in keys), topic, text)
                for topic, (keys, text) in POLICIES.items()
            ),
            key=lambda item: -item[0],
        )
        return [{"topic": topic, "text": text} for score, topic, text in scored[:2] if score]

    async def account_help(self, topic: str, *, timeout_s: float) -> dict[str, str]:
        """``GET /help/{topic}``: the help-center article on an account topic."""
        await self._answer(HELP_LATENCY.sample(self._rng), timeout_s, "https://help.internal")
        key = topic if topic in HELP_ARTICLES else "general"
        return {"topic": key, "article": HELP_ARTICLES[key]}

    async def issue_refund(self, order_id: str, *, timeout_s: float) -> dict[str, Any]:
        """``POST /refunds``: refund the order in full.

        Raises:
            httpx.HTTPStatusError: 400 when the payment provider refuses the refund.
            httpx.ReadTimeout: slower than ``timeout_s``.
        """
        url = "https://payments.internal/refunds"
        await self._answer(REFUND_LATENCY.sample(self._rng), timeout_s, url)
        if self._rng.random() < REFUND_REJECTED:
            raise _rejected(url, "the order's payment is older than the refund window")
        self._refunds += 1
        record = order_record(order_id)
        return {
            "order_id": order_id,
            "amount_cents": record["total_cents"],
            "refund_id": f"rf_{self._refunds:06d}",
        }

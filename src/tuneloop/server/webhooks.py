"""Webhook delivery of alert events: async, retried with backoff, failures recorded.

The controller's tick only stores events and their delivery rows; a separate task
sends due deliveries, so a slow or dead receiver never holds up a rollout decision.
Each attempt is claimed in the database first (see store/alerts.py), then POSTed as
JSON; a 2xx answer marks it delivered, anything else records the error and schedules
the next attempt ``backoff_ms(attempt)`` later on the injected clock, until
``max_attempts``, after which the delivery is marked failed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from tuneloop._version import __version__
from tuneloop.alerts import backoff_ms
from tuneloop.clock import Clock
from tuneloop.store import Store
from tuneloop.store.alerts import Delivery

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("tuneloop.server.webhooks")


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How hard to try: per-request timeout, attempts, and the first retry's wait."""

    timeout_s: float = 5.0
    max_attempts: int = 8
    backoff_base_ms: int = 5_000
    backoff_cap_ms: int = 600_000


class WebhookSender:
    """Sends due deliveries with one shared async HTTP client."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        policy: DeliveryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.policy = policy or DeliveryPolicy()
        self._transport = transport

    async def deliver_due(self, *, limit: int = 50) -> int:
        """Send every due delivery once (concurrently); returns how many were attempted."""
        now = self._clock.now_ms()
        due = await run_in_threadpool(self._store.alerts.due_deliveries, now, limit=limit)
        if not due:
            return 0
        # httpx (with rich, which it imports when installed) loads on the first webhook,
        # not in every server process.
        import httpx

        headers = {"User-Agent": f"tuneloop/{__version__}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(
            timeout=self.policy.timeout_s, transport=self._transport, headers=headers
        ) as client:
            sent = await asyncio.gather(*(self._one(client, delivery) for delivery in due))
        return sum(sent)

    async def _one(self, client: httpx.AsyncClient, delivery: Delivery) -> int:
        lease_ms = int(self.policy.timeout_s * 1000) * 2 + 1_000
        claimed = await run_in_threadpool(
            self._store.alerts.claim, delivery, now_ms=self._clock.now_ms(), lease_ms=lease_ms
        )
        if not claimed:
            return 0
        import httpx  # loaded by deliver_due already; see there

        attempt = delivery.attempts + 1
        error: str | None = None
        status_code: int | None = None
        try:
            response = await client.post(
                delivery.url,
                content=delivery.payload.encode(),
                headers={
                    "X-Tuneloop-Event": delivery.event_id,
                    "X-Tuneloop-Delivery": delivery.delivery_id,
                    "X-Tuneloop-Attempt": str(attempt),
                },
            )
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        now = self._clock.now_ms()
        retry_at = None
        if error is not None:
            if attempt < self.policy.max_attempts:
                wait = backoff_ms(
                    attempt, base_ms=self.policy.backoff_base_ms, cap_ms=self.policy.backoff_cap_ms
                )
                retry_at = now + wait
            log.warning("webhook %s attempt %d failed: %s", delivery.url, attempt, error)
        await run_in_threadpool(
            self._store.alerts.finish, delivery, attempt=attempt, now_ms=now, ok=error is None,
            error=error, status_code=status_code, retry_at_ms=retry_at,
        )  # fmt: skip
        return 1

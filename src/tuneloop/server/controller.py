"""The controller: a background loop that evaluates rollouts and alert rules.

Every ``controller_interval_s`` seconds (on the app's clock for everything it decides)
one tick:

1. takes the controller lock, so that with several server replicas exactly one acts
   (PostgreSQL: a session advisory lock, released with the connection if the process
   dies; SQLite: a lease row in ``controller_leases``). A replica that does not get it
   skips the tick;
2. repairs allocations left behind by a crash between a rollout's row and its
   allocation (`RolloutService.reconcile`);
3. evaluates every active rollout and applies its decision;
4. evaluates every enabled alert rule, stores firing/resolved events, and pauses the
   agent's running rollout for rules whose action is ``pause_rollout``.

Webhooks are sent by a separate task (server/webhooks.py), so a dead receiver never
blocks a tick. Tests drive `Controller.tick` directly with a FakeClock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import FastAPI

from tuneloop.alerts import describe, evaluate
from tuneloop.clock import Clock
from tuneloop.errors import TuneloopError
from tuneloop.server.webhooks import DeliveryPolicy, WebhookSender
from tuneloop.settings import Settings
from tuneloop.store import Store
from tuneloop.store.alerts import AlertRule
from tuneloop.store.rollout_reads import guardrail_trigger_rate, window_aggregate
from tuneloop.store.schema import controller_leases

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("tuneloop.server.controller")
# "tuneloop" as a 64-bit key for pg_try_advisory_lock.
ADVISORY_KEY = int.from_bytes(b"tuneloop", "big")
LEASE_NAME = "controller"


@dataclass(slots=True)
class TickReport:
    """What one tick did."""

    acted: bool
    at_ms: int
    repaired: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    alert_events: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Controller:
    """Evaluates active rollouts and alert rules (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock,
        interval_s: float = 15.0,
        holder: str | None = None,
        policy: DeliveryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.interval_s = interval_s
        self.holder = holder or f"controller-{secrets.token_hex(6)}"
        self.webhooks = WebhookSender(store, clock=clock, policy=policy, transport=transport)
        self.ticks = 0
        self.last_tick_ms: int | None = None
        self.last_acted_ms: int | None = None

    # --- the lock ------------------------------------------------------------------------

    @contextlib.contextmanager
    def leadership(self, now_ms: int) -> Iterator[bool]:
        """Hold the controller lock while the block runs; yields whether it was taken."""
        engine = self._store.engine
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                got = bool(
                    conn.execute(sa.select(sa.func.pg_try_advisory_lock(ADVISORY_KEY))).scalar()
                )
                conn.commit()
                try:
                    yield got
                finally:
                    if got:
                        try:
                            conn.execute(sa.select(sa.func.pg_advisory_unlock(ADVISORY_KEY)))
                            conn.commit()
                        except sa.exc.SQLAlchemyError:
                            # Never hand a pooled connection that may hold the lock back.
                            conn.invalidate()
            return
        got = self._take_lease(now_ms)
        try:
            yield got
        finally:
            if got:
                self._release_lease()

    def _take_lease(self, now_ms: int) -> bool:
        lease_ms = int(max(self.interval_s * 4, 60) * 1000)
        c = controller_leases.c
        with self._store.engine.begin() as conn:
            exists = conn.execute(sa.select(c.name).where(c.name == LEASE_NAME)).first()
            if exists is None:
                with contextlib.suppress(sa.exc.IntegrityError), conn.begin_nested():
                    conn.execute(
                        controller_leases.insert().values(name=LEASE_NAME, holder="", expires_ms=0)
                    )
            taken = conn.execute(
                controller_leases.update()
                .where(
                    c.name == LEASE_NAME, sa.or_(c.holder == self.holder, c.expires_ms <= now_ms)
                )
                .values(holder=self.holder, expires_ms=now_ms + lease_ms)
            )
            return bool(taken.rowcount == 1)

    def _release_lease(self) -> None:
        c = controller_leases.c
        with self._store.engine.begin() as conn:
            conn.execute(
                controller_leases.update()
                .where(c.name == LEASE_NAME, c.holder == self.holder)
                .values(expires_ms=0)
            )

    # --- one tick ------------------------------------------------------------------------

    def tick(self) -> TickReport:
        """Evaluate every active rollout and alert rule once, if this controller leads."""
        now = self._clock.now_ms()
        self.ticks += 1
        with self.leadership(now) as leading:
            report = TickReport(acted=leading, at_ms=now)
            if leading:
                self._rollouts(report, now)
                self._alerts(report, now)
                self.last_acted_ms = now
        self.last_tick_ms = now
        return report

    def _rollouts(self, report: TickReport, now: int) -> None:
        ops = self._store.rollout_ops
        try:
            report.repaired = ops.reconcile(now_ms=now)
        except TuneloopError as exc:
            report.errors.append(f"reconcile: {exc}")
        for record in self._store.rollouts.find(active_only=True, limit=10_000):
            try:
                decision, updated = ops.evaluate(record, now_ms=now)
            except TuneloopError as exc:  # one rollout's failure must not stop the others
                log.warning("rollout %s: evaluation failed: %s", record.rollout_id, exc)
                report.errors.append(f"{record.rollout_id}: {exc}")
                continue
            report.decisions.append(
                {
                    "project_id": record.project_id,
                    "rollout_id": record.rollout_id,
                    "action": decision.action,
                    "reason": decision.reason,
                    "applied": updated is not None,
                }
            )

    def _alerts(self, report: TickReport, now: int) -> None:
        measured: dict[tuple[str, str, str, int], tuple[float | None, int]] = {}
        for rule in self._store.alerts.list_rules(enabled_only=True):
            key = (rule.project_id, rule.agent, rule.spec.metric, rule.spec.window_ms)
            try:
                if key not in measured:
                    measured[key] = self.measure(rule, now_ms=now)
                value, runs = measured[key]
                transition = evaluate(rule.spec, rule.state, value=value, runs=runs, now_ms=now)
                message = describe(rule.spec, value, runs)
                event = self._store.alerts.save_evaluation(
                    rule, transition, value=value, message=message, now_ms=now
                )
            except TuneloopError as exc:
                report.errors.append(f"alert {rule.rule_id}: {exc}")
                continue
            if event is None:
                continue
            report.alert_events.append(event)
            if transition.event == "firing" and rule.spec.action == "pause_rollout":
                self._pause_for(rule, message, now)

    def measure(self, rule: AlertRule, *, now_ms: int) -> tuple[float | None, int]:
        """A rule's metric over its window ending now, and the runs (or tool calls) counted."""
        since, until = now_ms - rule.spec.window_ms, now_ms + 1
        engine, project, agent = self._store.engine, rule.project_id, rule.agent
        if rule.spec.metric == "guardrail_trigger_rate":
            return guardrail_trigger_rate(engine, project, agent, since_ms=since, until_ms=until)
        aggregate = window_aggregate(engine, project, agent, since_ms=since, until_ms=until)
        summary = aggregate.summary()
        values = {
            "error_rate": summary["error_rate"],
            "latency_p95_ms": summary["latency_ms"]["p95"],
            "cost_per_run": summary["mean_cost_usd"],
            "task_success_rate": summary["task_success_rate"],
            "escalation_rate": summary["escalation_rate"],
            "tool_error_rate": summary["tool_error_rate"],
        }
        count = aggregate.tool_calls if rule.spec.metric == "tool_error_rate" else aggregate.runs
        return values[rule.spec.metric], count

    def _pause_for(self, rule: AlertRule, message: str, now: int) -> None:
        active = self._store.rollouts.active_for(rule.project_id, rule.agent)
        if active is None or active.status != "running":
            return
        try:
            self._store.rollout_ops.pause(
                rule.project_id, active.rollout_id, actor=f"alert:{rule.rule_id}", now_ms=now,
                reason=f"alert {rule.spec.name!r} fired: {message}",
            )  # fmt: skip
        except TuneloopError as exc:
            log.warning("alert %s could not pause rollout %s: %s", rule.rule_id, active, exc)

    # --- the loop ------------------------------------------------------------------------

    def lag_s(self) -> float | None:
        """Seconds since the last tick started (None before the first)."""
        if self.last_tick_ms is None:
            return None
        return max(self._clock.now_ms() - self.last_tick_ms, 0) / 1000

    async def run(self) -> None:
        """Tick every ``interval_s`` seconds, delivering webhooks alongside, until cancelled."""
        wake = asyncio.Event()
        deliverer = asyncio.get_running_loop().create_task(
            self._deliver_forever(wake), name="tuneloop-webhooks"
        )
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                try:
                    await asyncio.to_thread(self.tick)
                except Exception:  # the loop must outlive a failed tick (database down ...)
                    log.exception("controller tick failed")
                wake.set()
        finally:
            deliverer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliverer

    async def _deliver_forever(self, wake: asyncio.Event) -> None:
        while True:
            try:
                await self.webhooks.deliver_due()
            except Exception:
                log.exception("webhook delivery failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=min(self.interval_s, 5.0))
            wake.clear()


def start_controller(app: FastAPI) -> asyncio.Task[None] | None:
    """Create the app's controller (lifespan); start its loop when the interval is > 0."""
    settings: Settings = app.state.settings
    policy = DeliveryPolicy(
        timeout_s=settings.webhook_timeout_s,
        max_attempts=settings.webhook_max_attempts,
        backoff_base_ms=int(settings.webhook_backoff_s * 1000),
    )
    controller = Controller(
        app.state.store,
        clock=app.state.clock,
        interval_s=settings.controller_interval_s or 15.0,
        policy=policy,
        transport=getattr(app.state, "webhook_transport", None),
    )
    app.state.controller = controller
    if settings.controller_interval_s <= 0:
        return None
    return asyncio.get_running_loop().create_task(controller.run(), name="tuneloop-controller")


async def stop_controller(task: asyncio.Task[None] | None) -> None:
    """Cancel the loop started by `start_controller`."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

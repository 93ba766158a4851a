"""Alert rules with their evaluation state, alert events, and webhook deliveries.

An event is stored once per (dedupe key, status): a second insert of the same episode's
``firing`` (another replica, a retried tick) is a no-op. Each event gets one delivery
row per webhook, created in the event's transaction; the deliverer claims a due row by
pushing its ``next_attempt_ms`` forward (a compare-and-set on ``attempts``), so two
deliverers never send one attempt twice, and a deliverer that dies mid-send leaves the
row to be retried when the claim lapses.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from tuneloop.alerts import AlertRuleSpec, EventStatus, RuleState, Transition, dedupe_key
from tuneloop.config.versions import validate_agent
from tuneloop.errors import ConflictError, NotFoundError
from tuneloop.store.schema import alert_events, alert_rules, webhook_deliveries

_A = alert_rules.c
_EV = alert_events.c
_D = webhook_deliveries.c
DeliveryStatus = Literal["pending", "delivered", "failed"]
EventSource = Literal["rule", "rollout"]


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A stored rule, its evaluation state and the last value it saw."""

    project_id: str
    rule_id: str
    agent: str
    spec: AlertRuleSpec
    state: RuleState
    last_value: float | None
    last_evaluated_ms: int | None
    created_by: str
    created_ms: int
    updated_ms: int

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "rule_id": self.rule_id,
            "agent": self.agent,
            **self.spec.model_dump(mode="json"),
            "state": self.state.state,
            "pending_since_ms": self.state.pending_since_ms,
            "firing_since_ms": self.state.firing_since_ms,
            "episode": self.state.episode,
            "last_value": self.last_value,
            "last_evaluated_ms": self.last_evaluated_ms,
            "created_by": self.created_by,
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook delivery of one event."""

    project_id: str
    delivery_id: str
    event_id: str
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_ms: int
    last_error: str | None
    last_status_code: int | None
    payload: str
    created_ms: int
    delivered_ms: int | None

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data (without the payload)."""
        return {
            "delivery_id": self.delivery_id, "event_id": self.event_id, "url": self.url,
            "status": self.status, "attempts": self.attempts,
            "next_attempt_ms": self.next_attempt_ms, "last_error": self.last_error,
            "last_status_code": self.last_status_code, "created_ms": self.created_ms,
            "delivered_ms": self.delivered_ms,
        }  # fmt: skip


def _rule(row: Any) -> AlertRule:
    state = RuleState(row.state, row.pending_since_ms, row.firing_since_ms, row.episode)
    return AlertRule(
        row.project_id, row.rule_id, row.agent, AlertRuleSpec.model_validate_json(row.spec),
        state, row.last_value, row.last_evaluated_ms, row.created_by, row.created_ms,
        row.updated_ms,
    )  # fmt: skip


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row.project_id, row.delivery_id, row.event_id, row.url, row.status, row.attempts,
        row.next_attempt_ms, row.last_error, row.last_status_code, row.payload, row.created_ms,
        row.delivered_ms,
    )  # fmt: skip


def _event(row: Any) -> dict[str, Any]:
    return {
        "event_id": row.event_id, "rule_id": row.rule_id, "rollout_id": row.rollout_id,
        "agent": row.agent, "source": row.source, "status": row.status,
        "dedupe_key": row.dedupe_key, "name": row.name, "metric": row.metric,
        "value": row.value, "threshold": row.threshold, "message": row.message,
        "created_ms": row.created_ms,
    }  # fmt: skip


def emit_event(
    conn: sa.Connection,
    project_id: str,
    *,
    agent: str,
    source: EventSource,
    status: EventStatus,
    dedupe_key: str,
    name: str,
    message: str,
    now_ms: int,
    webhooks: Sequence[str] = (),
    rule_id: str | None = None,
    rollout_id: str | None = None,
    metric: str | None = None,
    value: float | None = None,
    threshold: float | None = None,
    severity: str = "warning",
) -> str | None:
    """Store an event and its deliveries in ``conn``'s transaction; None if already stored."""
    exists = sa.select(_EV.event_id).where(
        _EV.project_id == project_id, _EV.dedupe_key == dedupe_key, _EV.status == status
    )
    if conn.execute(exists).first() is not None:
        return None
    event_id = f"ev-{secrets.token_hex(8)}"
    event = {
        "project_id": project_id, "event_id": event_id, "rule_id": rule_id,
        "rollout_id": rollout_id, "agent": agent, "source": source, "status": status,
        "dedupe_key": dedupe_key, "name": name, "metric": metric, "value": value,
        "threshold": threshold, "message": message, "created_ms": now_ms,
    }  # fmt: skip
    # A concurrent insert of the same episode loses on the unique constraint, inside a
    # savepoint so the caller's transaction carries on.
    try:
        with conn.begin_nested():
            conn.execute(alert_events.insert().values(event))
    except sa.exc.IntegrityError:
        return None
    body = {k: v for k, v in event.items() if k != "project_id"}
    payload = json.dumps({**body, "project": project_id, "severity": severity})
    for url in dict.fromkeys(webhooks):
        conn.execute(
            webhook_deliveries.insert().values(
                project_id=project_id,
                delivery_id=f"wd-{secrets.token_hex(8)}",
                event_id=event_id,
                url=url,
                status="pending",
                attempts=0,
                next_attempt_ms=now_ms,
                payload=payload,
                created_ms=now_ms,
            )
        )
    return event_id


class AlertRepository:
    """Alert rules, events and deliveries of every project in one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def create_rule(
        self, project_id: str, agent: str, spec: AlertRuleSpec, *, author: str, now_ms: int
    ) -> AlertRule:
        """Store a rule; ConflictError if the agent has one by that name."""
        rule_id = f"al-{secrets.token_hex(6)}"
        row = {
            "project_id": project_id, "rule_id": rule_id,
            "agent": validate_agent(agent), "name": spec.name, "spec": spec.model_dump_json(),
            "enabled": spec.enabled, "state": "ok", "episode": 0, "created_by": author,
            "created_ms": now_ms, "updated_ms": now_ms,
        }  # fmt: skip
        try:
            with self._engine.begin() as conn:
                conn.execute(alert_rules.insert().values(row))
        except sa.exc.IntegrityError:
            raise ConflictError(
                f"agent {agent!r} already has an alert rule named {spec.name!r}; pick another "
                "name or replace it"
            ) from None
        return self.get_rule(project_id, rule_id)

    def replace_rule(
        self, project_id: str, rule_id: str, spec: AlertRuleSpec, *, now_ms: int
    ) -> AlertRule:
        """Replace a rule's definition; its state starts over unless it is firing."""
        current = self.get_rule(project_id, rule_id)
        values: dict[str, Any] = {
            "spec": spec.model_dump_json(), "name": spec.name, "enabled": spec.enabled,
            "updated_ms": now_ms,
        }  # fmt: skip
        if current.state.state == "pending":
            values.update(state="ok", pending_since_ms=None)
        where = (_A.project_id == project_id, _A.rule_id == rule_id)
        try:
            with self._engine.begin() as conn:
                conn.execute(alert_rules.update().where(*where).values(values))
        except sa.exc.IntegrityError:
            raise ConflictError(f"another rule is named {spec.name!r}; pick another name") from None
        return self.get_rule(project_id, rule_id)

    def delete_rule(self, project_id: str, rule_id: str) -> None:
        """Delete a rule (its events stay in the history)."""
        where = (_A.project_id == project_id, _A.rule_id == rule_id)
        with self._engine.begin() as conn:
            if conn.execute(alert_rules.delete().where(*where)).rowcount != 1:
                raise NotFoundError(f"no alert rule {rule_id!r} in this project")

    def get_rule(self, project_id: str, rule_id: str) -> AlertRule:
        """One rule; NotFoundError if there is none by that id."""
        query = sa.select(alert_rules).where(_A.project_id == project_id, _A.rule_id == rule_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"no alert rule {rule_id!r} in this project")
        return _rule(row)

    def list_rules(
        self, project_id: str | None = None, *, agent: str | None = None, enabled_only: bool = False
    ) -> list[AlertRule]:
        """Rules by agent and name; every project's when ``project_id`` is None."""
        query = sa.select(alert_rules)
        if project_id is not None:
            query = query.where(_A.project_id == project_id)
        if agent is not None:
            query = query.where(_A.agent == agent)
        if enabled_only:
            query = query.where(_A.enabled.is_(True))
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(_A.project_id, _A.agent, _A.name)).all()
        return [_rule(row) for row in rows]

    def save_evaluation(
        self, rule: AlertRule, transition: Transition, *, value: float | None, message: str,
        now_ms: int,
    ) -> str | None:  # fmt: skip
        """Store the rule's new state and its event, if its state is still ``rule.state``.

        Returns the id of the event emitted (None when there was none, or another
        evaluator got there first).
        """
        old, new = rule.state, transition.state
        where = (
            _A.project_id == rule.project_id, _A.rule_id == rule.rule_id,
            _A.state == old.state, _A.episode == old.episode,
        )  # fmt: skip
        values = {
            "state": new.state, "pending_since_ms": new.pending_since_ms,
            "firing_since_ms": new.firing_since_ms, "episode": new.episode,
            "last_value": value, "last_evaluated_ms": now_ms,
        }  # fmt: skip
        with self._engine.begin() as conn:
            if conn.execute(alert_rules.update().where(*where).values(values)).rowcount != 1:
                return None
            if transition.event is None:
                return None
            spec = rule.spec
            return emit_event(
                conn, rule.project_id, agent=rule.agent, source="rule",
                status=transition.event, dedupe_key=dedupe_key(rule.rule_id, new.episode),
                name=spec.name, message=message, now_ms=now_ms, webhooks=spec.webhooks,
                rule_id=rule.rule_id, metric=spec.metric, value=value,
                threshold=spec.threshold, severity=spec.severity,
            )  # fmt: skip

    def events(
        self,
        project_id: str,
        *,
        agent: str | None = None,
        status: EventStatus | None = None,
        rule_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Events newest first: the firing/resolved history."""
        query = sa.select(alert_events).where(_EV.project_id == project_id)
        for column, wanted in (("agent", agent), ("status", status), ("rule_id", rule_id)):
            if wanted is not None:
                query = query.where(alert_events.c[column] == wanted)
        query = query.order_by(_EV.created_ms.desc(), _EV.event_id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_event(row) for row in conn.execute(query)]

    def firing(self, project_id: str | None = None) -> list[AlertRule]:
        """Rules firing now."""
        return [r for r in self.list_rules(project_id) if r.state.state == "firing"]

    def deliveries(
        self, project_id: str, *, event_id: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Deliveries newest first (of one event, or all)."""
        query = sa.select(webhook_deliveries).where(_D.project_id == project_id)
        if event_id is not None:
            query = query.where(_D.event_id == event_id)
        query = query.order_by(_D.created_ms.desc(), _D.delivery_id).limit(limit)
        with self._engine.connect() as conn:
            return [_delivery(row) for row in conn.execute(query)]

    def due_deliveries(self, now_ms: int, *, limit: int = 50) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, oldest first (every project)."""
        query = (
            sa.select(webhook_deliveries)
            .where(_D.status == "pending", _D.next_attempt_ms <= now_ms)
            .order_by(_D.next_attempt_ms)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [_delivery(row) for row in conn.execute(query)]

    def claim(self, delivery: Delivery, *, now_ms: int, lease_ms: int) -> bool:
        """Take one attempt of a due delivery; False if another deliverer took it."""
        where = (
            _D.project_id == delivery.project_id, _D.delivery_id == delivery.delivery_id,
            _D.status == "pending", _D.attempts == delivery.attempts,
            _D.next_attempt_ms <= now_ms,
        )  # fmt: skip
        values = {"attempts": delivery.attempts + 1, "next_attempt_ms": now_ms + lease_ms}
        with self._engine.begin() as conn:
            updated = conn.execute(webhook_deliveries.update().where(*where).values(values))
        return bool(updated.rowcount == 1)

    def finish(
        self, delivery: Delivery, *, attempt: int, now_ms: int, ok: bool,
        error: str | None = None, status_code: int | None = None,
        retry_at_ms: int | None = None,
    ) -> None:  # fmt: skip
        """Record an attempt's outcome: delivered, retried at ``retry_at_ms``, or failed."""
        values: dict[str, Any] = {"last_status_code": status_code, "last_error": error}
        if ok:
            values.update(status="delivered", delivered_ms=now_ms, last_error=None)
        elif retry_at_ms is None:
            values.update(status="failed")
        else:
            values.update(next_attempt_ms=retry_at_ms)
        where = (_D.project_id == delivery.project_id, _D.delivery_id == delivery.delivery_id,
                 _D.attempts == attempt)  # fmt: skip
        with self._engine.begin() as conn:
            conn.execute(webhook_deliveries.update().where(*where).values(values))

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        """Deliveries per (project, status), for /metrics."""
        query = sa.select(_D.project_id, _D.status, sa.func.count()).group_by(
            _D.project_id, _D.status
        )
        with self._engine.connect() as conn:
            return {(p, s): int(n) for p, s, n in conn.execute(query)}

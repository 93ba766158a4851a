"""Stored experiments and their lifecycle, each step one transaction.

Every write runs in the project's config transaction (`write_tx`: the audit-chain
lock), so a start sees every other running experiment and rollout of the agent as they
are, and publishing the allocation, the status change, the experiment's event and the
config audit row commit together or not at all. Rollouts (issue 8) check this table
(``status = 'running'``) the same way; this side checks theirs (``status`` in
``running``, ``paused``) and any published rollout allocation.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from tuneloop.config.allocations import AllocationSpec
from tuneloop.config.canonical import canonical_json, sha256_hex
from tuneloop.errors import ConflictError, NotFoundError
from tuneloop.experiments.definition import ExperimentDefinition
from tuneloop.experiments.lifecycle import (
    Decision,
    EventAction,
    ExperimentEvent,
    ExperimentRecord,
    Status,
    next_status,
)
from tuneloop.store.configs import append_audit, resolve_version, write_tx
from tuneloop.store.schema import experiment_events, experiments, metadata, state_allocations

_E = experiments.c
_EV = experiment_events.c
_S = state_allocations.c
ROLLOUT_ACTIVE = ("running", "paused")


def record_from_row(row: Any) -> ExperimentRecord:
    """A stored experiment row as a record."""
    return ExperimentRecord(
        definition=ExperimentDefinition.model_validate_json(row.definition),
        status=row.status,
        created_ms=row.created_ms,
        created_by=row.created_by,
        started_ms=row.started_ms,
        stopped_ms=row.stopped_ms,
        concluded_ms=row.concluded_ms,
        decision=row.decision,
        decided_by=row.decided_by,
        decision_reason=row.decision_reason,
        winner=row.winner,
    )


def _where(project_id: str, experiment_id: str) -> tuple[Any, ...]:
    return (_E.project_id == project_id, _E.experiment_id == experiment_id)


def _load(conn: sa.Connection, project_id: str, experiment_id: str) -> Any:
    row = conn.execute(sa.select(experiments).where(*_where(project_id, experiment_id))).first()
    if row is None:
        raise NotFoundError(
            f"no experiment {experiment_id[:80]!r} in this project; list them with "
            "`tuneloop experiment status`"
        )
    return row


def _event(
    conn: sa.Connection,
    project_id: str,
    experiment_id: str,
    action: EventAction,
    *,
    actor: str,
    now_ms: int,
    detail: dict[str, Any],
) -> None:
    last = conn.execute(
        sa.select(sa.func.max(_EV.seq)).where(
            _EV.project_id == project_id, _EV.experiment_id == experiment_id
        )
    ).scalar()
    conn.execute(
        experiment_events.insert().values(
            project_id=project_id,
            experiment_id=experiment_id,
            seq=(last or 0) + 1,
            action=action,
            actor=actor,
            created_ms=now_ms,
            detail=canonical_json(detail),
        )
    )


def active_rollout(conn: sa.Connection, project_id: str, agent: str) -> str | None:
    """A running or paused rollout of ``agent`` (its id), or None."""
    rollouts = metadata.tables.get("rollouts")
    if rollouts is not None:
        found = conn.execute(
            sa.select(rollouts.c.rollout_id).where(
                rollouts.c.project_id == project_id,
                rollouts.c.agent == agent,
                rollouts.c.status.in_(ROLLOUT_ACTIVE),
            )
        ).first()
        if found is not None:
            return str(found[0])
    published = conn.execute(
        sa.select(_S.alloc_key).where(
            _S.project_id == project_id, _S.agent == agent, _S.kind == "rollout"
        )
    ).first()
    return None if published is None else str(published[0])


def _publish(
    conn: sa.Connection,
    project_id: str,
    agent: str,
    spec: AllocationSpec,
    *,
    author: str,
    now_ms: int,
) -> None:
    """Put the allocation into the state document, audited like `put_allocation` does."""
    for variant in spec.variants:
        resolve_version(conn, project_id, agent, variant.version)
    where = (
        _S.project_id == project_id,
        _S.agent == agent,
        _S.kind == spec.kind,
        _S.alloc_key == spec.key,
    )
    text = canonical_json(spec.model_dump(mode="json"))
    before = conn.execute(sa.select(_S.spec).where(*where)).scalar()
    conn.execute(state_allocations.delete().where(*where))
    conn.execute(
        state_allocations.insert().values(
            project_id=project_id,
            agent=agent,
            kind=spec.kind,
            alloc_key=spec.key,
            spec=text,
            updated_ms=now_ms,
        )
    )
    append_audit(
        conn,
        project_id,
        agent,
        "allocation_set",
        key_id=author,
        now_ms=now_ms,
        before=sha256_hex(before) if before else None,
        after=sha256_hex(text),
        detail={"kind": spec.kind, "key": spec.key, "reason": "experiment start"},
    )


def _unpublish(
    conn: sa.Connection, project_id: str, agent: str, key: str, *, author: str, now_ms: int
) -> None:
    where = (
        _S.project_id == project_id,
        _S.agent == agent,
        _S.kind == "experiment",
        _S.alloc_key == key,
    )
    before = conn.execute(sa.select(_S.spec).where(*where)).scalar()
    if before is None:
        return
    conn.execute(state_allocations.delete().where(*where))
    append_audit(
        conn,
        project_id,
        agent,
        "allocation_delete",
        key_id=author,
        now_ms=now_ms,
        before=sha256_hex(before),
        detail={"kind": "experiment", "key": key, "reason": "experiment stop"},
    )


class ExperimentRepository:
    """Experiments of every project in one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def create(
        self, project_id: str, definition: ExperimentDefinition, *, author: str, now_ms: int
    ) -> ExperimentRecord:
        """Store a new draft experiment.

        Raises:
            ConflictError: the project already has an experiment with this id.
        """
        with write_tx(self._engine, project_id) as conn:
            taken = conn.execute(
                sa.select(_E.status).where(*_where(project_id, definition.key))
            ).first()
            if taken is not None:
                raise ConflictError(
                    f"experiment {definition.key!r} already exists ({taken[0]}); pick another "
                    "key, or leave it out to get a generated one"
                )
            conn.execute(
                experiments.insert().values(
                    project_id=project_id,
                    experiment_id=definition.key,
                    agent=definition.agent,
                    unit_type=definition.unit_type,
                    status="draft",
                    definition=canonical_json(definition.model_dump(mode="json")),
                    created_ms=now_ms,
                    created_by=author,
                    updated_ms=now_ms,
                )
            )
            detail: dict[str, Any] = {"variants": {v.name: v.label for v in definition.variants}}
            if definition.gate_override:
                detail["gate_override"] = definition.gate_override
            _event(
                conn,
                project_id,
                definition.key,
                "create",
                actor=author,
                now_ms=now_ms,
                detail=detail,
            )
            return record_from_row(_load(conn, project_id, definition.key))

    def exists(self, project_id: str, experiment_id: str) -> bool:
        """Whether the project has an experiment with this id."""
        query = sa.select(_E.status).where(*_where(project_id, experiment_id))
        with self._engine.connect() as conn:
            return conn.execute(query).first() is not None

    def get(self, project_id: str, experiment_id: str) -> ExperimentRecord:
        """One experiment; NotFoundError if the project has none by that id."""
        with self._engine.connect() as conn:
            return record_from_row(_load(conn, project_id, experiment_id))

    def list_experiments(
        self,
        project_id: str,
        *,
        agent: str | None = None,
        status: Status | None = None,
        limit: int = 100,
    ) -> list[ExperimentRecord]:
        """Experiments, newest first."""
        query = sa.select(experiments).where(_E.project_id == project_id)
        if agent is not None:
            query = query.where(_E.agent == agent)
        if status is not None:
            query = query.where(_E.status == status)
        query = query.order_by(_E.created_ms.desc(), _E.experiment_id).limit(limit)
        with self._engine.connect() as conn:
            return [record_from_row(row) for row in conn.execute(query)]

    def running(self, project_id: str, agent: str) -> list[str]:
        """Ids of the agent's running experiments (rollouts check it before they start)."""
        query = sa.select(_E.experiment_id).where(
            _E.project_id == project_id, _E.agent == agent, _E.status == "running"
        )
        with self._engine.connect() as conn:
            return [str(key) for key in conn.execute(query.order_by(_E.experiment_id)).scalars()]

    def events(self, project_id: str, experiment_id: str) -> list[ExperimentEvent]:
        """The experiment's lifecycle, oldest first."""
        query = sa.select(experiment_events).where(
            _EV.project_id == project_id, _EV.experiment_id == experiment_id
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(_EV.seq)).all()
        return [
            ExperimentEvent(r.seq, r.action, r.actor, r.created_ms, json.loads(r.detail))
            for r in rows
        ]

    def start(
        self, project_id: str, experiment_id: str, *, author: str, now_ms: int
    ) -> ExperimentRecord:
        """Start: publish the allocation (the SDK assigns units from now on).

        Raises:
            ConflictError: it is not a draft; another experiment runs on the same agent
                and unit type; or a rollout is running or paused on the agent. The
                message names the other one.
        """
        with write_tx(self._engine, project_id) as conn:
            row = _load(conn, project_id, experiment_id)
            status = next_status(experiment_id, row.status, "start")
            definition = ExperimentDefinition.model_validate_json(row.definition)
            other = conn.execute(
                sa.select(_E.experiment_id).where(
                    _E.project_id == project_id,
                    _E.agent == row.agent,
                    _E.unit_type == row.unit_type,
                    _E.status == "running",
                    _E.experiment_id != experiment_id,
                )
            ).scalar()
            if other is not None:
                raise ConflictError(
                    f"experiment {other!r} is already running on agent {row.agent!r} with "
                    f"{row.unit_type} units; one experiment per agent and unit type at a time: "
                    f"stop it first (tuneloop experiment stop {other})"
                )
            rollout = active_rollout(conn, project_id, row.agent)
            if rollout is not None:
                raise ConflictError(
                    f"rollout {rollout!r} is in progress on agent {row.agent!r}; an experiment "
                    "and a rollout cannot split the same agent's traffic at once: finish or "
                    "abort the rollout first"
                )
            _publish(
                conn, project_id, row.agent, definition.allocation(), author=author, now_ms=now_ms
            )
            conn.execute(
                experiments.update()
                .where(*_where(project_id, experiment_id))
                .values(status=status, started_ms=now_ms, updated_ms=now_ms)
            )
            _event(
                conn,
                project_id,
                experiment_id,
                "start",
                actor=author,
                now_ms=now_ms,
                detail={"allocation": definition.allocation().model_dump(mode="json")},
            )
            return record_from_row(_load(conn, project_id, experiment_id))

    def stop(
        self, project_id: str, experiment_id: str, *, author: str, now_ms: int, reason: str = ""
    ) -> ExperimentRecord:
        """Stop: take the allocation down; its units get production again."""
        with write_tx(self._engine, project_id) as conn:
            row = _load(conn, project_id, experiment_id)
            status = next_status(experiment_id, row.status, "stop")
            _unpublish(conn, project_id, row.agent, experiment_id, author=author, now_ms=now_ms)
            conn.execute(
                experiments.update()
                .where(*_where(project_id, experiment_id))
                .values(status=status, stopped_ms=now_ms, updated_ms=now_ms)
            )
            _event(
                conn,
                project_id,
                experiment_id,
                "stop",
                actor=author,
                now_ms=now_ms,
                detail={"reason": reason} if reason else {},
            )
            return record_from_row(_load(conn, project_id, experiment_id))

    def conclude(
        self,
        project_id: str,
        experiment_id: str,
        *,
        decision: Decision,
        winner: str | None,
        reason: str,
        author: str,
        now_ms: int,
        detail: dict[str, Any] | None = None,
    ) -> ExperimentRecord:
        """Record the decision on a stopped experiment and who made it."""
        with write_tx(self._engine, project_id) as conn:
            row = _load(conn, project_id, experiment_id)
            status = next_status(experiment_id, row.status, "conclude")
            conn.execute(
                experiments.update()
                .where(*_where(project_id, experiment_id))
                .values(
                    status=status,
                    decision=decision,
                    winner=winner,
                    decided_by=author,
                    decision_reason=reason or None,
                    concluded_ms=now_ms,
                    updated_ms=now_ms,
                )
            )
            event = {"decision": decision, "winner": winner, "reason": reason, **(detail or {})}
            _event(
                conn,
                project_id,
                experiment_id,
                "conclude",
                actor=author,
                now_ms=now_ms,
                detail=event,
            )
            return record_from_row(_load(conn, project_id, experiment_id))

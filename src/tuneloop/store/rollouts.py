"""Rollouts as stored: the row that is their state, and their timeline.

Every change to a rollout is a compare-and-set on its ``revision`` that also appends
one timeline row (``seq`` = the revision it produced), in one transaction: two
controllers, or a controller and a person pausing it, never both act on one state, and
the timeline holds every evaluation and action in order. Starting one runs in the
project's config write transaction, so "one active rollout per agent, none while an
experiment runs" holds under concurrent starts. Publishing the allocation (the SDK's
weights) is `RolloutService`'s job (store/rollout_ops.py).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from tuneloop.config.versions import PRODUCTION, validate_agent
from tuneloop.errors import ConflictError, InvalidInputError, NotFoundError
from tuneloop.rollouts import ACTIVE_STATUSES, RolloutDefinition
from tuneloop.store.configs import channel_row, resolve_version, write_tx
from tuneloop.store.rollout_records import (
    RolloutRecord,
    TimelineEntry,
    deadline_of,
    record_of,
    to_json,
)
from tuneloop.store.schema import (
    config_versions,
    experiments,
    rollout_evaluations,
    rollouts,
    state_allocations,
)

__all__ = [
    "MAX_TIMELINE",
    "RolloutRecord",
    "RolloutRepository",
    "TimelineEntry",
    "deadline_of",
    "running_experiment",
    "to_json",
]

_R = rollouts.c
_E = rollout_evaluations.c
_V = config_versions.c
MAX_TIMELINE = 5_000
Extra = Callable[[sa.Connection], None]


def running_experiment(conn: sa.Connection, project_id: str, agent: str) -> str | None:
    """The id of an experiment running on ``agent``, if any (its row or its allocation)."""
    x = experiments.c
    found = conn.execute(
        sa.select(x.experiment_id)
        .where(x.project_id == project_id, x.agent == agent, x.status == "running")
        .limit(1)
    ).scalar()
    if found is None:
        s = state_allocations.c
        found = conn.execute(
            sa.select(s.alloc_key)
            .where(s.project_id == project_id, s.agent == agent, s.kind == "experiment")
            .limit(1)
        ).scalar()
    return found


def _check_start(conn: sa.Connection, project_id: str, agent: str, version: str) -> tuple[Any, Any]:
    """The candidate's and production's version rows, if a rollout may start now."""
    candidate = resolve_version(conn, project_id, agent, version)
    production = channel_row(conn, project_id, agent, PRODUCTION)
    if production is None:
        raise NotFoundError(f"agent {agent!r} has no production version to roll out from")
    if production.version_hash == candidate.version_hash:
        raise InvalidInputError(
            f"version {candidate.label} is already production for {agent!r}; roll out "
            "a different version"
        )
    active = conn.execute(
        sa.select(_R.rollout_id, _R.status).where(
            _R.project_id == project_id, _R.agent == agent, _R.status.in_(ACTIVE_STATUSES)
        )
    ).first()
    if active is not None:
        raise ConflictError(
            f"rollout {active.rollout_id} is {active.status} on agent {agent!r}; "
            f"abort it or wait for it to end (tuneloop rollout abort {agent})"
        )
    experiment = running_experiment(conn, project_id, agent)
    if experiment is not None:
        raise ConflictError(
            f"experiment {experiment!r} is running on agent {agent!r}; an experiment and "
            "a rollout would split the same units: stop the experiment first"
        )
    return candidate, production


class RolloutRepository:
    """Rollout rows and timelines of every project in one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def _labels(self, conn: sa.Connection, rows: Sequence[Any]) -> dict[tuple[str, str, str], str]:
        wanted = {
            (r.project_id, r.agent, h) for r in rows for h in (r.candidate_hash, r.stable_hash)
        }
        if not wanted:
            return {}
        query = sa.select(_V.project_id, _V.agent, _V.version_hash, _V.label).where(
            _V.version_hash.in_({h for _, _, h in wanted}),
            _V.project_id.in_({p for p, _, _ in wanted}),
        )
        return {(p, a, h): label for p, a, h, label in conn.execute(query)}

    def insert(
        self,
        project_id: str,
        agent: str,
        *,
        version: str,
        definition: RolloutDefinition,
        author: str,
        now_ms: int,
        force_reason: str | None = None,
        gate: Callable[[str], object] | None = None,
        rollout_id: str | None = None,
    ) -> RolloutRecord:
        """Check and store a new running rollout of ``version`` at its first step.

        ``gate`` is called with the candidate's hash once the cheap checks pass (the
        eval-gate check); it raises to refuse. ``rollout_id`` names the rollout (default:
        a random one); it is also the salt that splits units, so the same id splits
        them the same way again.

        Raises:
            NotFoundError: no such version, or the agent has no production version.
            InvalidInputError: the candidate is production's version.
            ConflictError: another rollout is active, or an experiment runs, on the agent;
                or ``rollout_id`` is taken in the project.
        """
        validate_agent(agent)
        with self._engine.connect() as conn:
            candidate, _ = _check_start(conn, project_id, agent, version)
        if gate is not None:
            # Outside the write transaction: a forced gate writes its own audit row.
            gate(candidate.version_hash)
        with write_tx(self._engine, project_id) as conn:
            # Again under the project's write lock, so concurrent starts cannot both pass.
            candidate, production = _check_start(conn, project_id, agent, version)
            if rollout_id is None:
                rollout_id = f"ro-{secrets.token_hex(6)}"
            elif conn.execute(
                sa.select(_R.rollout_id).where(
                    _R.project_id == project_id, _R.rollout_id == rollout_id
                )
            ).first():
                raise ConflictError(
                    f"rollout id {rollout_id!r} is taken in this project; choose another, or "
                    "leave it out for a random one"
                )
            row = {
                "project_id": project_id, "rollout_id": rollout_id, "agent": agent,
                "status": "running", "candidate_hash": candidate.version_hash,
                "stable_hash": production.version_hash,
                "definition": to_json(definition.model_dump(mode="json")), "step": 0,
                "step_started_ms": now_ms, "step_deadline_ms": deadline_of(definition, 0, now_ms),
                "approved_steps": "[]", "revision": 1, "reason": None,
                "force_reason": force_reason, "created_by": author, "created_ms": now_ms,
                "updated_ms": now_ms, "finished_ms": None, "last_evaluated_ms": None,
            }  # fmt: skip
            conn.execute(rollouts.insert().values(row))
            weight = definition.steps[0].weight
            reason = (
                f"rollout of {candidate.label} started against {production.label}: "
                f"{weight:g} % of units on the candidate"
            )
            if force_reason:
                reason += f" (eval gate overridden: {force_reason})"
            self._append(conn, project_id, rollout_id, 1, now_ms, 0, "start", reason, author, {})
        return self.get(project_id, rollout_id)

    @staticmethod
    def _append(
        conn: sa.Connection, project_id: str, rollout_id: str, seq: int, now_ms: int,
        step: int, decision: str, reason: str, actor: str, figures: Mapping[str, Any],
    ) -> None:  # fmt: skip
        conn.execute(
            rollout_evaluations.insert().values(
                project_id=project_id,
                rollout_id=rollout_id,
                seq=seq,
                created_ms=now_ms,
                step=step,
                decision=decision,
                reason=reason,
                actor=actor[:64],
                figures=to_json(figures),
            )
        )

    def record(
        self,
        record: RolloutRecord,
        *,
        decision: str,
        reason: str,
        actor: str,
        now_ms: int,
        figures: Mapping[str, Any] | None = None,
        changes: Mapping[str, Any] | None = None,
        extra: Extra | None = None,
    ) -> RolloutRecord | None:
        """Apply ``changes`` to the row if it is still at ``record.revision``, with a timeline row.

        ``extra`` runs in the same transaction (an alert event on rollback). Returns the
        updated record, or None when someone else changed the rollout first.
        """
        values = dict(changes or {})
        if "approved_steps" in values:
            values["approved_steps"] = json.dumps(sorted(values["approved_steps"]))
        step = int(values.get("step", record.step))
        if record.active and values.get("status", record.status) not in ACTIVE_STATUSES:
            values.setdefault("finished_ms", now_ms)
        values.update(revision=record.revision + 1, updated_ms=now_ms)
        if figures:
            values["last_evaluated_ms"] = now_ms
        where = (_R.project_id == record.project_id, _R.rollout_id == record.rollout_id,
                 _R.revision == record.revision)  # fmt: skip
        with self._engine.begin() as conn:
            if conn.execute(rollouts.update().where(*where).values(values)).rowcount != 1:
                return None
            self._append(
                conn, record.project_id, record.rollout_id, record.revision + 1, now_ms, step,
                decision, reason, actor, figures or {},
            )  # fmt: skip
            if extra is not None:
                extra(conn)
        return self.get(record.project_id, record.rollout_id)

    def get(self, project_id: str, rollout_id: str) -> RolloutRecord:
        """One rollout; NotFoundError if the project has none by that id."""
        query = sa.select(rollouts).where(_R.project_id == project_id, _R.rollout_id == rollout_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
            if row is None:
                raise NotFoundError(
                    f"no rollout {rollout_id!r} in this project; list them with "
                    "`tuneloop rollout status AGENT`"
                )
            return record_of(row, self._labels(conn, [row]))

    def latest_for(self, project_id: str, agent: str) -> RolloutRecord | None:
        """The agent's active rollout, else its most recent one; None if it never had one."""
        query = (
            sa.select(rollouts)
            .where(_R.project_id == project_id, _R.agent == agent)
            .order_by(_R.status.in_(ACTIVE_STATUSES).desc(), _R.created_ms.desc())
            .limit(1)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
            return None if row is None else record_of(row, self._labels(conn, [row]))

    def active_for(self, project_id: str, agent: str) -> RolloutRecord | None:
        """The agent's running or paused rollout, if any."""
        latest = self.latest_for(project_id, agent)
        return latest if latest is not None and latest.active else None

    def find(
        self,
        project_id: str | None = None,
        *,
        agent: str | None = None,
        active_only: bool = False,
        limit: int = 100,
    ) -> list[RolloutRecord]:
        """Rollouts newest first; every project's when ``project_id`` is None."""
        query = sa.select(rollouts)
        if project_id is not None:
            query = query.where(_R.project_id == project_id)
        if agent is not None:
            query = query.where(_R.agent == agent)
        if active_only:
            query = query.where(_R.status.in_(ACTIVE_STATUSES))
        query = query.order_by(_R.created_ms.desc(), _R.rollout_id).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
            labels = self._labels(conn, rows)
        return [record_of(row, labels) for row in rows]

    def timeline(
        self,
        project_id: str,
        rollout_id: str,
        *,
        after_seq: int = 0,
        limit: int = MAX_TIMELINE,
        latest: bool = False,
    ) -> list[TimelineEntry]:
        """The rollout's timeline in order: after ``after_seq``, or its ``latest`` rows."""
        where = (_E.project_id == project_id, _E.rollout_id == rollout_id, _E.seq > after_seq)
        order = _E.seq.desc() if latest else _E.seq
        query = sa.select(rollout_evaluations).where(*where).order_by(order).limit(limit)
        with self._engine.connect() as conn:
            entries = [
                TimelineEntry(
                    r.seq,
                    r.created_ms,
                    r.step,
                    r.decision,
                    r.reason,
                    r.actor,
                    json.loads(r.figures),
                )
                for r in conn.execute(query)
            ]
        return entries[::-1] if latest else entries

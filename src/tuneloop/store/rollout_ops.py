"""Rollout operations: start, evaluate, apply decisions, and the people's actions.

The rollout row is the source of truth; the allocation the SDKs read follows it. Every
operation first commits the row (a compare-and-set), then publishes or withdraws the
allocation, and `reconcile` repairs any allocation left behind by a crash in between:
so a restarted controller resumes from the recorded step, never skipping or repeating
one. Promotion moves ``production`` first (a compare-and-set on the stable version),
so a crash before the row is marked promoted is finished by the next evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from tuneloop.config.allocations import AllocationSpec, VariantSpec
from tuneloop.config.versions import PRODUCTION
from tuneloop.errors import ConflictError, InvalidInputError, NotFoundError
from tuneloop.rollouts import Decision, Observation, RolloutDefinition, decide
from tuneloop.store.agent_state import AgentStateRepository
from tuneloop.store.alerts import emit_event
from tuneloop.store.configs import ConfigRepository
from tuneloop.store.rollout_reads import version_figures
from tuneloop.store.rollouts import RolloutRecord, RolloutRepository, deadline_of
from tuneloop.store.schema import state_allocations

CONTROLLER = "controller"
_RETRIES = 5


def allocation_of(record: RolloutRecord) -> AllocationSpec:
    """The allocation a rollout publishes: the candidate listed first (sticky as it grows)."""
    weight = record.definition.weight_of(record.step)
    return AllocationSpec(
        kind="rollout",
        key=record.rollout_id,
        salt=record.rollout_id,
        unit_type=record.definition.unit_type,
        variants=[
            VariantSpec(name="candidate", weight=weight, version=record.candidate),
            VariantSpec(name="stable", weight=1.0 - weight, version=record.stable),
        ],
    )


class RolloutService:
    """What the API and the controller do to rollouts."""

    def __init__(
        self,
        engine: sa.Engine,
        rollouts: RolloutRepository,
        configs: ConfigRepository,
        agent_state: AgentStateRepository,
    ) -> None:
        self._engine = engine
        self.rollouts = rollouts
        self._configs = configs
        self._state = agent_state

    # --- allocations -------------------------------------------------------------------

    def publish(self, record: RolloutRecord, *, now_ms: int, author: str = CONTROLLER) -> None:
        """Put the rollout's current weights in the agent state document."""
        self._state.put_allocation(
            record.project_id, record.agent, allocation_of(record), author=author, now_ms=now_ms
        )

    def withdraw(self, record: RolloutRecord, *, now_ms: int, author: str = CONTROLLER) -> None:
        """Take the rollout's allocation down: every unit gets production again."""
        self._state.delete_allocation(
            record.project_id, record.agent, "rollout", record.rollout_id,
            author=author, now_ms=now_ms,
        )  # fmt: skip

    def reconcile(self, *, now_ms: int) -> int:
        """Make every published rollout allocation match its row; returns the repairs made."""
        s = state_allocations.c
        query = sa.select(s.project_id, s.agent, s.alloc_key, s.spec).where(s.kind == "rollout")
        with self._engine.connect() as conn:
            published = {(p, key): (agent, spec) for p, agent, key, spec in conn.execute(query)}
        repairs = 0
        for record in self.rollouts.find(active_only=True, limit=10_000):
            found = published.pop((record.project_id, record.rollout_id), None)
            wanted = allocation_of(record)
            if found is None or AllocationSpec.model_validate_json(found[1]) != wanted:
                self.publish(record, now_ms=now_ms)
                repairs += 1
        for (project_id, key), (agent, _spec) in published.items():
            self._state.delete_allocation(
                project_id, agent, "rollout", key, author=CONTROLLER, now_ms=now_ms
            )
            repairs += 1
        return repairs

    # --- starting and evaluating -------------------------------------------------------

    def start(
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
        """Start a rollout of ``version`` against production (see `RolloutRepository.insert`)."""
        record = self.rollouts.insert(
            project_id, agent, version=version, definition=definition, author=author,
            now_ms=now_ms, force_reason=force_reason, gate=gate, rollout_id=rollout_id,
        )  # fmt: skip
        self.publish(record, now_ms=now_ms, author=author)
        return record

    def observe(self, record: RolloutRecord, *, now_ms: int) -> Observation:
        """Both versions' figures over the current step's window.

        When the step gives the stable version no traffic (a 100 % step), its figures
        are those of the same length of time just before the step started.
        """
        since, until = record.step_started_ms, max(now_ms, record.step_started_ms) + 1

        def figures(version: str, start: int, end: int) -> Any:
            return version_figures(
                self._engine, record.project_id, record.agent, version,
                since_ms=start, until_ms=end,
            )  # fmt: skip

        candidate = figures(record.candidate, since, until)
        if record.definition.weight_of(record.step) < 1.0:
            stable = figures(record.stable, since, until)
        else:
            stable = figures(record.stable, 2 * since - until + 1, since)
        return Observation(now_ms, candidate, stable)

    def evaluate(
        self, record: RolloutRecord, *, now_ms: int, actor: str = CONTROLLER
    ) -> tuple[Decision, RolloutRecord | None]:
        """Observe, decide and apply; the decision and the record after it (None: lost a race)."""
        decision = decide(record.definition, record.state(), self.observe(record, now_ms=now_ms))
        return decision, self.apply(record, decision, now_ms=now_ms, actor=actor)

    def apply(
        self, record: RolloutRecord, decision: Decision, *, now_ms: int, actor: str = CONTROLLER
    ) -> RolloutRecord | None:
        """Carry out a decision; None when the rollout changed under us (nothing done)."""
        figures = decision.to_data()

        def save(changes: dict[str, Any], extra: Any = None) -> RolloutRecord | None:
            return self.rollouts.record(
                record, decision=decision.action, reason=decision.reason, actor=actor,
                now_ms=now_ms, figures=figures, changes=changes, extra=extra,
            )  # fmt: skip

        match decision.action:
            case "hold":
                return save({})
            case "pause":
                return save({"status": "paused", "reason": decision.reason})
            case "advance":
                changes = {
                    "step": decision.step, "step_started_ms": now_ms,
                    "step_deadline_ms": deadline_of(record.definition, decision.step, now_ms),
                }  # fmt: skip
                updated = save(changes)
                if updated is not None:
                    self.publish(updated, now_ms=now_ms)
                return updated
            case "promote":
                try:
                    self._promote(record, now_ms=now_ms)
                except ConflictError as exc:
                    moved = Decision(
                        "pause", f"cannot promote: production moved during the rollout ({exc})",
                        record.step, decision.guards, decision.limits, decision.figures,
                    )  # fmt: skip
                    return self.apply(record, moved, now_ms=now_ms, actor=actor)
                updated = save({"status": "promoted", "reason": decision.reason})
                if updated is not None:
                    self.withdraw(updated, now_ms=now_ms)
                return updated
            case "rollback":
                updated = save(
                    {"status": "rolled_back", "reason": decision.reason},
                    extra=self._alert(record, decision.reason, now_ms),
                )
                if updated is not None:
                    self.withdraw(updated, now_ms=now_ms)
                return updated

    def _promote(self, record: RolloutRecord, *, now_ms: int) -> None:
        """Move production to the candidate; already there (a retried promotion) is fine."""
        try:
            self._configs.move_channel(
                record.project_id, record.agent, PRODUCTION, record.candidate,
                expected=record.stable, author=f"rollout:{record.rollout_id}", now_ms=now_ms,
            )  # fmt: skip
        except ConflictError:
            channels = self._configs.list_channels(record.project_id, record.agent)
            if not any(c.channel == PRODUCTION and c.version == record.candidate for c in channels):
                raise

    @staticmethod
    def _alert(record: RolloutRecord, reason: str, now_ms: int) -> Callable[[sa.Connection], Any]:
        label = record.candidate_label or record.candidate[:12]

        def emit(conn: sa.Connection) -> None:
            emit_event(
                conn, record.project_id, agent=record.agent, source="rollout", status="firing",
                dedupe_key=f"rollout:{record.rollout_id}:rollback",
                name=f"rollout {record.rollout_id} rolled back",
                message=f"rollout of {label} on {record.agent!r} rolled back: {reason}",
                now_ms=now_ms, webhooks=record.definition.notify,
                rollout_id=record.rollout_id, severity="critical",
            )  # fmt: skip

        return emit

    # --- people's actions ----------------------------------------------------------------

    def _act(
        self,
        project_id: str,
        rollout_id: str,
        change: Callable[[RolloutRecord], tuple[str, str, dict[str, Any]]],
        *,
        actor: str,
        now_ms: int,
        extra: Callable[[RolloutRecord, str], Any] | None = None,
    ) -> RolloutRecord:
        """Apply a person's change, re-reading the rollout if a tick changed it meanwhile."""
        for _ in range(_RETRIES):
            record = self.rollouts.get(project_id, rollout_id)
            decision, reason, changes = change(record)
            updated = self.rollouts.record(
                record, decision=decision, reason=reason, actor=actor, now_ms=now_ms,
                changes=changes, extra=extra(record, reason) if extra else None,
            )  # fmt: skip
            if updated is not None:
                return updated
        raise ConflictError(f"rollout {rollout_id} kept changing; retry")

    @staticmethod
    def _require_active(record: RolloutRecord, verb: str) -> None:
        if not record.active:
            raise InvalidInputError(
                f"rollout {record.rollout_id} is {record.status}; only a running or paused "
                f"rollout can be {verb}"
            )

    def pause(
        self, project_id: str, rollout_id: str, *, actor: str, now_ms: int, reason: str = ""
    ) -> RolloutRecord:
        """Hold the rollout at its current weight until resumed (guards still roll back)."""

        def change(record: RolloutRecord) -> tuple[str, str, dict[str, Any]]:
            self._require_active(record, "paused")
            if record.status == "paused":
                raise InvalidInputError(f"rollout {rollout_id} is already paused")
            why = reason or f"paused by {actor}"
            return "pause", why, {"status": "paused", "reason": why}

        return self._act(project_id, rollout_id, change, actor=actor, now_ms=now_ms)

    def resume(self, project_id: str, rollout_id: str, *, actor: str, now_ms: int) -> RolloutRecord:
        """Continue a paused rollout; an expired step gets its maximum duration again."""

        def change(record: RolloutRecord) -> tuple[str, str, dict[str, Any]]:
            if record.status != "paused":
                raise InvalidInputError(
                    f"rollout {rollout_id} is {record.status}, not paused; nothing to resume"
                )
            deadline = record.step_deadline_ms
            if deadline is not None and deadline <= now_ms:
                deadline = deadline_of(record.definition, record.step, now_ms)
            changes = {"status": "running", "reason": None, "step_deadline_ms": deadline}
            return "resume", f"resumed by {actor}", changes

        return self._act(project_id, rollout_id, change, actor=actor, now_ms=now_ms)

    def approve(
        self, project_id: str, rollout_id: str, *, actor: str, now_ms: int, step: int | None = None
    ) -> RolloutRecord:
        """Approve a step that needs approval (default: the next one); ``step`` counts from 1."""

        def change(record: RolloutRecord) -> tuple[str, str, dict[str, Any]]:
            self._require_active(record, "approved")
            steps = record.definition.steps
            index = record.step + 1 if step is None else step - 1
            if not 0 <= index < len(steps):
                raise InvalidInputError(
                    f"rollout {rollout_id} has steps 1 to {len(steps)}; there is no step "
                    f"{index + 1} to approve"
                )
            weight = f"{steps[index].weight:g} %"
            if index <= record.step:
                raise InvalidInputError(f"step {index + 1} ({weight}) has already started")
            if not steps[index].approval:
                raise InvalidInputError(
                    f"step {index + 1} ({weight}) of rollout {rollout_id} needs no approval"
                )
            if index in record.approved_steps:
                raise InvalidInputError(f"step {index + 1} ({weight}) is already approved")
            approved = record.approved_steps | {index}
            return (
                "approve",
                f"step {index + 1} ({weight}) approved by {actor}",
                {"approved_steps": approved},
            )

        return self._act(project_id, rollout_id, change, actor=actor, now_ms=now_ms)

    def stop(
        self, project_id: str, rollout_id: str, *, actor: str, now_ms: int, rollback: bool = False,
        reason: str = "",
    ) -> RolloutRecord:  # fmt: skip
        """Abort (or roll back) an active rollout: the candidate loses its units."""
        status = "rolled_back" if rollback else "aborted"

        def change(record: RolloutRecord) -> tuple[str, str, dict[str, Any]]:
            self._require_active(record, "rolled back" if rollback else "aborted")
            why = reason or f"{'rolled back' if rollback else 'aborted'} by {actor}"
            return ("rollback" if rollback else "abort"), why, {"status": status, "reason": why}

        extra = (lambda record, why: self._alert(record, why, now_ms)) if rollback else None
        updated = self._act(project_id, rollout_id, change, actor=actor, now_ms=now_ms, extra=extra)
        self.withdraw(updated, now_ms=now_ms, author=actor)
        return updated

    def rollback_agent(
        self, project_id: str, agent: str, *, actor: str, now_ms: int, to: str | None = None
    ) -> dict[str, Any]:
        """One command back to safety: stop any active rollout; move production back.

        With an active rollout, production is still the stable version, so it stays
        there unless ``to`` names another version. Without one, production moves to
        ``to`` or to the version it was on before its last move.
        """
        stopped = None
        active = self.rollouts.active_for(project_id, agent)
        if active is not None:
            stopped = self.stop(
                project_id, active.rollout_id, actor=actor, now_ms=now_ms, rollback=True,
                reason=f"rolled back by {actor} (tuneloop rollback)",
            )  # fmt: skip
        moved = None
        if active is None or to is not None:
            target = to or self._configs.previous_version(project_id, agent, PRODUCTION)
            if target is None:
                raise NotFoundError(
                    f"production of {agent!r} has no earlier version to go back to; name one "
                    "with --to"
                )
            current = next(
                c for c in self._configs.list_channels(project_id, agent) if c.channel == PRODUCTION
            )
            channel, _ = self._configs.move_channel(
                project_id, agent, PRODUCTION, target, expected=current.version, author=actor,
                now_ms=now_ms, rollback=True,
            )  # fmt: skip
            moved = {"from": current.version, "from_label": current.label,
                     "to": channel.version, "to_label": channel.label}  # fmt: skip
        return {
            "agent": agent,
            "rollout": stopped.to_data() if stopped else None,
            "production": moved,
        }

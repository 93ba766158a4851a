"""The experiments service: create, start, stop, conclude and analyse, on a `Store`.

The server's router and tests call it; it resolves versions, checks the eval gate,
moves production on a shipped conclusion, and reads the units an analysis needs.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tuneloop.clock import Clock
from tuneloop.config.versions import PRODUCTION, validate_agent
from tuneloop.errors import ConfigError, ConflictError
from tuneloop.experiments.definition import ExperimentIn, build_definition
from tuneloop.experiments.lifecycle import Decision, ExperimentRecord, Status, next_status
from tuneloop.experiments.metrics import metric_def
from tuneloop.experiments.results import LookInterval, experiment_results
from tuneloop.store import Store
from tuneloop.store.evals import require_passing_gate
from tuneloop.store.experiment_reads import read_units

_SLUG = re.compile(r"[^a-z0-9._-]+")


class ConcludeIn(BaseModel):
    """The decision on a stopped experiment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Decision
    variant: str | None = Field(
        default=None, description="the variant shipped (default: the only treatment)"
    )
    reason: str = Field(default="", max_length=4096)
    promote: bool = Field(
        default=False, description="move production to the shipped variant's version (audited)"
    )


def generated_key(agent: str) -> str:
    """An experiment id made from the agent's name and a random suffix."""
    slug = _SLUG.sub("-", agent.lower()).strip("-._")[:48] or "experiment"
    return f"{slug}-{secrets.token_hex(4)}"


class ExperimentService:
    """Experiments over one store, with time from ``clock``."""

    def __init__(self, store: Store, *, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def create(self, project_id: str, body: ExperimentIn, *, author: str) -> ExperimentRecord:
        """Check and store a draft experiment.

        The control's version defaults to production's; every variant's version must
        be one of the agent's. A treatment whose eval gate failed is refused unless
        ``force_reason`` says why (recorded in the audit log).

        Raises:
            ConfigError: weights, metrics, margins or settings that cannot work.
            InvalidInputError: a version of another agent.
            NotFoundError: an unknown version (or no production version yet).
            ConflictError: the id is taken.
            GateFailedError: a treatment failed its eval gate, unforced.
        """
        agent = validate_agent(body.agent)
        key = body.key or generated_key(agent)
        if self._store.experiments.exists(project_id, key):
            raise ConflictError(f"experiment {key!r} already exists; pick another key")
        versions: dict[str, tuple[str, str]] = {}
        for index, variant in enumerate(body.variants):
            ref = variant.version
            if ref is None:
                if index:
                    raise ConfigError(
                        f"variant {variant.name!r} needs a version; only the control (the "
                        "first variant) defaults to production's"
                    )
                ref = PRODUCTION
            found = self._store.configs.get_version(project_id, agent, ref)
            versions[variant.name] = (found.hash, found.label)
        definition = build_definition(body, key=key, versions=versions)
        control = definition.control.version
        for version in dict.fromkeys(v.version for v in definition.variants[1:]):
            if version != control:
                require_passing_gate(
                    self._store,
                    project_id,
                    agent,
                    version,
                    definition.gate_override,
                    author=author,
                    purpose=f"experiment {key}",
                    clock=self._clock,
                )
        return self._store.experiments.create(
            project_id, definition, author=author, now_ms=self._clock.now_ms()
        )

    def get(self, project_id: str, key: str) -> ExperimentRecord:
        """One experiment."""
        return self._store.experiments.get(project_id, key)

    def describe(self, project_id: str, key: str) -> dict[str, Any]:
        """An experiment with its lifecycle events, as JSON-ready data."""
        record = self._store.experiments.get(project_id, key)
        events = self._store.experiments.events(project_id, key)
        return {**record.to_data(), "events": [event.to_data() for event in events]}

    def list_experiments(
        self,
        project_id: str,
        *,
        agent: str | None = None,
        status: Status | None = None,
        limit: int = 100,
    ) -> list[ExperimentRecord]:
        """Experiments, newest first."""
        return self._store.experiments.list_experiments(
            project_id, agent=agent, status=status, limit=limit
        )

    def start(self, project_id: str, key: str, *, author: str) -> ExperimentRecord:
        """Publish the allocation: the SDK assigns the agent's units from now on."""
        return self._store.experiments.start(
            project_id, key, author=author, now_ms=self._clock.now_ms()
        )

    def stop(self, project_id: str, key: str, *, author: str, reason: str = "") -> ExperimentRecord:
        """Take the allocation down: the agent's units get production again."""
        return self._store.experiments.stop(
            project_id, key, author=author, now_ms=self._clock.now_ms(), reason=reason
        )

    def conclude(
        self, project_id: str, key: str, body: ConcludeIn, *, author: str
    ) -> ExperimentRecord:
        """Record the decision; with ``promote``, move production to the shipped version.

        The move is a compare-and-set on production as it is now, audited as a ``move``;
        it happens before the decision is recorded, so a refused move records nothing.

        Raises:
            ConflictError: the experiment is not stopped, or production moved meanwhile.
            ConfigError: a variant or promotion that does not fit the decision.
        """
        record = self._store.experiments.get(project_id, key)
        next_status(key, record.status, "conclude")
        definition = record.definition
        treatments = [v.name for v in definition.variants[1:]]
        winner = body.variant
        if body.decision == "ship":
            if winner is None:
                if len(treatments) != 1:
                    raise ConfigError(
                        f"experiment {key!r} has several treatments; name the one to ship "
                        f"(variant: one of {', '.join(treatments)})"
                    )
                winner = treatments[0]
            if winner not in treatments:
                raise ConfigError(
                    f"ship names a treatment ({', '.join(treatments)}), not {winner!r}; to keep "
                    f"the control, conclude with decision keep_control"
                )
        elif winner is not None or body.promote:
            raise ConfigError(
                f"decision {body.decision!r} ships nothing: leave out the variant and promote"
            )
        detail: dict[str, Any] = {}
        if body.promote:
            assert winner is not None
            shipped = definition.variant(winner)
            configs = self._store.configs
            current = configs.get_version(project_id, definition.agent, PRODUCTION)
            _, moved = configs.move_channel(
                project_id,
                definition.agent,
                PRODUCTION,
                shipped.version,
                expected=current.hash,
                author=author,
                now_ms=self._clock.now_ms(),
            )
            detail["promotion"] = {
                "channel": PRODUCTION,
                "from": current.hash,
                "to": shipped.version,
                "label": shipped.label,
                "moved": moved,
            }
        return self._store.experiments.conclude(
            project_id,
            key,
            decision=body.decision,
            winner=winner,
            reason=body.reason,
            author=author,
            now_ms=self._clock.now_ms(),
            detail=detail,
        )

    def results(
        self, project_id: str, key: str, *, interval: LookInterval = "day"
    ) -> dict[str, Any]:
        """The analysis of a started experiment's units (see `experiment_results`).

        Raises:
            ConflictError: it is a draft (no window, no units yet).
        """
        record = self._store.experiments.get(project_id, key)
        now_ms = self._clock.now_ms()
        window = record.window(now_ms)
        if window is None:
            raise ConflictError(
                f"experiment {key!r} is a draft: it has no results until it starts "
                f"(tuneloop experiment start {key})"
            )
        definition = record.definition
        defs = [metric_def(name) for name in definition.metric_names()]
        scores = {d.feedback for d in defs if d.feedback is not None}
        table = read_units(
            self._store.engine,
            project_id,
            definition.agent,
            by="variant",
            groups=[v.name for v in definition.variants],
            since_ms=window[0],
            until_ms=window[1],
            experiment=key,
            unit_type=definition.unit_type,
            feedback_names=sorted(scores),
            latency=any(d.kind == "quantile" for d in defs),
        )
        return experiment_results(record, table, now_ms=now_ms, interval=interval)

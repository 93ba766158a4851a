"""Feature flags, experiment and rollout allocations, and the agent state document.

Experiments (issue 4) and rollouts (issue 8) publish a running allocation with
``store.agent_state.put_allocation(project, agent, AllocationSpec(...), ...)`` and take
it down with ``delete_allocation``; the state document then carries it to every SDK.
"""

from __future__ import annotations

import sqlalchemy as sa

from tuneloop.config.allocations import AllocationSpec, build_state, resolve_allocation
from tuneloop.config.canonical import canonical_json, sha256_hex
from tuneloop.config.state import AgentState, AllocationKind, Flag
from tuneloop.config.versions import PRODUCTION, validate_agent, validate_flag_key
from tuneloop.errors import NotFoundError, StoreError
from tuneloop.store.configs import (
    append_audit,
    channel_row,
    resolve_version,
    version_from_row,
    write_tx,
)
from tuneloop.store.schema import config_versions, feature_flags, state_allocations

_F = feature_flags.c
_S = state_allocations.c
_V = config_versions.c


class AgentStateRepository:
    """What the state document is made of, besides versions: flags and allocations."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def list_flags(self, project_id: str, agent: str) -> list[Flag]:
        """An agent's feature flags, by key."""
        query = sa.select(_F.definition).where(_F.project_id == project_id, _F.agent == agent)
        with self._engine.connect() as conn:
            texts = list(conn.execute(query.order_by(_F.flag_key)).scalars())
        return [Flag.model_validate_json(text) for text in texts]

    def get_flag(self, project_id: str, agent: str, key: str) -> Flag:
        """One flag; NotFoundError if the agent has none by that key."""
        where = (_F.project_id == project_id, _F.agent == agent, _F.flag_key == key)
        with self._engine.connect() as conn:
            text = conn.execute(sa.select(_F.definition).where(*where)).scalar()
        if text is None:
            raise NotFoundError(f"agent {agent!r} has no flag {key!r}")
        return Flag.model_validate_json(text)

    def put_flag(
        self, project_id: str, agent: str, flag: Flag, *, author: str, now_ms: int
    ) -> tuple[Flag, bool]:
        """Create or replace a flag; returns ``(flag, created)``. Audited as ``flag_set``."""
        validate_agent(agent)
        validate_flag_key(flag.key)
        where = (_F.project_id == project_id, _F.agent == agent, _F.flag_key == flag.key)
        text = canonical_json(flag.model_dump(mode="json"))
        with write_tx(self._engine, project_id) as conn:
            before = conn.execute(sa.select(_F.definition).where(*where)).scalar()
            if before == text:
                return flag, False
            stamp = {"definition": text, "updated_ms": now_ms, "updated_by": author}
            if before is None:
                new = {"project_id": project_id, "agent": agent, "flag_key": flag.key}
                conn.execute(feature_flags.insert().values(created_ms=now_ms, **new, **stamp))
            else:
                conn.execute(feature_flags.update().where(*where).values(stamp))
            append_audit(
                conn, project_id, agent, "flag_set", key_id=author, now_ms=now_ms,
                before=sha256_hex(before) if before else None, after=sha256_hex(text),
                detail={"flag": flag.key},
            )  # fmt: skip
        return flag, before is None

    def delete_flag(
        self, project_id: str, agent: str, key: str, *, author: str, now_ms: int
    ) -> None:
        """Delete a flag; NotFoundError if there is none. Audited as ``flag_delete``."""
        where = (_F.project_id == project_id, _F.agent == agent, _F.flag_key == key)
        with write_tx(self._engine, project_id) as conn:
            before = conn.execute(sa.select(_F.definition).where(*where)).scalar()
            if before is None:
                raise NotFoundError(f"agent {agent!r} has no flag {key!r}")
            conn.execute(feature_flags.delete().where(*where))
            append_audit(
                conn, project_id, agent, "flag_delete", key_id=author, now_ms=now_ms,
                before=sha256_hex(before), detail={"flag": key},
            )  # fmt: skip

    def put_allocation(
        self, project_id: str, agent: str, spec: AllocationSpec, *, author: str, now_ms: int
    ) -> None:
        """Publish (or replace) a running experiment's or rollout's allocation.

        Every variant's version must be one of ``agent``'s versions (full hash). Audited as
        ``allocation_set``; the state document's ETag changes with it.
        """
        validate_agent(agent)
        where = (_S.project_id == project_id, _S.agent == agent, _S.kind == spec.kind,
                 _S.alloc_key == spec.key)  # fmt: skip
        text = canonical_json(spec.model_dump(mode="json"))
        with write_tx(self._engine, project_id) as conn:
            for variant in spec.variants:
                resolve_version(conn, project_id, agent, variant.version)
            before = conn.execute(sa.select(_S.spec).where(*where)).scalar()
            conn.execute(state_allocations.delete().where(*where))
            row = {"project_id": project_id, "agent": agent, "kind": spec.kind,
                   "alloc_key": spec.key, "spec": text, "updated_ms": now_ms}  # fmt: skip
            conn.execute(state_allocations.insert().values(row))
            append_audit(
                conn, project_id, agent, "allocation_set", key_id=author, now_ms=now_ms,
                before=sha256_hex(before) if before else None, after=sha256_hex(text),
                detail={"kind": spec.kind, "key": spec.key},
            )  # fmt: skip

    def delete_allocation(
        self,
        project_id: str,
        agent: str,
        kind: AllocationKind,
        key: str,
        *,
        author: str,
        now_ms: int,
    ) -> bool:
        """Take an allocation down; False if there was none. Audited as ``allocation_delete``."""
        where = (_S.project_id == project_id, _S.agent == agent, _S.kind == kind,
                 _S.alloc_key == key)  # fmt: skip
        with write_tx(self._engine, project_id) as conn:
            before = conn.execute(sa.select(_S.spec).where(*where)).scalar()
            if before is None:
                return False
            conn.execute(state_allocations.delete().where(*where))
            append_audit(
                conn, project_id, agent, "allocation_delete", key_id=author, now_ms=now_ms,
                before=sha256_hex(before), detail={"kind": kind, "key": key},
            )  # fmt: skip
        return True

    def list_allocations(self, project_id: str, agent: str) -> list[AllocationSpec]:
        """An agent's published allocations, by kind and key."""
        query = sa.select(_S.spec).where(_S.project_id == project_id, _S.agent == agent)
        with self._engine.connect() as conn:
            texts = list(conn.execute(query.order_by(_S.kind, _S.alloc_key)).scalars())
        return [AllocationSpec.model_validate_json(text) for text in texts]

    def state(self, project_id: str, agent: str, *, now_ms: int) -> AgentState:
        """The agent state document: production's config, allocations and flags."""
        validate_agent(agent)
        with self._engine.connect() as conn:
            production = channel_row(conn, project_id, agent, PRODUCTION)
            texts = conn.execute(
                sa.select(_S.spec)
                .where(_S.project_id == project_id, _S.agent == agent)
                .order_by(_S.kind, _S.alloc_key)
            ).scalars()
            specs = [AllocationSpec.model_validate_json(text) for text in texts]
            flag_query = sa.select(_F.definition).where(
                _F.project_id == project_id, _F.agent == agent
            )
            flags = [
                Flag.model_validate_json(t)
                for t in conn.execute(flag_query.order_by(_F.flag_key)).scalars()
            ]
            wanted = {variant.version for spec in specs for variant in spec.variants}
            if production is not None:
                wanted.add(production.version_hash)
            rows = conn.execute(
                sa.select(config_versions).where(
                    _V.project_id == project_id, _V.agent == agent, _V.version_hash.in_(wanted)
                )
            )
            versions = {row.version_hash: version_from_row(row) for row in rows}
        missing = wanted - versions.keys()
        if missing:
            raise StoreError(
                f"agent {agent!r}: allocations name missing versions {sorted(missing)}"
            )
        return build_state(
            agent,
            production=versions[production.version_hash] if production else None,
            allocations=[resolve_allocation(spec, versions) for spec in specs],
            flags=flags,
            now_ms=now_ms,
        )

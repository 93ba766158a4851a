"""Config versions, channels and the audit chain.

Every write runs in one transaction (:func:`write_tx`) that first locks the project's
audit-chain head, an UPDATE of its row: a row lock on PostgreSQL, the database write
lock on SQLite. So writes to one project's configs are serialized, the checks read what
the write will see, and the audit row commits with the change or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tuneloop.config.audit import (
    GENESIS,
    AuditAction,
    AuditEntry,
    ChainReport,
    channel_problems,
    verify_chain,
)
from tuneloop.config.bundle import Bundle
from tuneloop.config.canonical import canonical_json, sha256_hex
from tuneloop.config.model import AgentConfig
from tuneloop.config.versions import (
    PRODUCTION,
    ChannelInfo,
    VersionInfo,
    check_expected,
    check_rollback,
    classify_ref,
    is_channel_name,
    next_label,
    validate_agent,
    validate_channel,
    validate_label,
)
from tuneloop.errors import ConflictError, InvalidInputError, NotFoundError, StoreError
from tuneloop.store.schema import config_audit, config_audit_heads, config_channels, config_versions

_V = config_versions.c
_C = config_channels.c
_A = config_audit.c
_H = config_audit_heads.c


def version_from_row(row: Any, *, with_config: bool = True) -> VersionInfo:
    """A stored version row as a VersionInfo (``config`` empty without ``with_config``)."""
    return VersionInfo(
        agent=row.agent,
        hash=row.version_hash,
        label=row.label,
        parents=tuple(json.loads(row.parents)),
        bundle_id=row.bundle_id,
        bundle_version=row.bundle_version,
        author=row.author,
        created_ms=row.created_ms,
        message=row.message,
        config=json.loads(row.config) if with_config else {},
        bundle=json.loads(row.bundle) if with_config and row.bundle else None,
    )


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        project_id=row.project_id,
        seq=row.seq,
        agent=row.agent,
        action=row.action,
        channel=row.channel,
        key_id=row.key_id,
        created_ms=row.created_ms,
        before_hash=row.before_hash,
        after_hash=row.after_hash,
        detail=json.loads(row.detail),
        prev_hash=row.prev_hash,
        row_hash=row.row_hash,
    )


@contextmanager
def write_tx(engine: sa.Engine, project_id: str) -> Iterator[sa.Connection]:
    """A transaction holding the project's audit-chain lock; commits when the block ends."""
    head = {"project_id": project_id, "seq": 0, "head_hash": GENESIS}
    dialect = sqlite if engine.dialect.name == "sqlite" else postgresql
    try:
        with engine.begin() as conn:
            conn.execute(dialect.insert(config_audit_heads).values(head).on_conflict_do_nothing())
        with engine.begin() as conn:
            lock = config_audit_heads.update().where(_H.project_id == project_id)
            conn.execute(lock.values(seq=_H.seq))
            yield conn
    except sa.exc.IntegrityError as exc:
        raise ConflictError(f"a concurrent change got there first; retry ({exc.orig})") from exc
    except sa.exc.OperationalError as exc:
        raise StoreError(f"the database refused the config change: {exc.orig}") from exc


def append_audit(
    conn: sa.Connection,
    project_id: str,
    agent: str,
    action: AuditAction,
    *,
    key_id: str,
    now_ms: int,
    channel: str | None = None,
    before: str | None = None,
    after: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one row to the project's chain; call inside :func:`write_tx`."""
    head = conn.execute(sa.select(_H.seq, _H.head_hash).where(_H.project_id == project_id)).one()
    fields: dict[str, Any] = {
        "project_id": project_id, "seq": head.seq + 1, "agent": agent, "action": action,
        "channel": channel, "key_id": key_id, "created_ms": now_ms, "before_hash": before,
        "after_hash": after, "detail": detail or {}, "prev_hash": head.head_hash,
    }  # fmt: skip
    entry = AuditEntry(**fields, row_hash=AuditEntry(**fields, row_hash="").computed_hash())
    row = {**fields, "detail": canonical_json(entry.detail), "row_hash": entry.row_hash}
    conn.execute(config_audit.insert().values(row))
    conn.execute(
        config_audit_heads.update()
        .where(_H.project_id == project_id)
        .values(seq=entry.seq, head_hash=entry.row_hash)
    )
    return entry


def channel_row(conn: sa.Connection, project_id: str, agent: str, channel: str) -> Any:
    """The channel's row with its version's label and creation time, or None."""
    same_version = sa.and_(
        _V.project_id == _C.project_id, _V.agent == _C.agent, _V.version_hash == _C.version_hash
    )
    return conn.execute(
        sa.select(config_channels, _V.label, _V.created_ms.label("version_created_ms"))
        .join(config_versions, same_version)
        .where(_C.project_id == project_id, _C.agent == agent, _C.channel == channel)
    ).first()


def _channel(row: Any) -> ChannelInfo:
    return ChannelInfo(
        row.agent, row.channel, row.version_hash, row.label, row.updated_ms, row.updated_by
    )


def resolve_version(conn: sa.Connection, project_id: str, agent: str, ref: str) -> Any:
    """The version row ``ref`` names: full hash, unique prefix (>= 8), label or channel.

    Raises:
        NotFoundError: no such version of ``agent``.
        InvalidInputError: the ref is malformed, ambiguous, or names another agent's version.
    """
    try:
        kind = classify_ref(ref)
    except InvalidInputError:
        if not is_channel_name(ref):
            raise
        channel = channel_row(conn, project_id, agent, ref)
        if channel is None:
            raise NotFoundError(f"agent {agent!r} has no channel {ref!r}") from None
        return resolve_version(conn, project_id, agent, channel.version_hash)
    match = {"label": _V.label == ref, "hash": _V.version_hash == ref}.get(
        kind, _V.version_hash.startswith(ref)
    )
    scope = (_V.project_id == project_id, _V.agent == agent)
    query = sa.select(config_versions).where(*scope, match).order_by(_V.version_hash)
    rows = conn.execute(query.limit(5)).all()
    if len(rows) > 1:
        names = ", ".join(f"{r.version_hash[:12]} ({r.label})" for r in rows)
        raise InvalidInputError(f"{ref!r} names several versions of {agent!r}: {names}; say more")
    if rows:
        return rows[0]
    if kind != "label":
        elsewhere = sa.select(_V.agent).where(_V.project_id == project_id, match).limit(1)
        other = conn.execute(elsewhere).scalar()
        if other is not None:
            raise InvalidInputError(
                f"version {ref!r} belongs to agent {other!r}, not {agent!r}; an agent's "
                "channels, bundles and experiments only use its own versions"
            )
    raise NotFoundError(
        f"agent {agent!r} has no version {ref!r}; list them with `tuneloop config versions {agent}`"
    )


class ConfigRepository:
    """Versions, channels and the audit log of every agent in one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def get_version(self, project_id: str, agent: str, ref: str) -> VersionInfo:
        """The version ``ref`` names (see :func:`resolve_version`), with its config."""
        with self._engine.connect() as conn:
            return version_from_row(resolve_version(conn, project_id, validate_agent(agent), ref))

    def list_versions(self, project_id: str, agent: str, *, limit: int = 100) -> list[VersionInfo]:
        """An agent's versions, newest first, without their configs."""
        columns = [c for c in config_versions.c if c.name not in ("config", "bundle")]
        query = (
            sa.select(*columns)
            .where(_V.project_id == project_id, _V.agent == agent)
            .order_by(_V.created_ms.desc(), _V.label.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [version_from_row(row, with_config=False) for row in conn.execute(query)]

    def list_agents(self, project_id: str) -> list[dict[str, Any]]:
        """Agents with configs: how many versions, the latest one's time, their channels."""
        query = (
            sa.select(_V.agent, sa.func.count(), sa.func.max(_V.created_ms))
            .where(_V.project_id == project_id)
            .group_by(_V.agent)
            .order_by(_V.agent)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "agent": agent,
                "versions": count,
                "latest_ms": latest,
                "channels": {c.channel: c.label for c in self.list_channels(project_id, agent)},
            }
            for agent, count, latest in rows
        ]

    def create_version(
        self,
        project_id: str,
        agent: str,
        config: AgentConfig,
        *,
        author: str,
        now_ms: int,
        label: str | None = None,
        message: str = "",
        parents: list[str] | None = None,
        bundle: Bundle | None = None,
        expected_hash: str | None = None,
    ) -> tuple[VersionInfo, bool]:
        """Store ``config`` as a version; returns ``(version, created)``.

        The same content again returns the existing version and False. Without
        ``parents`` the parent is production's version; an agent's first version
        becomes production. ``expected_hash``, when given, must be the content's hash.
        """
        validate_agent(agent)
        if label is not None:
            validate_label(label)
        data = config.to_data()
        text = canonical_json(data)
        digest = sha256_hex(text)
        if expected_hash is not None and expected_hash != digest:
            raise InvalidInputError(
                f"version hash {expected_hash[:80]!r} does not match the config's content "
                f"(sha256 {digest}); the config changed after it was hashed"
            )
        scope = (_V.project_id == project_id, _V.agent == agent)
        with write_tx(self._engine, project_id) as conn:
            same = sa.select(config_versions).where(*scope, _V.version_hash == digest)
            existing = conn.execute(same).first()
            if existing is not None:
                return version_from_row(existing), False
            labels = list(conn.execute(sa.select(_V.label).where(*scope)).scalars())
            if label in labels:
                raise ConflictError(f"agent {agent!r} already has a version {label}; pick another")
            production = channel_row(conn, project_id, agent, PRODUCTION)
            if parents is None:
                parents = [production.version_hash] if production else []
            parent_hashes = [
                resolve_version(conn, project_id, agent, p).version_hash for p in parents
            ]
            version = VersionInfo(
                agent, digest, label or next_label(labels), tuple(parent_hashes),
                bundle.bundle_id if bundle else None, bundle.version if bundle else None,
                author, now_ms, message, data, bundle.to_data() if bundle else None,
            )  # fmt: skip
            row = {
                "project_id": project_id, "agent": agent, "version_hash": digest,
                "label": version.label, "parents": canonical_json(parent_hashes),
                "bundle_id": version.bundle_id, "bundle_version": version.bundle_version,
                "bundle": canonical_json(version.bundle) if version.bundle else None,
                "author": author, "message": message, "created_ms": now_ms, "config": text,
            }  # fmt: skip
            conn.execute(config_versions.insert().values(row))
            detail = {"label": version.label, "bundle": version.bundle_id, "parents": parent_hashes}
            append_audit(
                conn, project_id, agent, "create", key_id=author, now_ms=now_ms, after=digest,
                detail={**detail, "message": message},
            )  # fmt: skip
            if production is None:
                first = {"channel": PRODUCTION, "version_hash": digest, "updated_by": author}
                conn.execute(
                    config_channels.insert().values(
                        project_id=project_id, agent=agent, updated_ms=now_ms, **first
                    )
                )
                append_audit(
                    conn, project_id, agent, "move", key_id=author, now_ms=now_ms,
                    channel=PRODUCTION, after=digest, detail={"reason": "first version"},
                )  # fmt: skip
            return version, True

    def approve_version(
        self, project_id: str, agent: str, ref: str, *, author: str, now_ms: int, message: str = ""
    ) -> AuditEntry:
        """Record that ``author`` approved a version: a review sign-off in the audit log."""
        with write_tx(self._engine, project_id) as conn:
            row = resolve_version(conn, project_id, validate_agent(agent), ref)
            detail = {"label": row.label, "message": message}
            return append_audit(
                conn, project_id, agent, "approve", key_id=author, now_ms=now_ms,
                after=row.version_hash, detail=detail,
            )  # fmt: skip

    def list_channels(self, project_id: str, agent: str) -> list[ChannelInfo]:
        """An agent's channels, by name."""
        query = sa.select(_C.channel).where(_C.project_id == project_id, _C.agent == agent)
        with self._engine.connect() as conn:
            names = list(conn.execute(query.order_by(_C.channel)).scalars())
            return [_channel(channel_row(conn, project_id, agent, name)) for name in names]

    def move_channel(
        self,
        project_id: str,
        agent: str,
        channel: str,
        ref: str,
        *,
        expected: str | None,
        author: str,
        now_ms: int,
        rollback: bool = False,
    ) -> tuple[ChannelInfo, bool]:
        """Point ``channel`` at ``ref`` if it still points at ``expected``; ``(channel, moved)``.

        ``expected`` (any version ref) None means the channel must not exist yet.
        ``rollback`` requires an earlier version than the current one and is audited so.

        Raises:
            ConflictError: the channel is no longer where the caller saw it.
        """
        validate_agent(agent)
        validate_channel(channel)
        with write_tx(self._engine, project_id) as conn:
            target = resolve_version(conn, project_id, agent, ref)
            row = channel_row(conn, project_id, agent, channel)
            current = _channel(row) if row is not None else None
            wanted = None
            if expected is not None:
                # A channel name would always match itself and defeat the compare-and-set.
                classify_ref(expected)
                try:
                    wanted = resolve_version(conn, project_id, agent, expected).version_hash
                except (NotFoundError, InvalidInputError):
                    wanted = None
            check_expected(agent, channel, current, expected, wanted)
            if rollback:
                if current is None:
                    raise NotFoundError(f"agent {agent!r} has no channel {channel!r} to roll back")
                check_rollback(channel, current, row.version_created_ms, version_from_row(target))
            if current is not None and current.version == target.version_hash:
                return current, False
            values = {"version_hash": target.version_hash, "updated_ms": now_ms}
            if current is None:
                new = {"project_id": project_id, "agent": agent, "channel": channel}
                conn.execute(config_channels.insert().values(updated_by=author, **new, **values))
            else:
                where = (_C.project_id == project_id, _C.agent == agent, _C.channel == channel)
                # Compare-and-set in the statement itself, on top of the lock.
                cas = config_channels.update().where(*where, _C.version_hash == current.version)
                if conn.execute(cas.values(updated_by=author, **values)).rowcount != 1:
                    raise ConflictError(f"channel {channel!r} of {agent!r} moved; retry")
            append_audit(
                conn, project_id, agent, "rollback" if rollback else "move", key_id=author,
                now_ms=now_ms, channel=channel, after=target.version_hash,
                before=current.version if current else None, detail={"label": target.label},
            )  # fmt: skip
            return _channel(channel_row(conn, project_id, agent, channel)), True

    def previous_version(self, project_id: str, agent: str, channel: str) -> str | None:
        """The version a move took ``channel`` from onto its current one: rollback's target.

        Rollbacks are skipped, so rolling back again steps further back in history.
        """
        with self._engine.connect() as conn:
            current = channel_row(conn, project_id, agent, channel)
            if current is None:
                raise NotFoundError(f"agent {agent!r} has no channel {channel!r}")
            query = sa.select(_A.before_hash).where(
                _A.project_id == project_id, _A.agent == agent, _A.channel == channel,
                _A.action == "move", _A.after_hash == current.version_hash,
            )  # fmt: skip
            before: str | None = conn.execute(query.order_by(_A.seq.desc()).limit(1)).scalar()
            return before

    def audit(
        self, project_id: str, *, agent: str | None = None, after_seq: int = 0, limit: int = 100
    ) -> list[AuditEntry]:
        """Audit rows in order, after ``after_seq``."""
        query = sa.select(config_audit).where(_A.project_id == project_id, _A.seq > after_seq)
        if agent is not None:
            query = query.where(_A.agent == agent)
        with self._engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query.order_by(_A.seq).limit(limit))]

    def verify(self, project_id: str | None = None) -> list[ChainReport]:
        """Check the audit chain, version contents and channel pointers, per project."""
        with self._engine.connect() as conn:
            heads = {
                r.project_id: (r.seq, r.head_hash)
                for r in conn.execute(sa.select(config_audit_heads))
            }
            if project_id is not None:
                projects = [project_id]
            else:
                audited = conn.execute(sa.select(_A.project_id).distinct()).scalars()
                versioned = conn.execute(sa.select(_V.project_id).distinct()).scalars()
                projects = sorted(set(heads) | set(audited) | set(versioned))
            return [self._verify_one(conn, p, heads.get(p)) for p in projects]

    def _verify_one(
        self, conn: sa.Connection, project_id: str, head: tuple[int, str] | None
    ) -> ChainReport:
        rows = conn.execute(
            sa.select(config_audit).where(_A.project_id == project_id).order_by(_A.seq)
        )
        entries = [_entry(row) for row in rows]
        versions = sa.select(_V.agent, _V.label, _V.version_hash, _V.config)
        problems = [
            f"version {row.version_hash[:12]} ({row.label}) of agent {row.agent!r}: its stored "
            "config does not hash to its id; the config was edited"
            for row in conn.execute(versions.where(_V.project_id == project_id))
            if sha256_hex(row.config) != row.version_hash
        ]
        channels = sa.select(_C.agent, _C.channel, _C.version_hash)
        pointers = conn.execute(channels.where(_C.project_id == project_id)).all()
        problems += channel_problems(entries, [tuple(p) for p in pointers])
        return verify_chain(project_id, entries, head=head, extra_problems=problems)

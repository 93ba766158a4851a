"""Projects and API keys. Keys are stored hashed; the clear key is shown once."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal, get_args

import sqlalchemy as sa

from tuneloop.errors import AuthError, InvalidInputError, NotFoundError
from tuneloop.store.schema import api_keys, projects

Scope = Literal["ingest", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
KEY_PREFIX = "tlk"
_KEY_RE = re.compile(r"^tlk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key of one project with one scope."""

    key_id: str
    project_id: str
    scope: Scope


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """An API key as listed (never with its secret)."""

    key_id: str
    project_id: str
    scope: Scope
    name: str
    created_ms: int
    revoked_ms: int | None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly created key: ``secret`` is the only time the clear key exists."""

    info: KeyInfo
    secret: str


def validate_project_id(project_id: str) -> str:
    """Project ids are short slugs so they are safe in URLs, logs and file names."""
    if not _PROJECT_RE.match(project_id):
        raise InvalidInputError(
            f"invalid project id {project_id[:80]!r}: use 1-64 lower-case letters, digits, "
            "'-' or '_', starting with a letter or digit"
        )
    return project_id


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyRepository:
    """Projects and keys in one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def ensure_project(self, project_id: str, *, name: str | None = None, now_ms: int) -> bool:
        """Create the project if it does not exist; True if it was created."""
        validate_project_id(project_id)
        with self._engine.begin() as conn:
            exists = conn.execute(
                sa.select(projects.c.project_id).where(projects.c.project_id == project_id)
            ).first()
            if exists:
                return False
            conn.execute(
                projects.insert().values(
                    project_id=project_id, name=name or project_id, created_ms=now_ms
                )
            )
            return True

    def list_projects(self) -> list[str]:
        """All project ids."""
        with self._engine.connect() as conn:
            return list(
                conn.execute(sa.select(projects.c.project_id).order_by(projects.c.project_id))
                .scalars()
                .all()
            )

    def create_key(self, project_id: str, scope: str, *, name: str = "", now_ms: int) -> NewKey:
        """Create a key; its clear text is returned once and stored only as a hash."""
        if scope not in SCOPES:
            raise InvalidInputError(f"unknown key scope {scope!r}; use one of {list(SCOPES)}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self._engine.begin() as conn:
            exists = conn.execute(
                sa.select(projects.c.project_id).where(projects.c.project_id == project_id)
            ).first()
            if not exists:
                raise NotFoundError(f"no project {project_id!r}; create it first")
            conn.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    project_id=project_id,
                    scope=scope,
                    secret_sha256=_digest(secret),
                    name=name[:256],
                    created_ms=now_ms,
                    revoked_ms=None,
                )
            )
        info = KeyInfo(key_id, project_id, scope, name, now_ms, None)
        return NewKey(info, f"{KEY_PREFIX}_{key_id}_{secret}")

    def list_keys(self, project_id: str | None = None) -> list[KeyInfo]:
        """Keys, optionally of one project, oldest first."""
        query = sa.select(api_keys).order_by(api_keys.c.created_ms, api_keys.c.key_id)
        if project_id is not None:
            query = query.where(api_keys.c.project_id == project_id)
        with self._engine.connect() as conn:
            return [
                KeyInfo(
                    row.key_id, row.project_id, row.scope, row.name, row.created_ms, row.revoked_ms
                )
                for row in conn.execute(query)
            ]

    def revoke_key(self, key_id: str, *, now_ms: int) -> None:
        """Revoke a key; requests with it are refused from then on."""
        with self._engine.begin() as conn:
            result = conn.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_ms.is_(None))
                .values(revoked_ms=now_ms)
            )
            if result.rowcount == 0:
                raise NotFoundError(f"no active key {key_id!r}")

    def authenticate(self, key: str) -> Principal:
        """The principal a clear key stands for; AuthError if it is not a valid live key."""
        match = _KEY_RE.match(key)
        if match is None:
            raise AuthError("malformed API key: expected 'tlk_<id>_<secret>'")
        key_id, secret = match.groups()
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            raise AuthError("invalid API key")
        if row.revoked_ms is not None:
            raise AuthError(f"API key {key_id!r} was revoked")
        return Principal(row.key_id, row.project_id, row.scope)

"""Engines for SQLite (embedded default) and PostgreSQL, and schema migrations.

Alembic (with Mako) is imported by the functions that migrate, not with the store:
processes that open a database without migrating it never load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tuneloop.errors import ConfigError, StoreError

_MIGRATIONS = "tuneloop.store:migrations"


def create_store_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for ``url``; SQLite files get WAL, full fsync on commit, and a busy timeout."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"invalid database URL: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            # Hand out the connection used last: its page cache (32 MiB, see the pragmas)
            # is warm, and the others' caches stay unfilled instead of each growing.
            kwargs.setdefault("pool_use_lifo", True)
        engine = sa.create_engine(parsed, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 10)
        return sa.create_engine(parsed, **kwargs)
    raise ConfigError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql+psycopg"
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before the server acknowledges it, even on power loss.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Ingest inserts into indexes keyed by random trace ids; a 32 MiB page cache (the
    # default is 2 MiB) keeps their hot pages in memory as the database grows.
    cursor.execute("PRAGMA cache_size=-32768")
    # Checkpoint the WAL every 64 MiB rather than 4 MiB: pages rewritten many times
    # between checkpoints are copied once, which doubles sustained ingest.
    cursor.execute("PRAGMA wal_autocheckpoint=16384")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def head_revision() -> str:
    """The newest schema revision this tuneloop knows."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"database migration failed: {exc}") from exc

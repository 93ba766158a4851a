"""Storage: SQLAlchemy Core schema, repositories and Alembic migrations (shell)."""

try:
    import sqlalchemy  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "tuneloop.store needs the server extra: pip install 'tuneloop[server]'"
    ) from exc

from tuneloop.store.engine import create_store_engine, migrate
from tuneloop.store.store import Store

__all__ = ["Store", "create_store_engine", "migrate"]

"""The HTTP server: OTLP ingest, the REST API and (later) the dashboard (shell)."""

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "tuneloop.server needs the server extra: pip install 'tuneloop[server]'"
    ) from exc

from tuneloop.server.app import create_app

__all__ = ["create_app"]

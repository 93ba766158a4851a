"""The HTTP server: OTLP ingest, the REST API and the dashboard (shell).

``create_app`` loads the application on first use (PEP 562), so that the ingest worker
processes, which import ``tuneloop.server.ingest_worker``, do not import FastAPI, the
store and every router with it.
"""

from __future__ import annotations

import importlib
import importlib.util
import typing

# Looked up, not imported: the worker processes never need FastAPI.
if importlib.util.find_spec("fastapi") is None:  # pragma: no cover - only without the extra
    raise ImportError("tuneloop.server needs the server extra: pip install 'tuneloop[server]'")

if typing.TYPE_CHECKING:
    from tuneloop.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    if name != "create_app":
        raise AttributeError(f"module 'tuneloop.server' has no attribute {name!r}")
    return importlib.import_module("tuneloop.server.app").create_app

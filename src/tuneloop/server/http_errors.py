"""How tuneloop's exceptions become HTTP responses."""

from __future__ import annotations

from typing import Any

from tuneloop.errors import (
    AuthError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    StoreBusyError,
    StoreError,
    TuneloopError,
    UsageError,
)


def status_of(exc: TuneloopError) -> int:
    """The HTTP status for one of tuneloop's exceptions."""
    match exc:
        case PayloadTooLargeError():
            return 413
        case PermissionDeniedError():
            return 403
        case AuthError():
            return 401
        case NotFoundError():
            return 404
        case ConflictError():
            return 409
        case InvalidInputError():
            return 400
        case UsageError():
            return 400
        case StoreBusyError():
            return 503
        case StoreError():
            return 503
        case _:
            return 500


def error_body(exc: TuneloopError) -> dict[str, Any]:
    """The JSON error envelope: the exception's type and its message."""
    return {"error": {"type": type(exc).__name__, "message": str(exc)}}

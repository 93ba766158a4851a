"""tuneloop: keep LLM agents improving in production.

What agent code imports. The server, store and CLI live in their own packages and are
never imported from here, so ``import tuneloop`` stays light. The SDK and the config model
load on first use of one of their names (PEP 562): every process that imports a submodule
(an ingest worker importing ``tuneloop.telemetry``) runs this file first, and should not
pay for httpx, OpenTelemetry's SDK and pydantic models it never touches.
"""

import importlib
import typing

from tuneloop._version import __version__
from tuneloop.clock import Clock, FakeClock, SystemClock
from tuneloop.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    MalformedPayloadError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProviderError,
    RuntimeFailure,
    StoreBusyError,
    StoreError,
    ToolError,
    TuneloopError,
    UsageError,
)

if typing.TYPE_CHECKING:
    from tuneloop.config.model import AgentConfig
    from tuneloop.sdk import (
        Client,
        ClientStats,
        ConfigStats,
        Guardrail,
        LlmCall,
        ResolvedConfig,
        RetryPolicy,
        Run,
        ToolCall,
    )

# Exported names that load their module on first access: name -> module.
_LAZY = {
    "AgentConfig": "tuneloop.config.model",
    **dict.fromkeys(
        (
            "Client",
            "ClientStats",
            "ConfigStats",
            "Guardrail",
            "LlmCall",
            "ResolvedConfig",
            "RetryPolicy",
            "Run",
            "ToolCall",
        ),
        "tuneloop.sdk",
    ),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tuneloop' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AgentConfig",
    "AuthError",
    "Client",
    "ClientStats",
    "Clock",
    "ConfigError",
    "ConfigStats",
    "ConflictError",
    "FakeClock",
    "Guardrail",
    "InvalidInputError",
    "LlmCall",
    "MalformedPayloadError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ProviderError",
    "ResolvedConfig",
    "RetryPolicy",
    "Run",
    "RuntimeFailure",
    "StoreBusyError",
    "StoreError",
    "SystemClock",
    "ToolCall",
    "ToolError",
    "TuneloopError",
    "UsageError",
    "__version__",
]

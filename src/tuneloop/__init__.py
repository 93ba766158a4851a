"""tuneloop: keep LLM agents improving in production.

What agent code imports. The server, store and CLI live in their own packages and are
never imported from here, so ``import tuneloop`` stays light.
"""

from tuneloop._version import __version__
from tuneloop.clock import Clock, FakeClock, SystemClock
from tuneloop.config.model import AgentConfig
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

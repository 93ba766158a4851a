"""The tuneloop SDK: trace agent runs, send feedback, resolve configs and feature flags.

Importing it stays slim: OpenTelemetry, httpx and pydantic, never the server stack.
"""

from tuneloop.sdk._http import RetryPolicy
from tuneloop.sdk._stats import ClientStats
from tuneloop.sdk.client import Client
from tuneloop.sdk.config import ConfigStats, ResolvedConfig
from tuneloop.sdk.spans import Guardrail, LlmCall, Run, ToolCall

__all__ = [
    "Client",
    "ClientStats",
    "ConfigStats",
    "Guardrail",
    "LlmCall",
    "ResolvedConfig",
    "RetryPolicy",
    "Run",
    "ToolCall",
]

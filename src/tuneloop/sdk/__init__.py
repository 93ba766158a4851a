"""The tuneloop SDK: trace agent runs to a tuneloop server and send feedback.

Importing it stays slim: OpenTelemetry, httpx and pydantic, never the server stack.
"""

from tuneloop.sdk._http import RetryPolicy
from tuneloop.sdk._stats import ClientStats
from tuneloop.sdk.client import Client
from tuneloop.sdk.spans import Guardrail, LlmCall, Run, ToolCall

__all__ = ["Client", "ClientStats", "Guardrail", "LlmCall", "RetryPolicy", "Run", "ToolCall"]

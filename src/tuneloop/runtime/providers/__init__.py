"""LLM providers behind one `Provider` protocol.

The message types, the simulated provider and the `chat` helper import from here.
The SDK-backed adapters are optional extras, imported by path so that their SDKs
load only when used::

    from tuneloop.runtime.providers.openai import OpenAIChatProvider        # tuneloop[openai]
    from tuneloop.runtime.providers.anthropic import AnthropicProvider      # tuneloop[anthropic]
"""

from tuneloop.runtime.providers.base import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    Provider,
    Role,
    ToolCallRequest,
    ToolChoice,
    ToolSpec,
    Usage,
)
from tuneloop.runtime.providers.calling import chat
from tuneloop.runtime.providers.simulated import (
    FailureModel,
    LatencyModel,
    Policy,
    SimulatedProvider,
    scripted,
    tool_call,
    weighted,
)

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "FailureModel",
    "FinishReason",
    "LatencyModel",
    "Message",
    "Policy",
    "Provider",
    "Role",
    "SimulatedProvider",
    "ToolCallRequest",
    "ToolChoice",
    "ToolSpec",
    "Usage",
    "chat",
    "scripted",
    "tool_call",
    "weighted",
]

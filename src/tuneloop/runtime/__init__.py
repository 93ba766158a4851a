"""The agent runtime's building blocks: providers, tool contracts, guardrails, caches.

Everything is async-first and takes its clock, sleep and randomness as arguments, so
the same code runs for real, in tests and in the demo's simulated time. The run
state machine builds on these pieces.
"""

from tuneloop.runtime.cache import Cache, CacheEntry, InMemoryCache, ResponseCache
from tuneloop.runtime.guardrails import (
    GuardrailCheck,
    GuardrailPipeline,
    GuardrailResult,
    PipelineResult,
    Subject,
    Verdict,
    build_pipeline,
)
from tuneloop.runtime.providers import (
    ChatRequest,
    ChatResponse,
    Message,
    Provider,
    SimulatedProvider,
    ToolCallRequest,
    ToolSpec,
    Usage,
    chat,
)
from tuneloop.runtime.timing import Sleep, real_sleep, simulated_sleep
from tuneloop.runtime.tools import (
    ApprovalRequired,
    BreakerBoard,
    IdempotencyLedger,
    InMemoryLedger,
    Tool,
    ToolContext,
    ToolOutcome,
    ToolResult,
    ToolRunner,
    tool,
)

__all__ = [
    "ApprovalRequired",
    "BreakerBoard",
    "Cache",
    "CacheEntry",
    "ChatRequest",
    "ChatResponse",
    "GuardrailCheck",
    "GuardrailPipeline",
    "GuardrailResult",
    "IdempotencyLedger",
    "InMemoryCache",
    "InMemoryLedger",
    "Message",
    "PipelineResult",
    "Provider",
    "ResponseCache",
    "SimulatedProvider",
    "Sleep",
    "Subject",
    "Tool",
    "ToolCallRequest",
    "ToolContext",
    "ToolOutcome",
    "ToolResult",
    "ToolRunner",
    "ToolSpec",
    "Usage",
    "Verdict",
    "build_pipeline",
    "chat",
    "real_sleep",
    "simulated_sleep",
    "tool",
]

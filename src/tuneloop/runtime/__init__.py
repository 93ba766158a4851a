"""The agent runtime: `Agent` and its building blocks (providers, tools, guardrails, caches).

Everything is async-first and takes its clock, sleep and randomness as arguments, so
the same code runs for real, in tests and in the demo's simulated time. `Agent` runs
the model-tool loop on a durable state machine with human review, budgets, routing
and handoffs.
"""

from tuneloop.runtime.agent import Agent
from tuneloop.runtime.budget import Spend
from tuneloop.runtime.cache import Cache, CacheEntry, InMemoryCache, ResponseCache
from tuneloop.runtime.checkpoints import Checkpoint, CheckpointStore, open_checkpoint_store
from tuneloop.runtime.guardrails import (
    GuardrailCheck,
    GuardrailPipeline,
    GuardrailResult,
    PipelineResult,
    Subject,
    Verdict,
    build_pipeline,
)
from tuneloop.runtime.machine import Machine, RunState
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
from tuneloop.runtime.result import RunEvent, RunResult, StopReason, ToolCallSummary
from tuneloop.runtime.review import ReviewItem, ReviewStats
from tuneloop.runtime.sources import ClientSource, ConfigSource, StaticSource
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
    "Agent",
    "ApprovalRequired",
    "BreakerBoard",
    "Cache",
    "CacheEntry",
    "ChatRequest",
    "ChatResponse",
    "Checkpoint",
    "CheckpointStore",
    "ClientSource",
    "ConfigSource",
    "GuardrailCheck",
    "GuardrailPipeline",
    "GuardrailResult",
    "IdempotencyLedger",
    "InMemoryCache",
    "InMemoryLedger",
    "Machine",
    "Message",
    "PipelineResult",
    "Provider",
    "ResponseCache",
    "ReviewItem",
    "ReviewStats",
    "RunEvent",
    "RunResult",
    "RunState",
    "SimulatedProvider",
    "Sleep",
    "Spend",
    "StaticSource",
    "StopReason",
    "Subject",
    "Tool",
    "ToolCallRequest",
    "ToolCallSummary",
    "ToolContext",
    "ToolOutcome",
    "ToolResult",
    "ToolRunner",
    "ToolSpec",
    "Usage",
    "Verdict",
    "build_pipeline",
    "chat",
    "open_checkpoint_store",
    "real_sleep",
    "simulated_sleep",
    "tool",
]

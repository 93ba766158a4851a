"""Tool contracts and the runner that enforces them: `@tool`, `ToolRunner`, resilience."""

from tuneloop.runtime.tools.contract import (
    ArgumentCheck,
    Tool,
    ToolContext,
    ToolResult,
    ToolStatus,
    tool,
)
from tuneloop.runtime.tools.execution import ApprovalRequired, ToolOutcome
from tuneloop.runtime.tools.idempotency import (
    IdempotencyLedger,
    InMemoryLedger,
    LedgerEntry,
    idempotency_key,
)
from tuneloop.runtime.tools.resilience import (
    BreakerBoard,
    CircuitBreaker,
    CircuitState,
    Failure,
    FailureKind,
    RetrySchedule,
    classify,
    retry_call,
)
from tuneloop.runtime.tools.runner import ToolRunner

__all__ = [
    "ApprovalRequired",
    "ArgumentCheck",
    "BreakerBoard",
    "CircuitBreaker",
    "CircuitState",
    "Failure",
    "FailureKind",
    "IdempotencyLedger",
    "InMemoryLedger",
    "LedgerEntry",
    "RetrySchedule",
    "Tool",
    "ToolContext",
    "ToolOutcome",
    "ToolResult",
    "ToolRunner",
    "ToolStatus",
    "classify",
    "idempotency_key",
    "retry_call",
    "tool",
]

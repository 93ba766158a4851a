"""The facts an analyzer reads: one agent's runs, tool calls, span samples and feedback.

A `TraceWindow` is built by the store (``store/recommend_reads.py``) for one agent,
one config version and one time window, bounded in rows; analyzers only read it.
Runs may be head-sampled by the SDK: each run carries its sampling weight (1 / rate),
so absolute figures (calls a day, dollars a day) are scaled back up while rates are
computed on what was observed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Correction:
    """A run says one of its decisions was wrong; ``value`` is the right one when known."""

    step: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class RunFact:
    """One run (its root span's facts), as analyzers need it.

    Attributes:
        weight: runs it stands for: 1 / the SDK's sample rate (1 when not sampled).
        corrections: decisions the run's root span marks as corrected.
    """

    trace_id: str
    started_ms: int
    duration_ms: float
    outcome: str
    error_type: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    tool_calls: int = 0
    tool_errors: int = 0
    session_id: str | None = None
    weight: float = 1.0
    corrections: tuple[Correction, ...] = ()

    @property
    def tokens(self) -> int:
        """Input plus output tokens of the run."""
        return self.input_tokens + self.output_tokens

    @property
    def succeeded(self) -> bool:
        """Whether the run's outcome is ``success``."""
        return self.outcome == "success"


@dataclass(frozen=True, slots=True)
class ToolCallFact:
    """One tool call (its final result; ``retries`` attempts came before it)."""

    trace_id: str
    tool: str
    status: str
    error_type: str | None
    retryable: bool
    duration_ms: float
    retries: int
    started_ms: int

    @property
    def failed(self) -> bool:
        """Whether the call failed for good."""
        return self.status == "error"


@dataclass(frozen=True, slots=True)
class SpanSample:
    """What analyzers read from one model, tool or guardrail span of a sampled run.

    Texts are cut to a few hundred characters; inputs are also kept as a hash so that
    repeated inputs are recognised without keeping them.
    """

    trace_id: str
    span_id: str
    kind: str
    started_ms: int
    duration_ms: float
    error_type: str | None = None
    model: str | None = None
    provider: str | None = None
    temperature: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    prompt_name: str | None = None
    decision_step: str | None = None
    decision_value: str | None = None
    corrected: bool = False
    corrected_value: str | None = None
    input_hash: str | None = None
    input_text: str | None = None
    output_text: str | None = None
    tool: str | None = None
    guardrail: str | None = None
    verdict: str | None = None
    overridden: bool = False


@dataclass(frozen=True, slots=True)
class FeedbackFact:
    """A score attached to a run."""

    trace_id: str
    name: str
    value: float
    created_ms: int
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class TraceWindow:
    """The facts of one agent and version over ``[since_ms, until_ms)``.

    Attributes:
        runs: runs newest first, at most the reader's cap (``runs_capped`` says if cut).
        tool_calls: the tool calls of those runs.
        spans: model, tool and guardrail spans of the most recent ``span_runs`` runs.
        feedback: feedback on those runs.
    """

    agent: str
    version: str | None
    since_ms: int
    until_ms: int
    runs: tuple[RunFact, ...] = ()
    tool_calls: tuple[ToolCallFact, ...] = ()
    spans: tuple[SpanSample, ...] = ()
    feedback: tuple[FeedbackFact, ...] = ()
    runs_capped: bool = False
    span_runs: int = 0
    index: WindowIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", WindowIndex.build(self))

    @property
    def duration_days(self) -> float:
        """The window's length in days (for figures per day)."""
        return max(self.until_ms - self.since_ms, 1) / 86_400_000

    @property
    def weighted_runs(self) -> float:
        """The runs the window stands for, sampling undone."""
        return sum(run.weight for run in self.runs)

    @property
    def mean_sample_rate(self) -> float:
        """The share of runs that were recorded (1.0 without sampling)."""
        weighted = self.weighted_runs
        return len(self.runs) / weighted if weighted else 1.0


@dataclass(frozen=True, slots=True)
class WindowIndex:
    """Lookups built once per window: runs by trace id, spans and feedback per run."""

    runs: Mapping[str, RunFact]
    spans: Mapping[str, tuple[SpanSample, ...]]
    feedback: Mapping[str, tuple[FeedbackFact, ...]]

    @classmethod
    def build(cls, window: TraceWindow) -> WindowIndex:
        """Index ``window``'s facts by trace id."""
        spans: defaultdict[str, list[SpanSample]] = defaultdict(list)
        for span in window.spans:
            spans[span.trace_id].append(span)
        feedback: defaultdict[str, list[FeedbackFact]] = defaultdict(list)
        for item in window.feedback:
            feedback[item.trace_id].append(item)
        return cls(
            runs={run.trace_id: run for run in window.runs},
            spans={
                trace: tuple(sorted(items, key=lambda s: (s.started_ms, s.span_id)))
                for trace, items in spans.items()
            },
            feedback={trace: tuple(items) for trace, items in feedback.items()},
        )

    def weight(self, trace_id: str) -> float:
        """The sampling weight of a run (1.0 if the run is not in the window)."""
        run = self.runs.get(trace_id)
        return run.weight if run is not None else 1.0

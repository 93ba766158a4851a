"""Recommendations from production traces: pure analyzers over run facts and span samples.

Each analyzer reads a `TraceWindow` (one agent, one version, one time window) and the
version's config, and emits `Finding`s: a type and target, the evidence with example
trace ids, an RFC 6902 patch against the config, an expected impact with its basis, a
confidence from the sample size, and a stable fingerprint.

Example:
    ```python
    report = analyze(window, config)
    for finding in report.findings:
        print(finding.title, finding.impact.text())
    ```
"""

from tuneloop.analysis.recommend.common import Options
from tuneloop.analysis.recommend.engine import ANALYZERS, analyze, analyze_all
from tuneloop.analysis.recommend.findings import (
    Discarded,
    Finding,
    Impact,
    Report,
    recommendation_from_data,
)
from tuneloop.analysis.recommend.prompts import Optimizer
from tuneloop.analysis.recommend.window import (
    Correction,
    FeedbackFact,
    RunFact,
    SpanSample,
    ToolCallFact,
    TraceWindow,
)

__all__ = [
    "ANALYZERS",
    "Correction",
    "Discarded",
    "FeedbackFact",
    "Finding",
    "Impact",
    "Optimizer",
    "Options",
    "Report",
    "RunFact",
    "SpanSample",
    "ToolCallFact",
    "TraceWindow",
    "analyze",
    "analyze_all",
    "recommendation_from_data",
]

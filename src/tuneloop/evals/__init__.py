"""Offline evaluation: suites, datasets, evaluators, the runner, pass^k, gates and reports.

```python
from tuneloop.evals import load_suite, run_suite_sync

suite = load_suite(Path("evals/support.yaml"))
run = run_suite_sync(suite, stage="pre-merge", repeat=3)
print(run.gate.passed, run.overall.pass_rate, run.overall.pass_k)
```
"""

from tuneloop.evals.attribution import AttributionSpec, FailureAttributor
from tuneloop.evals.compare import (
    CaseDiff,
    RunDiff,
    classify,
    comparability_warnings,
    diff_runs,
)
from tuneloop.evals.dataset import Case, Expectation, load_dataset
from tuneloop.evals.documents import parse_run_document
from tuneloop.evals.evaluators import (
    BaseEvaluator,
    BuildContext,
    EvalContext,
    Evaluator,
    EvaluatorSpec,
    Registry,
    Score,
)
from tuneloop.evals.from_traces import parse_where, sample_production_runs, to_case
from tuneloop.evals.gates import evaluate_gates
from tuneloop.evals.labels import Attribution
from tuneloop.evals.pipeline import build_evaluators, load_target, run_suite, run_suite_sync
from tuneloop.evals.production import ProductionRun, read_production_run
from tuneloop.evals.remote import EvalServer
from tuneloop.evals.replay import ReplayThresholds, replay
from tuneloop.evals.report import junit_xml, markdown_summary
from tuneloop.evals.results import (
    Aggregate,
    CaseResult,
    EvalRun,
    GateCheck,
    GateReport,
    TrialResult,
)
from tuneloop.evals.runner import BoundEvaluator, ResultSink, RunHeader, Runner
from tuneloop.evals.stages import select_cases
from tuneloop.evals.store_sink import StoreSink, UploadSink
from tuneloop.evals.suite import Suite, SuiteSpec, load_suite
from tuneloop.evals.target import TargetResult, ToolCallRecord, agent_target, to_target_result
from tuneloop.evals.verdicts import EvalRunSummary, StageVerdict, VersionGate

__all__ = [
    "Aggregate",
    "Attribution",
    "AttributionSpec",
    "BaseEvaluator",
    "BoundEvaluator",
    "BuildContext",
    "Case",
    "CaseDiff",
    "CaseResult",
    "EvalContext",
    "EvalRun",
    "EvalRunSummary",
    "EvalServer",
    "Evaluator",
    "EvaluatorSpec",
    "Expectation",
    "FailureAttributor",
    "GateCheck",
    "GateReport",
    "ProductionRun",
    "Registry",
    "ReplayThresholds",
    "ResultSink",
    "RunDiff",
    "RunHeader",
    "Runner",
    "Score",
    "StageVerdict",
    "StoreSink",
    "Suite",
    "SuiteSpec",
    "TargetResult",
    "ToolCallRecord",
    "TrialResult",
    "UploadSink",
    "VersionGate",
    "agent_target",
    "build_evaluators",
    "classify",
    "comparability_warnings",
    "diff_runs",
    "evaluate_gates",
    "junit_xml",
    "load_dataset",
    "load_suite",
    "load_target",
    "markdown_summary",
    "parse_run_document",
    "parse_where",
    "read_production_run",
    "replay",
    "run_suite",
    "run_suite_sync",
    "sample_production_runs",
    "select_cases",
    "to_case",
    "to_target_result",
]

"""Offline evaluation: suites, datasets, evaluators, the runner, pass^k, gates and reports.

```python
from tuneloop.evals import load_suite, run_suite_sync

suite = load_suite(Path("evals/support.yaml"))
run = run_suite_sync(suite, stage="pre-merge", repeat=3)
print(run.gate.passed, run.overall.pass_rate, run.overall.pass_k)
```
"""

from tuneloop.evals.compare import CaseDiff, RunDiff, classify, diff_runs
from tuneloop.evals.dataset import Case, Expectation, load_dataset
from tuneloop.evals.evaluators import (
    BaseEvaluator,
    BuildContext,
    EvalContext,
    Evaluator,
    EvaluatorSpec,
    Registry,
    Score,
)
from tuneloop.evals.gates import evaluate_gates
from tuneloop.evals.pipeline import build_evaluators, load_target, run_suite, run_suite_sync
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
from tuneloop.evals.suite import Suite, SuiteSpec, load_suite
from tuneloop.evals.target import TargetResult, ToolCallRecord, to_target_result

__all__ = [
    "Aggregate",
    "BaseEvaluator",
    "BoundEvaluator",
    "BuildContext",
    "Case",
    "CaseDiff",
    "CaseResult",
    "EvalContext",
    "EvalRun",
    "Evaluator",
    "EvaluatorSpec",
    "Expectation",
    "GateCheck",
    "GateReport",
    "Registry",
    "ResultSink",
    "RunDiff",
    "RunHeader",
    "Runner",
    "Score",
    "Suite",
    "SuiteSpec",
    "TargetResult",
    "ToolCallRecord",
    "TrialResult",
    "build_evaluators",
    "classify",
    "diff_runs",
    "evaluate_gates",
    "junit_xml",
    "load_dataset",
    "load_suite",
    "load_target",
    "markdown_summary",
    "run_suite",
    "run_suite_sync",
    "select_cases",
    "to_target_result",
]

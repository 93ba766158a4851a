"""Eval results: trials, cases, aggregates, gate verdicts and the run, all JSON round-trippable.

An `EvalRun` is what ``tuneloop eval run --out run.json`` writes and what ``--baseline``
reads back; the server stores the same document later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from tuneloop.errors import InvalidInputError
from tuneloop.evals.evaluators.base import Score, json_safe
from tuneloop.evals.labels import Attribution

SCHEMA_VERSION = 1
TrialError = Literal["exception", "timeout", "invalid_result"]
CaseStatus = Literal["pass", "fail", "error"]
CheckStatus = Literal["pass", "fail", "skipped"]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class TrialResult:
    """One run of the target on one case, and every evaluator's score of it."""

    trial: int
    passed: bool
    scores: tuple[Score, ...] = ()
    output: Any = None
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    latency_ms: float | None = None
    cost_usd: float | None = None
    trace_id: str | None = None
    error: str | None = None
    error_kind: TrialError | None = None

    @property
    def judge_error(self) -> bool:
        """Whether an evaluator (a judge, a check) could not score this trial."""
        return any(score.status == "error" for score in self.scores)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "trial": self.trial,
            "passed": self.passed,
            "scores": [score.to_dict() for score in self.scores],
            "output": json_safe(self.output),
            "tool_calls": json_safe(list(self.tool_calls)),
            "latency_ms": self.latency_ms,
            "cost_usd": self.cost_usd,
            "trace_id": self.trace_id,
            "error": self.error,
            "error_kind": self.error_kind,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialResult:
        """Read `to_dict` output back."""
        return cls(
            trial=int(data["trial"]),
            passed=bool(data["passed"]),
            scores=tuple(Score.from_dict(s) for s in data.get("scores", ())),
            output=data.get("output"),
            tool_calls=tuple(data.get("tool_calls") or ()),
            latency_ms=data.get("latency_ms"),
            cost_usd=data.get("cost_usd"),
            trace_id=data.get("trace_id"),
            error=data.get("error"),
            error_kind=data.get("error_kind"),
        )


@dataclass(frozen=True, slots=True)
class CaseResult:
    """Every trial of one case (and, for a failed case, who caused it when attributed)."""

    case_id: str
    category: str
    trials: tuple[TrialResult, ...]
    tags: tuple[str, ...] = ()
    difficulty: str | None = None
    attribution: Attribution | None = None

    @property
    def passes(self) -> int:
        """Trials that passed."""
        return sum(trial.passed for trial in self.trials)

    @property
    def pass_rate(self) -> float:
        """Share of trials that passed (0 without trials)."""
        return self.passes / len(self.trials) if self.trials else 0.0

    @property
    def passed_all(self) -> bool:
        """pass^k for this case: every one of its k trials passed."""
        return bool(self.trials) and self.passes == len(self.trials)

    @property
    def status(self) -> CaseStatus:
        """``pass`` if every trial passed; ``error`` if a failure was an error; else ``fail``."""
        if self.passed_all:
            return "pass"
        failed = [trial for trial in self.trials if not trial.passed]
        if any(trial.error is not None or trial.judge_error for trial in failed):
            return "error"
        return "fail"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "case_id": self.case_id,
            "category": self.category,
            "tags": list(self.tags),
            "difficulty": self.difficulty,
            "status": self.status,
            "pass_rate": self.pass_rate,
            "trials": [trial.to_dict() for trial in self.trials],
            "attribution": None if self.attribution is None else self.attribution.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseResult:
        """Read `to_dict` output back."""
        attribution = data.get("attribution")
        return cls(
            case_id=str(data["case_id"]),
            category=str(data["category"]),
            trials=tuple(TrialResult.from_dict(t) for t in data.get("trials", ())),
            tags=tuple(data.get("tags") or ()),
            difficulty=data.get("difficulty"),
            attribution=None if attribution is None else Attribution.from_dict(attribution),
        )


@dataclass(frozen=True, slots=True)
class EvaluatorStats:
    """One evaluator over a group of trials (those it applied to)."""

    evaluator: str
    trials: int
    passed: int
    errors: int
    mean_score: float | None

    @property
    def pass_rate(self) -> float | None:
        """Passing share of the trials it applied to; None if it applied to none."""
        return self.passed / self.trials if self.trials else None


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Figures over a group of cases: one category, or every case (``overall``).

    ``pass_rate`` is pass^1 (the mean share of passing trials per case); ``pass_k``
    is pass^k for the run's k (share of cases whose k trials all passed); ``pass_hat``
    maps j = 1..k to the unbiased pass^j estimate, mean over cases of C(c, j) / C(n, j)
    (τ-bench). ``judge_variance`` is the mean, over cases, of the variance of the
    judges' normalized scores across trials and samples.
    """

    scope: str
    cases: int
    trials: int
    pass_rate: float
    pass_k: float
    k: int
    pass_hat: Mapping[int, float]
    target_errors: int
    evaluator_errors: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    mean_cost_usd: float | None
    evaluators: Mapping[str, EvaluatorStats]
    judge_variance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "scope": self.scope,
            "cases": self.cases,
            "trials": self.trials,
            "pass_rate": self.pass_rate,
            "pass_k": self.pass_k,
            "k": self.k,
            "pass_hat": {str(j): value for j, value in self.pass_hat.items()},
            "target_errors": self.target_errors,
            "evaluator_errors": self.evaluator_errors,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "mean_cost_usd": self.mean_cost_usd,
            "judge_variance": self.judge_variance,
            "evaluators": {
                name: {
                    "trials": stats.trials,
                    "passed": stats.passed,
                    "errors": stats.errors,
                    "pass_rate": stats.pass_rate,
                    "mean_score": stats.mean_score,
                }
                for name, stats in self.evaluators.items()
            },
        }


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One threshold or rule, and how the run fared against it."""

    scope: str
    metric: str
    status: CheckStatus
    actual: float | None
    threshold: float | None
    message: str

    @property
    def passed(self) -> bool:
        """Whether the check did not fail (skipped checks do not fail a gate)."""
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "scope": self.scope,
            "metric": self.metric,
            "status": self.status,
            "actual": self.actual,
            "threshold": self.threshold,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateCheck:
        """Read `to_dict` output back."""
        return cls(
            str(data["scope"]),
            str(data["metric"]),
            data["status"],
            data.get("actual"),
            data.get("threshold"),
            str(data.get("message", "")),
        )


@dataclass(frozen=True, slots=True)
class GateReport:
    """Every check of a gate; the gate passes when none failed."""

    checks: tuple[GateCheck, ...]
    regressions: tuple[str, ...] = ()
    baseline_run_id: str | None = None

    @property
    def passed(self) -> bool:
        """Whether no check failed."""
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        """The checks that failed."""
        return tuple(check for check in self.checks if not check.passed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "passed": self.passed,
            "checks": [check.to_dict() for check in self.checks],
            "regressions": list(self.regressions),
            "baseline_run_id": self.baseline_run_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateReport:
        """Read `to_dict` output back."""
        return cls(
            tuple(GateCheck.from_dict(c) for c in data.get("checks", ())),
            tuple(data.get("regressions") or ()),
            data.get("baseline_run_id"),
        )


@dataclass(frozen=True, slots=True)
class EvalRun:
    """A whole eval run: what ran, for which agent, on which version, where, and every result."""

    run_id: str
    suite: str
    stage: str
    repeat: int
    started_ms: int
    finished_ms: int
    cases: tuple[CaseResult, ...]
    overall: Aggregate
    categories: Mapping[str, Aggregate]
    version: str | None = None
    config_hash: str | None = None
    suite_path: str | None = None
    environment: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    gate: GateReport | None = None
    agent: str | None = None

    def case(self, case_id: str) -> CaseResult | None:
        """The result of ``case_id``, if the run has it."""
        for case in self.cases:
            if case.case_id == case_id:
                return case
        return None

    def with_gate(self, gate: GateReport) -> EvalRun:
        """This run with its gate verdict."""
        return replace(self, gate=gate)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "suite": self.suite,
            "suite_path": self.suite_path,
            "agent": self.agent,
            "stage": self.stage,
            "version": self.version,
            "config_hash": self.config_hash,
            "repeat": self.repeat,
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "environment": json_safe(dict(self.environment)),
            "overall": self.overall.to_dict(),
            "categories": {name: agg.to_dict() for name, agg in self.categories.items()},
            "gate": None if self.gate is None else self.gate.to_dict(),
            "cases": [case.to_dict() for case in self.cases],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The run as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "eval run") -> EvalRun:
        """Read `to_dict` output back; aggregates are recomputed from the cases.

        Raises:
            InvalidInputError: the document is not an eval run of a known schema version.
        """
        from tuneloop.evals.aggregate import aggregate_cases

        if not isinstance(data, Mapping) or data.get("schema_version") != SCHEMA_VERSION:
            raise InvalidInputError(
                f"{source} is not a tuneloop eval run (schema_version {SCHEMA_VERSION}); "
                "write one with `tuneloop eval run --out`"
            )
        try:
            cases = tuple(CaseResult.from_dict(c) for c in data["cases"])
            overall, categories = aggregate_cases(cases)
            gate = data.get("gate")
            return cls(
                run_id=str(data["run_id"]),
                suite=str(data["suite"]),
                stage=str(data["stage"]),
                repeat=int(data["repeat"]),
                started_ms=int(data["started_ms"]),
                finished_ms=int(data["finished_ms"]),
                cases=cases,
                overall=overall,
                categories=categories,
                version=data.get("version"),
                config_hash=data.get("config_hash"),
                suite_path=data.get("suite_path"),
                environment=MappingProxyType(dict(data.get("environment") or {})),
                gate=None if gate is None else GateReport.from_dict(gate),
                agent=data.get("agent"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"{source}: malformed eval run: {exc!r}") from None

    @classmethod
    def from_json(cls, text: str, *, source: str = "eval run") -> EvalRun:
        """Read `to_json` output back.

        Raises:
            InvalidInputError: not JSON, or not an eval run.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                f"{source}: invalid JSON: {exc.msg} (line {exc.lineno})"
            ) from None
        return cls.from_dict(data, source=source)


def trial_counts(cases: Sequence[CaseResult]) -> dict[str, tuple[int, int]]:
    """``case_id -> (passed trials, trials)``."""
    return {case.case_id: (case.passes, len(case.trials)) for case in cases}

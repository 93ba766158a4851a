"""Stored eval runs and gate verdicts as values: what the server lists and what gates read.

A version's gate is the latest verdict of each stage it was evaluated at (``pre-merge``,
``post-merge``, ``production``, ``replay``...). It **failed** when any stage's latest
verdict failed, **passed** when every evaluated stage passed, and is **unknown** when no
run was recorded for the version. Experiments and rollouts call
`tuneloop.store.evals.require_passing_gate` before they start a version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

GateStatus = Literal["passed", "failed", "unknown"]


@dataclass(frozen=True, slots=True)
class EvalRunSummary:
    """A stored eval run without its cases: what lists show."""

    run_id: str
    agent: str
    suite: str
    stage: str
    version: str | None
    version_hash: str | None
    config_hash: str | None
    passed: bool | None
    pass_rate: float
    cases: int
    started_ms: int
    finished_ms: int
    created_ms: int
    uploaded_by: str

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "run_id": self.run_id,
            "agent": self.agent,
            "suite": self.suite,
            "stage": self.stage,
            "version": self.version,
            "version_hash": self.version_hash,
            "config_hash": self.config_hash,
            "passed": self.passed,
            "pass_rate": self.pass_rate,
            "cases": self.cases,
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "created_ms": self.created_ms,
            "uploaded_by": self.uploaded_by,
        }


@dataclass(frozen=True, slots=True)
class StageVerdict:
    """The latest gate verdict of one version at one stage, and the run that gave it."""

    stage: str
    passed: bool
    run_id: str
    suite: str
    finished_ms: int
    recorded_ms: int
    failures: tuple[str, ...] = ()

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "stage": self.stage,
            "passed": self.passed,
            "run_id": self.run_id,
            "suite": self.suite,
            "finished_ms": self.finished_ms,
            "recorded_ms": self.recorded_ms,
            "failures": list(self.failures),
        }


@dataclass(frozen=True, slots=True)
class VersionGate:
    """Every stage's latest verdict for one version of an agent."""

    agent: str
    version_hash: str
    label: str
    stages: tuple[StageVerdict, ...] = ()

    @property
    def status(self) -> GateStatus:
        """``failed`` if a stage's latest verdict failed, ``passed`` if all passed, else unknown."""
        if not self.stages:
            return "unknown"
        return "passed" if all(stage.passed for stage in self.stages) else "failed"

    @property
    def failed_stages(self) -> tuple[StageVerdict, ...]:
        """The stages whose latest verdict failed."""
        return tuple(stage for stage in self.stages if not stage.passed)

    def stage(self, name: str) -> StageVerdict | None:
        """The latest verdict at stage ``name``, if any."""
        return next((stage for stage in self.stages if stage.stage == name), None)

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "agent": self.agent,
            "version": self.version_hash,
            "label": self.label,
            "status": self.status,
            "passed": None if self.status == "unknown" else self.status == "passed",
            "stages": {stage.stage: stage.to_data() for stage in self.stages},
        }

"""Builders for the stored-run, server, replay and from-traces tests."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tuneloop.config.loading import load_config_file
from tuneloop.config.model import AgentConfig
from tuneloop.evals.aggregate import aggregate_cases
from tuneloop.evals.config import config_hash
from tuneloop.evals.evaluators.base import Score
from tuneloop.evals.results import CaseResult, EvalRun, GateCheck, GateReport, TrialResult

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "evals"


def example_config(name: str = "config.yaml") -> AgentConfig:
    return load_config_file(EXAMPLES / name)


def push_version(store: Any, config: AgentConfig, *, agent: str = "support",
                 label: str | None = None, project: str = "acme") -> Any:  # fmt: skip
    version, _ = store.configs.create_version(
        project, agent, config, author="key-test", now_ms=1_000, label=label
    )
    return version


def make_run(
    passes: Mapping[str, Sequence[bool]],
    *,
    run_id: str | None = None,
    suite: str = "support",
    stage: str = "post-merge",
    agent: str | None = "support",
    config: AgentConfig | None = None,
    version: str | None = None,
    gate_passed: bool | None = True,
    started_ms: int = 1_000,
    finished_ms: int = 2_000,
    category: str = "orders",
) -> EvalRun:
    """A run whose cases passed or failed trial by trial as ``passes`` says."""
    cases = tuple(
        CaseResult(
            case_id,
            category,
            tuple(
                TrialResult(
                    k,
                    ok,
                    (Score("contains", "pass" if ok else "fail", 1.0 if ok else 0.0, "checked"),),
                    output=f"answer {case_id}",
                    latency_ms=100.0 + k,
                    cost_usd=0.001,
                )
                for k, ok in enumerate(trials)
            ),
        )
        for case_id, trials in passes.items()
    )
    overall, categories = aggregate_cases(cases)
    gate = None
    if gate_passed is not None:
        status = "pass" if gate_passed else "fail"
        message = f"orders pass^1 {overall.pass_rate:.2f} {'>=' if gate_passed else '<'} 0.9"
        gate = GateReport(
            (GateCheck("orders", "pass_rate", status, overall.pass_rate, 0.9, message),)
        )
    digest = config_hash(config) if config is not None else None
    return EvalRun(
        run_id=run_id or uuid.uuid4().hex,
        suite=suite,
        stage=stage,
        repeat=max(len(trials) for trials in passes.values()),
        started_ms=started_ms,
        finished_ms=finished_ms,
        cases=cases,
        overall=overall,
        categories=categories,
        version=version or (None if digest is None else f"sha256:{digest[:12]}"),
        config_hash=digest,
        environment={"python": "3.11"},
        gate=gate,
        agent=agent,
    )

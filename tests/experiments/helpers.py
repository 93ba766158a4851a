"""Builders for the experiment tests: versions of the example agent, requests, runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneloop.config.bundle import apply_bundle
from tuneloop.config.loading import load_bundle_file, load_config_file
from tuneloop.config.model import AgentConfig
from tuneloop.experiments import ExperimentIn

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "support"
PROJECT = "acme"


def base_config() -> AgentConfig:
    return load_config_file(EXAMPLES / "agent.yaml")


def improved_config() -> AgentConfig:
    return apply_bundle(base_config(), load_bundle_file(EXAMPLES / "bundle.yaml"))


def push_versions(store: Any, agent: str = "support", project: str = PROJECT) -> tuple[Any, Any]:
    """v1 (production, 1.0.0) and v2 (1.1.0) of ``agent``."""
    v1, _ = store.configs.create_version(
        project, agent, base_config(), author="k-test", now_ms=1_000
    )
    v2, _ = store.configs.create_version(
        project, agent, improved_config(), author="k-test", now_ms=2_000
    )
    return v1, v2


def request(**overrides: Any) -> ExperimentIn:
    """A request for an experiment of v2 against production on ``support``."""
    body: dict[str, Any] = {
        "agent": "support",
        "key": "exp-1",
        "variants": [{"name": "control"}, {"name": "treatment", "version": "1.1.0"}],
        "primary_metric": "task_success",
        "guardrails": [{"metric": "error_rate", "margin": 0.02}],
        "metrics": ["latency_mean"],
    }
    body.update(overrides)
    return ExperimentIn.model_validate(body)

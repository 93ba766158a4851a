"""Running a suite end to end: stage selection, evaluators, target, runner, gate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneloop.clock import Clock
from tuneloop.errors import ConfigError
from tuneloop.evals.attribution import FailureAttributor
from tuneloop.evals.config import config_hash, load_config
from tuneloop.evals.evaluators.base import BuildContext
from tuneloop.evals.evaluators.registry import Registry
from tuneloop.evals.gates import evaluate_gates
from tuneloop.evals.results import EvalRun
from tuneloop.evals.runner import BoundEvaluator, ResultSink, Runner, TargetFn
from tuneloop.evals.stages import select_cases
from tuneloop.evals.suite import Suite
from tuneloop.evals.target import agent_target, as_async, import_object

if TYPE_CHECKING:
    from rich.console import Console

    from tuneloop.sdk.client import Client

ProviderFactory = Callable[[str, Mapping[str, Any]], Any]


def build_evaluators(
    suite: Suite, *, registry: Registry | None = None, providers: ProviderFactory | None = None
) -> list[BoundEvaluator]:
    """Every evaluator the suite names, built and bound to its categories.

    Raises:
        ConfigError: an unknown evaluator or bad parameters (suite file and evaluator named).
    """
    registry = registry or Registry()
    context = BuildContext(base_dir=suite.base_dir, source=str(suite.path), providers=providers)
    return [
        BoundEvaluator(
            registry.build(spec, context=context),
            None if spec.categories is None else frozenset(spec.categories),
            None if spec.tags is None else frozenset(spec.tags),
        )
        for spec in suite.spec.evaluators
    ]


def load_target(suite: Suite) -> TargetFn:
    """The suite's target (a callable, or an agent factory), imported relative to the suite file.

    Raises:
        ConfigError: it cannot be imported or is not callable.
    """
    spec = suite.spec.target
    path = spec.agent or spec.callable or ""
    what = f"suite {suite.path}: target {path!r}"
    found = import_object(path, search_paths=[suite.base_dir], what=f"suite {suite.path}: target")
    if spec.agent is not None:
        return agent_target(found, what=what)
    return as_async(found, what=what)


def resolve_config(suite: Suite, config: Any = None, config_path: Path | None = None) -> Any:
    """The config to run under: the one given, else ``config_path``, else the suite's own."""
    if config is not None:
        return config
    path = config_path or suite.config_path
    return None if path is None else load_config(path)


async def run_suite(
    suite: Suite,
    *,
    stage: str = "post-merge",
    config: Any = None,
    config_path: Path | None = None,
    version: str | None = None,
    baseline: EvalRun | None = None,
    repeat: int = 1,
    concurrency: int = 8,
    timeout_s: float | None = None,
    client: Client | None = None,
    sink: ResultSink | None = None,
    progress: bool | None = None,
    console: Console | None = None,
    registry: Registry | None = None,
    providers: ProviderFactory | None = None,
    clock: Clock | None = None,
    target: TargetFn | None = None,
    attribute: bool = True,
    agent: str | None = None,
) -> EvalRun:
    """Run ``suite``'s ``stage`` under a config and judge it against the suite's gates.

    Args:
        suite: the loaded suite.
        stage: ``pre-merge``, ``post-merge``, ``production`` or a stage the suite defines.
        config: the config to pass to the target (an AgentConfig, a dict...); else
            ``config_path``; else the suite's ``config:`` file; else None.
        config_path: an AgentConfig file.
        version: the version label runs and traces carry (default: the config's hash).
        baseline: an earlier run of this suite; enables the regression rule.
        repeat: trials per case (k).
        concurrency: trials in flight at once.
        timeout_s: per-trial timeout (default: the suite's ``target.timeout_s``).
        client: trace each trial to tuneloop.
        sink: receives results as they complete.
        progress: show a progress bar (None: on a terminal only).
        console: where the progress bar goes.
        registry: evaluator types (default: the built-in ones).
        providers: a factory for judge providers (tests inject a simulated one).
        clock: where times come from.
        target: use this target instead of the suite's (the runtime Agent, a stub).
        attribute: label failed cases with the suite's ``attribution:`` judge, if it has one.
        agent: the agent the run evaluated (default: the suite's ``agent:``, else its name).

    Raises:
        ConfigError: an unknown stage, evaluator or target; a baseline of another suite.
    """
    if baseline is not None and baseline.suite != suite.name:
        raise ConfigError(
            f"the baseline run {baseline.run_id} is of suite {baseline.suite!r}, not "
            f"{suite.name!r}; pass a run of the same suite"
        )
    cases = select_cases(suite, stage)
    evaluators = build_evaluators(suite, registry=registry, providers=providers)
    fn = target or load_target(suite)
    effective = resolve_config(suite, config, config_path)
    digest = config_hash(effective)
    annotate = None
    if attribute and suite.spec.attribution is not None:
        context = BuildContext(base_dir=suite.base_dir, source=str(suite.path), providers=providers)
        attributor = FailureAttributor.from_spec(suite.spec.attribution, context=context)

        async def annotate(run: EvalRun) -> EvalRun:
            return await attributor.annotate(run, cases)

    runner = Runner(
        fn,
        evaluators,
        concurrency=concurrency,
        timeout_s=timeout_s or suite.spec.target.timeout_s,
        repeat=repeat,
        clock=clock,
        client=client,
        agent=agent or suite.agent,
        sink=sink,
        progress=progress,
        console=console,
    )
    return await runner.run(
        cases,
        effective,
        suite=suite.name,
        stage=stage,
        version=version or (None if digest is None else f"sha256:{digest[:12]}"),
        config_hash=digest,
        suite_path=str(suite.path),
        gate=lambda run: evaluate_gates(run, suite.spec.gates, baseline=baseline),
        annotate=annotate,
    )


def run_suite_sync(suite: Suite, **options: Any) -> EvalRun:
    """`run_suite` for scripts: runs its own event loop."""
    return asyncio.run(run_suite(suite, **options))

"""The eval runner: every case x k trials through the target, scored, with bounded concurrency.

A target that raises or runs past the per-case timeout fails that trial with the
error; the run goes on. With a `tuneloop.Client`, each trial is a traced run whose
span names the suite, stage, case, category and trial, so a failing case opens as a
trace. A `ResultSink` receives each case as it completes (the server stores runs
through one).
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from tuneloop import semconv
from tuneloop._version import __version__
from tuneloop.clock import Clock, SystemClock
from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.evals.aggregate import aggregate_cases
from tuneloop.evals.dataset import Case
from tuneloop.evals.evaluators.base import EvalContext, Evaluator, Score, json_safe
from tuneloop.evals.results import CaseResult, EvalRun, GateReport, TrialError, TrialResult
from tuneloop.evals.target import TargetResult, to_target_result
from tuneloop.evals.tracing import TrialSpan

if TYPE_CHECKING:
    from rich.console import Console

    from tuneloop.sdk.client import Client

_NS_PER_MS = 1_000_000
TargetFn = Callable[[Any, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class RunHeader:
    """What a run is, known before its first case finishes."""

    run_id: str
    suite: str
    stage: str
    version: str | None
    config_hash: str | None
    repeat: int
    cases: int
    started_ms: int


class ResultSink(Protocol):
    """Receives a run as it happens (the server's eval store implements it)."""

    async def on_start(self, header: RunHeader) -> None:
        """The run started."""
        ...

    async def on_case(self, run_id: str, result: CaseResult) -> None:
        """Every trial of one case finished."""
        ...

    async def on_finish(self, run: EvalRun) -> None:
        """The run finished; ``run`` holds every result and aggregate."""
        ...


@dataclass(frozen=True, slots=True)
class BoundEvaluator:
    """An evaluator, the categories it applies to and the tags it needs (None: any)."""

    evaluator: Evaluator
    categories: frozenset[str] | None = None
    tags: frozenset[str] | None = None

    def applies(self, case: Case) -> bool:
        """Whether this evaluator scores ``case``."""
        return (self.categories is None or case.category in self.categories) and (
            self.tags is None or not self.tags.isdisjoint(case.tags)
        )


class Runner:
    """Runs cases through a target and scores them.

    Args:
        target: ``async (input, config) -> output`` (see `tuneloop.evals.target`).
        evaluators: evaluators, optionally limited to categories (`BoundEvaluator`).
        concurrency: trials in flight at once.
        timeout_s: longest a target may take on one trial.
        evaluator_timeout_s: longest one evaluator may take on one trial (judges).
        repeat: trials per case (k, for pass^k).
        clock: where start times and measured latencies come from.
        client: trace every trial to tuneloop through this SDK client.
        agent: the agent name traced runs carry.
        sink: receives results as they complete.
        progress: show a Rich progress bar; None: only on a terminal.
        console: where the progress bar goes (default: stderr).

    Raises:
        ConfigError: a count or timeout is not positive.
    """

    def __init__(
        self,
        target: TargetFn,
        evaluators: Sequence[Evaluator | BoundEvaluator],
        *,
        concurrency: int = 8,
        timeout_s: float = 30.0,
        evaluator_timeout_s: float = 120.0,
        repeat: int = 1,
        clock: Clock | None = None,
        client: Client | None = None,
        agent: str = "eval",
        sink: ResultSink | None = None,
        progress: bool | None = None,
        console: Console | None = None,
    ) -> None:
        for name, value in (("concurrency", concurrency), ("repeat", repeat)):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        for name, seconds in (
            ("timeout_s", timeout_s),
            ("evaluator_timeout_s", evaluator_timeout_s),
        ):
            if not seconds > 0:
                raise ConfigError(f"{name} must be > 0, got {seconds}")
        self._target = target
        self._evaluators = tuple(
            e if isinstance(e, BoundEvaluator) else BoundEvaluator(e) for e in evaluators
        )
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._evaluator_timeout_s = evaluator_timeout_s
        self._repeat = repeat
        self._clock = clock or SystemClock()
        self._client = client
        self._agent = agent
        self._sink = sink
        self._progress = progress
        self._console = console

    async def run(
        self,
        cases: Sequence[Case],
        config: Any = None,
        *,
        suite: str,
        stage: str = "adhoc",
        version: str | None = None,
        config_hash: str | None = None,
        suite_path: str | None = None,
        run_id: str | None = None,
        gate: Callable[[EvalRun], GateReport] | None = None,
        annotate: Callable[[EvalRun], Awaitable[EvalRun]] | None = None,
    ) -> EvalRun:
        """Run every case ``repeat`` times under ``config`` and return the scored run.

        ``annotate``, when given, may add to the finished run before it is judged (the
        failure-attribution pass labels failed cases). ``gate``, when given, judges the
        finished run; its report is part of the run the sink receives and this returns.

        Raises:
            InvalidInputError: no cases, or two cases share an id.
        """
        if not cases:
            raise InvalidInputError(f"suite {suite!r}: nothing to run (no cases)")
        ids = [case.id for case in cases]
        if len(set(ids)) != len(ids):
            raise InvalidInputError(f"suite {suite!r}: case ids must be unique")
        header = RunHeader(
            run_id or uuid.uuid4().hex,
            suite,
            stage,
            version,
            config_hash,
            self._repeat,
            len(cases),
            self._clock.now_ms(),
        )
        if self._sink is not None:
            await self._sink.on_start(header)
        trials: dict[str, list[TrialResult]] = {case.id: [] for case in cases}
        jobs = _iter_jobs(cases, self._repeat)
        with self._progress_bar(len(cases) * self._repeat) as advance:

            async def worker() -> None:
                for case, k in jobs:
                    trial = await self._trial(case, k, config, header)
                    done = trials[case.id]
                    done.append(trial)
                    advance()
                    if len(done) == self._repeat and self._sink is not None:
                        await self._sink.on_case(header.run_id, _case_result(case, done))

            workers = min(self._concurrency, len(cases) * self._repeat)
            await asyncio.gather(*(worker() for _ in range(workers)))
        results = tuple(_case_result(case, trials[case.id]) for case in cases)
        overall, categories = aggregate_cases(results)
        run = EvalRun(
            run_id=header.run_id,
            suite=suite,
            stage=stage,
            repeat=self._repeat,
            started_ms=header.started_ms,
            finished_ms=self._clock.now_ms(),
            cases=results,
            overall=overall,
            categories=categories,
            version=version,
            config_hash=config_hash,
            suite_path=suite_path,
            environment=environment(header.started_ms),
            agent=self._agent,
        )
        if annotate is not None:
            run = await annotate(run)
        if gate is not None:
            run = run.with_gate(gate(run))
        if self._sink is not None:
            await self._sink.on_finish(run)
        return run

    async def _trial(self, case: Case, k: int, config: Any, header: RunHeader) -> TrialResult:
        span = self._trace(case, k, header)
        error: str | None = None
        error_kind: TrialError | None = None
        failure: BaseException | None = None
        result = TargetResult()
        started_ns = self._clock.now_ns()
        with span if span is not None else nullcontext():
            try:
                async with asyncio.timeout(self._timeout_s):
                    raw = await self._target(case.input, config)
                result = to_target_result(raw)
            except TimeoutError as exc:
                error_kind, failure = "timeout", exc
                error = f"the target did not answer within {self._timeout_s:g} s"
            except InvalidInputError as exc:
                error_kind, failure = "invalid_result", exc
                error = f"the target returned an unreadable result: {exc}"
            except Exception as exc:
                error_kind, failure = "exception", exc
                error = f"{type(exc).__name__}: {exc}"
        latency_ms = result.latency_ms
        if latency_ms is None:
            latency_ms = (self._clock.now_ns() - started_ns) / _NS_PER_MS
            result = replace(result, latency_ms=latency_ms)
        scores: tuple[Score, ...] = ()
        if error is None:
            scores = await self._score(EvalContext(case, result, config))
        passed = error is None and all(s.status in ("pass", "skipped") for s in scores)
        trace_id = result.trace_id
        if span is not None:
            span.finish(passed=passed, error_kind=error_kind, error=failure)
            trace_id = trace_id or span.trace_id
        return TrialResult(
            trial=k,
            passed=passed,
            scores=scores,
            output=json_safe(result.output),
            tool_calls=tuple(call.to_dict() for call in result.tool_calls),
            latency_ms=latency_ms,
            cost_usd=result.cost_usd,
            trace_id=trace_id,
            error=error,
            error_kind=error_kind,
        )

    async def _score(self, ctx: EvalContext) -> tuple[Score, ...]:
        scores = []
        for bound in self._evaluators:
            if not bound.applies(ctx.case):
                continue
            name = bound.evaluator.name
            try:
                async with asyncio.timeout(self._evaluator_timeout_s):
                    score = await bound.evaluator.evaluate(ctx)
            except TimeoutError:
                score = Score(
                    name, "error", None, f"took longer than {self._evaluator_timeout_s:g} s"
                )
            except Exception as exc:
                score = Score(name, "error", None, f"{type(exc).__name__}: {exc}")
            scores.append(score)
        if all(score.status == "skipped" for score in scores):
            scores.append(
                Score(
                    "(none)",
                    "error",
                    None,
                    f"no evaluator checks case {ctx.case.id!r}: give it an expectation "
                    "(expected.output, contains, tool_calls...) or an evaluator for its category",
                )
            )
        return tuple(scores)

    def _trace(self, case: Case, k: int, header: RunHeader) -> TrialSpan | None:
        if self._client is None:
            return None
        return TrialSpan(
            self._client,
            self._clock,
            self._agent,
            version=header.version or header.config_hash,
            attributes={
                semconv.TL_EVAL_RUN_ID: header.run_id,
                semconv.TL_EVAL_SUITE: header.suite,
                semconv.TL_EVAL_STAGE: header.stage,
                semconv.TL_EVAL_CASE_ID: case.id,
                semconv.TL_EVAL_CATEGORY: case.category,
                semconv.TL_EVAL_TRIAL: k,
            },
        )

    def _progress_bar(self, total: int) -> AbstractContextManager[Callable[[], None]]:
        from rich.console import Console

        console = self._console or Console(stderr=True)
        show = console.is_terminal if self._progress is None else self._progress
        return _bar(console, total) if show else nullcontext(lambda: None)


class _bar(AbstractContextManager[Callable[[], None]]):
    def __init__(self, console: Console, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("eval", total=total)

    def __enter__(self) -> Callable[[], None]:
        self._progress.start()
        return lambda: self._progress.advance(self._task)

    def __exit__(self, *_exc: object) -> None:
        self._progress.stop()


def _case_result(case: Case, trials: list[TrialResult]) -> CaseResult:
    return CaseResult(
        case_id=case.id,
        category=case.category,
        trials=tuple(sorted(trials, key=lambda trial: trial.trial)),
        tags=case.tags,
        difficulty=case.difficulty,
    )


def environment(started_ms: int) -> MappingProxyType[str, Any]:
    """Where and when a run happened: Python, tuneloop, host, platform, start time."""
    return MappingProxyType(
        {
            "python": platform.python_version(),
            "implementation": sys.implementation.name,
            "tuneloop": __version__,
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "time": datetime.fromtimestamp(started_ms / 1000, UTC).isoformat(),
        }
    )


def _iter_jobs(cases: Sequence[Case], repeat: int) -> Iterator[tuple[Case, int]]:
    for case in cases:
        for k in range(repeat):
            yield case, k

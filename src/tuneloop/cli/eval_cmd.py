"""``tuneloop eval``: run an eval suite and gate CI on it; compare two runs.

Exit codes of ``tuneloop eval run``: 0 when the gate passed, 1 when it failed, 2 when
the suite, dataset, config or arguments are invalid (nothing ran).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from tuneloop.errors import TuneloopError

if TYPE_CHECKING:
    from tuneloop.evals.results import EvalRun

eval_app = typer.Typer(help="Run eval suites, gate CI on them, compare runs.", no_args_is_help=True)

console = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
EXIT_GATE_FAILED = 1
EXIT_INVALID = 2


def _invalid_exits_2(command: F) -> F:
    """Print tuneloop errors as one clear message and exit 2 (1 means a failed gate)."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TuneloopError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
            raise typer.Exit(EXIT_INVALID) from None
        except ImportError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
            raise typer.Exit(EXIT_INVALID) from None

    return wrapper  # type: ignore[return-value]


def _read_run(path: Path) -> EvalRun:
    from tuneloop.errors import InvalidInputError
    from tuneloop.evals.results import EvalRun

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read eval run {path}: {exc.strerror or exc}") from None
    return EvalRun.from_json(text, source=str(path))


def _write(path: Path, text: str, what: str) -> None:
    from tuneloop.errors import InvalidInputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot write {what} to {path}: {exc.strerror or exc}") from None
    err.print(f"[dim]{what} written to {path}[/]")


@eval_app.command("run")
@_invalid_exits_2
def run(
    suite: Annotated[Path, typer.Argument(help="The suite YAML file")],
    config: Annotated[
        Path | None, typer.Option(help="AgentConfig file (default: the suite's config:)")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Version label for the run (default: the config's hash)")
    ] = None,
    stage: Annotated[
        str,
        typer.Option(help="pre-merge (fast subset), post-merge (full), production (+adversarial)"),
    ] = "post-merge",
    baseline: Annotated[
        Path | None, typer.Option(help="An earlier run's JSON: fail on cases that regressed")
    ] = None,
    repeat: Annotated[int, typer.Option(help="Trials per case (k, for pass^k)", min=1)] = 1,
    concurrency: Annotated[int, typer.Option(help="Trials in flight at once", min=1)] = 8,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds per trial (default: the suite's target.timeout_s)")
    ] = None,
    junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report here")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write a Markdown summary here")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the run as JSON here")] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal)"),
    ] = None,
    trace: Annotated[
        bool, typer.Option(help="Trace every trial to the tuneloop server (TUNELOOP_URL)")
    ] = False,
    url: Annotated[str | None, typer.Option(help="Server URL [env: TUNELOOP_URL]")] = None,
    api_key: Annotated[
        str | None, typer.Option(help="Ingest API key [env: TUNELOOP_API_KEY]")
    ] = None,
) -> None:
    """Run a suite's stage under a config; exit 1 when the gate fails."""
    from tuneloop.evals.compare import diff_runs
    from tuneloop.evals.pipeline import resolve_config, run_suite
    from tuneloop.evals.report import junit_xml, markdown_summary
    from tuneloop.evals.suite import load_suite

    loaded = load_suite(suite)
    base = _read_run(baseline) if baseline is not None else None
    effective = resolve_config(loaded, None, config)
    client = None
    if trace:
        from tuneloop.sdk import Client

        client = Client(url, api_key, service_name=f"tuneloop-eval-{loaded.name}")
    try:
        result = asyncio.run(
            run_suite(
                loaded,
                stage=stage,
                config=effective,
                version=version,
                baseline=base,
                repeat=repeat,
                concurrency=concurrency,
                timeout_s=timeout,
                client=client,
                progress=progress,
                console=err,
            )
        )
    finally:
        if client is not None:
            client.shutdown()
    diff = diff_runs(base, result) if base is not None else None
    if out is not None:
        _write(out, result.to_json(), "run")
    if junit is not None:
        _write(junit, junit_xml(result), "JUnit report")
    if markdown is not None:
        _write(markdown, markdown_summary(result, diff=diff), "Markdown summary")
    _print_summary(result)
    if result.gate is not None and not result.gate.passed:
        raise typer.Exit(EXIT_GATE_FAILED)


def _print_summary(run: EvalRun) -> None:
    from rich.table import Table

    k = run.repeat
    table = Table(title=f"eval {run.suite} · {run.stage} · {run.version or 'unversioned'}")
    for header in ("category", "cases", "pass^1", *([f"pass^{k}"] if k > 1 else []), "p95", "cost"):
        table.add_column(header, justify="left" if header == "category" else "right")
    for name, agg in [*run.categories.items(), ("overall", run.overall)]:
        table.add_row(
            name,
            str(agg.cases),
            f"{agg.pass_rate * 100:.1f}%",
            *([f"{agg.pass_k * 100:.1f}%"] if k > 1 else []),
            "-" if agg.latency_p95_ms is None else f"{agg.latency_p95_ms:.0f}ms",
            "-" if agg.mean_cost_usd is None else f"${agg.mean_cost_usd:.4f}",
        )
    console.print(table)
    for case in run.cases:
        if case.status != "pass":
            failed = next(trial for trial in case.trials if not trial.passed)
            why = failed.error or "; ".join(
                f"{s.evaluator}: {s.explanation}"
                for s in failed.scores
                if s.status in ("fail", "error")
            )
            console.print(
                f"[red]{case.status.upper()}[/] {case.case_id} ({case.category}, "
                f"{case.passes}/{len(case.trials)}): {why}",
                markup=True,
                highlight=False,
            )
    if run.gate is None:
        return
    for check in run.gate.failures:
        console.print(f"[bold red]gate:[/] {check.message}", markup=True, highlight=False)
    verdict = "[bold green]gate passed[/]" if run.gate.passed else "[bold red]gate failed[/]"
    console.print(f"{verdict} (run {run.run_id})", markup=True, highlight=False)


@eval_app.command("diff")
@_invalid_exits_2
def diff(
    baseline: Annotated[Path, typer.Argument(help="The earlier run's JSON")],
    current: Annotated[Path, typer.Argument(help="The later run's JSON")],
    alpha: Annotated[
        float, typer.Option(help="Level of the one-sided Fisher exact test", min=0.0, max=1.0)
    ] = 0.05,
    show_all: Annotated[bool, typer.Option("--all", help="Also list unchanged cases")] = False,
) -> None:
    """Compare two runs case by case: regressed, improved, within noise, added, removed."""
    from rich.table import Table

    from tuneloop.evals.compare import diff_runs

    result = diff_runs(_read_run(baseline), _read_run(current), alpha=alpha)
    table = Table(title=f"{result.baseline_run_id[:12]} → {result.current_run_id[:12]}")
    for header in ("case", "category", "change", "before", "after", "p"):
        table.add_column(header)
    for case in result.cases:
        if case.change == "unchanged" and not show_all:
            continue
        table.add_row(
            case.case_id,
            case.category,
            case.change,
            "-" if case.before is None else f"{case.before[0]}/{case.before[1]}",
            "-" if case.after is None else f"{case.after[0]}/{case.after[1]}",
            "-" if case.p_value is None else f"{case.p_value:.3f}",
        )
    console.print(table)
    counts = ", ".join(f"{name}: {count}" for name, count in sorted(result.counts().items()))
    console.print(counts or "no cases", highlight=False)

"""What the ``tuneloop eval`` commands share: consoles, exit codes, files, the server.

Exit codes: 0 success (a gate passed), 1 a gate failed, 2 invalid input (nothing ran,
or nothing was changed), 3 the run finished and its reports were written, but the
server did not store it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from tuneloop.errors import TuneloopError

if TYPE_CHECKING:
    from tuneloop.evals.remote import EvalServer
    from tuneloop.evals.results import EvalRun

console = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
EXIT_GATE_FAILED = 1
EXIT_INVALID = 2
EXIT_NOT_STORED = 3

Server = Annotated[
    str | None,
    typer.Option("--server", help="tuneloop server URL [env: TUNELOOP_URL]", show_default=False),
]
AdminKey = Annotated[
    str | None, typer.Option("--api-key", help="Admin API key [env: TUNELOOP_API_KEY]")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer")]


def invalid_exits_2(command: F) -> F:
    """Print tuneloop errors as one clear message and exit 2 (1 means a failed gate)."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (TuneloopError, ImportError) as exc:
            say_error(exc)
            raise typer.Exit(EXIT_INVALID) from None

    return wrapper  # type: ignore[return-value]


def say_error(exc: BaseException | str) -> None:
    """One ``error:`` line on stderr."""
    err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)


def read_run(path: Path) -> EvalRun:
    """An eval run from its JSON file (``tuneloop eval run --out``)."""
    from tuneloop.errors import InvalidInputError
    from tuneloop.evals.results import EvalRun

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read eval run {path}: {exc.strerror or exc}") from None
    return EvalRun.from_json(text, source=str(path))


def write(path: Path, text: str, what: str) -> None:
    """Write a report, saying where on stderr."""
    from tuneloop.errors import InvalidInputError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot write {what} to {path}: {exc.strerror or exc}") from None
    err.print(f"[dim]{what} written to {path}[/]")


def connect(server: str | None, api_key: str | None) -> EvalServer:
    """The server at ``server`` (else TUNELOOP_URL), with an admin key."""
    from tuneloop.evals.remote import EvalServer
    from tuneloop.settings import load_settings

    settings = load_settings(url=server, api_key=api_key)
    return EvalServer(settings.url, settings.api_key)


def print_stored(answer: dict[str, Any]) -> None:
    """What an upload did: the run, the version it was linked to, the verdict it set."""
    state = "stored" if answer["created"] else "already stored"
    where = (
        f" for version {answer['version_label']} ({answer['version_hash'][:12]})"
        if answer.get("version_hash")
        else " (no stored version has its config: no gate verdict recorded)"
    )
    err.print(f"run {answer['run_id']} {state}{where}", highlight=False)
    gate = answer.get("gate")
    if gate is not None:
        stages = ", ".join(
            f"{name} {'passed' if stage['passed'] else 'failed'}"
            for name, stage in gate["stages"].items()
        )
        err.print(f"version gate: {gate['status']} ({stages})", highlight=False)


def print_summary(run: EvalRun) -> None:
    """The run's table per category, its failed cases, and the gate."""
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
            label = case.attribution
            if label is not None:
                what = (
                    f"{label.responsible}, {label.fault}: {label.reasoning}"
                    if label.error is None
                    else f"not labelled ({label.error})"
                )
                console.print(f"  cause: {what}", highlight=False)
    if run.gate is None:
        return
    for check in run.gate.failures:
        console.print(f"[bold red]gate:[/] {check.message}", markup=True, highlight=False)
    verdict = "[bold green]gate passed[/]" if run.gate.passed else "[bold red]gate failed[/]"
    console.print(f"{verdict} (run {run.run_id})", markup=True, highlight=False)

"""``tuneloop eval``: run suites and gate CI on them; store, list, compare and gate runs.

Exit codes of ``tuneloop eval run`` (and ``replay``): 0 when the gate passed, 1 when it
failed, 2 when the suite, dataset, config or arguments are invalid (nothing ran), 3
when the run finished and its reports were written but the server did not store it.
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tuneloop.cli import eval_production
from tuneloop.cli.eval_common import (
    EXIT_GATE_FAILED,
    EXIT_INVALID,
    EXIT_NOT_STORED,
    AdminKey,
    AsJson,
    Server,
    connect,
    console,
    err,
    invalid_exits_2,
    print_stored,
    print_summary,
    read_run,
    say_error,
    write,
)

if TYPE_CHECKING:
    from tuneloop.evals.results import EvalRun

eval_app = typer.Typer(
    help="Run eval suites, gate CI on them; store, list and compare runs.", no_args_is_help=True
)

__all__ = ["EXIT_GATE_FAILED", "EXIT_INVALID", "EXIT_NOT_STORED", "eval_app"]


@eval_app.command("run")
@invalid_exits_2
def run(
    suite: Annotated[Path, typer.Argument(help="The suite YAML file")],
    config: Annotated[
        Path | None, typer.Option(help="AgentConfig file (default: the suite's config:)")
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            help="With --server: the stored version to run (hash, prefix, label or channel), "
            "whose config is fetched. Without: a label for the run (default: the config's hash)"
        ),
    ] = None,
    agent: Annotated[
        str | None, typer.Option(help="The agent evaluated (default: the suite's agent:)")
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
    attribution: Annotated[
        bool,
        typer.Option(help="Label failed cases with the suite's attribution: judge, if it has one"),
    ] = True,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="tuneloop server URL: resolve --version there and store the run",
            show_default=False,
        ),
    ] = None,
    upload: Annotated[
        bool, typer.Option(help="With --server: store the run and the version's gate verdict")
    ] = True,
    trace: Annotated[
        bool, typer.Option(help="Trace every trial to the tuneloop server (TUNELOOP_URL)")
    ] = False,
    url: Annotated[
        str | None, typer.Option(help="Where traces go (default: --server) [env: TUNELOOP_URL]")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="API key: admin with --server, else ingest [env: TUNELOOP_API_KEY]"),
    ] = None,
    trace_api_key: Annotated[
        str | None,
        typer.Option(help="Ingest key for traces, e.g. of an eval project (default: --api-key)"),
    ] = None,
) -> None:
    """Run a suite's stage under a config (or a stored version's); exit 1 when the gate fails."""
    from tuneloop.errors import InvalidInputError
    from tuneloop.evals.compare import diff_runs
    from tuneloop.evals.pipeline import resolve_config, run_suite
    from tuneloop.evals.report import junit_xml, markdown_summary
    from tuneloop.evals.store_sink import UploadSink
    from tuneloop.evals.suite import load_suite

    loaded = load_suite(suite)
    evaluated = agent or loaded.agent
    base = read_run(baseline) if baseline is not None else None
    if server is not None and version is not None and config is not None:
        raise InvalidInputError(
            "--config and --version with --server both name the config to run; pass one "
            "(--version runs the stored version's own config)"
        )
    with ExitStack() as stack:
        remote = stack.enter_context(connect(server, api_key)) if server is not None else None
        label, stored_version = version, None
        if remote is not None and version is not None:
            from tuneloop.config.model import AgentConfig

            found = remote.version(evaluated, version)
            effective: Any = AgentConfig.from_data(found["config"])
            label, stored_version = found["label"], found["version"]
            err.print(f"running version {label} ({stored_version[:12]}) of {evaluated!r}")
        else:
            effective = resolve_config(loaded, None, config)
        sink = None
        if remote is not None and upload:
            sink = UploadSink(remote, agent=evaluated, version=stored_version)
        client = None
        if trace:
            from tuneloop.sdk import Client

            client = Client(
                url or server, trace_api_key or api_key, service_name=f"tuneloop-eval-{loaded.name}"
            )
            stack.callback(client.shutdown)
        result = asyncio.run(
            run_suite(
                loaded,
                stage=stage,
                config=effective,
                version=label,
                baseline=base,
                repeat=repeat,
                concurrency=concurrency,
                timeout_s=timeout,
                client=client,
                progress=progress,
                console=err,
                sink=sink,
                attribute=attribution,
                agent=evaluated,
            )
        )
    diff = diff_runs(base, result) if base is not None else None
    if out is not None:
        write(out, result.to_json(), "run")
    if junit is not None:
        write(junit, junit_xml(result), "JUnit report")
    if markdown is not None:
        write(markdown, markdown_summary(result, diff=diff), "Markdown summary")
    print_summary(result)
    if sink is not None and sink.response is not None:
        print_stored(sink.response)
    if result.gate is not None and not result.gate.passed:
        raise typer.Exit(EXIT_GATE_FAILED)
    if sink is not None and sink.error is not None:
        say_error(f"the run was not stored: {sink.error}")
        raise typer.Exit(EXIT_NOT_STORED)


def _run_from(ref: str, server: str | None, api_key: str | None) -> EvalRun:
    path = Path(ref)
    if path.exists() or server is None:
        return read_run(path)
    with connect(server, api_key) as remote:
        return remote.get_run(ref)


@eval_app.command("diff")
@invalid_exits_2
def diff(
    baseline: Annotated[str, typer.Argument(help="The earlier run: its JSON file, or a run id")],
    current: Annotated[str, typer.Argument(help="The later run: its JSON file, or a run id")],
    alpha: Annotated[
        float, typer.Option(help="Level of the one-sided Fisher exact test", min=0.0, max=1.0)
    ] = 0.05,
    show_all: Annotated[bool, typer.Option("--all", help="Also list unchanged cases")] = False,
    server: Server = None,
    api_key: AdminKey = None,
) -> None:
    """Compare two runs case by case: regressed, improved, within noise, added, removed.

    A run is read from its file, or, with --server, fetched by id from the server.
    """
    from rich.table import Table

    from tuneloop.evals.compare import comparability_warnings, diff_runs

    before, after = _run_from(baseline, server, api_key), _run_from(current, server, api_key)
    result = diff_runs(before, after, alpha=alpha)
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
    for warning in comparability_warnings(before, after):
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)


@eval_app.command("upload")
@invalid_exits_2
def upload_run(
    run_file: Annotated[Path, typer.Argument(help="A run's JSON (tuneloop eval run --out)")],
    agent: Annotated[
        str | None, typer.Option(help="The agent evaluated (default: the run's own)")
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(help="The stored version it evaluated (default: found by config hash)"),
    ] = None,
    server: Server = None,
    api_key: AdminKey = None,
    as_json: AsJson = False,
) -> None:
    """Store a run on the server; a run linked to a version records its gate verdict."""
    import json

    result = read_run(run_file)
    with connect(server, api_key) as remote:
        answer = remote.upload(result, agent=agent, version=version)
    if as_json:
        console.print_json(json.dumps(answer))
        return
    print_stored(answer)


@eval_app.command("list")
@invalid_exits_2
def list_runs(
    agent: Annotated[str | None, typer.Option(help="Only this agent's runs")] = None,
    version: Annotated[
        str | None, typer.Option(help="Only runs of this version (needs --agent)")
    ] = None,
    suite: Annotated[str | None, typer.Option(help="Only this suite")] = None,
    stage: Annotated[str | None, typer.Option(help="Only this stage")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show", min=1, max=500)] = 20,
    server: Server = None,
    api_key: AdminKey = None,
    as_json: AsJson = False,
) -> None:
    """List stored runs, newest first."""
    import json
    from datetime import UTC, datetime

    from rich.table import Table

    params = [("limit", str(limit))]
    for name, value in (("agent", agent), ("version", version), ("suite", suite), ("stage", stage)):
        if value is not None:
            params.append((name, value))
    with connect(server, api_key) as remote:
        document = remote.list_runs(params)
    if as_json:
        console.print_json(json.dumps(document))
        return
    table = Table("run", "agent", "suite", "stage", "version", "gate", "pass^1", "cases", "stored")
    for item in document["items"]:
        gate = {True: "[green]passed[/]", False: "[red]failed[/]", None: "-"}[item["passed"]]
        stored = datetime.fromtimestamp(item["created_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        version_text = item["version"] or "-"
        if item["version_hash"]:
            version_text += f" ({item['version_hash'][:8]})"
        table.add_row(
            item["run_id"][:12], item["agent"], item["suite"], item["stage"], version_text,
            gate, f"{item['pass_rate'] * 100:.1f}%", str(item["cases"]), stored,
        )  # fmt: skip
    console.print(table)


@eval_app.command("show")
@invalid_exits_2
def show(
    run_id: Annotated[str, typer.Argument(help="A stored run's id")],
    server: Server = None,
    api_key: AdminKey = None,
) -> None:
    """Show a stored run: categories, failed cases (with their causes) and the gate."""
    with connect(server, api_key) as remote:
        print_summary(remote.get_run(run_id))


@eval_app.command("gate")
@invalid_exits_2
def gate(
    agent: Annotated[str, typer.Argument(help="Agent name")],
    version: Annotated[str, typer.Argument(help="Version: hash, prefix, label or channel")],
    server: Server = None,
    api_key: AdminKey = None,
    as_json: AsJson = False,
) -> None:
    """A version's latest gate verdict per stage; exit 0 passed, 1 failed, 3 never evaluated."""
    import json

    from rich.table import Table

    with connect(server, api_key) as remote:
        document = remote.gate(agent, version)
    if as_json:
        console.print_json(json.dumps(document))
    else:
        table = Table("stage", "verdict", "run", "suite", "failed checks")
        for name, stage in document["stages"].items():
            verdict = "[green]passed[/]" if stage["passed"] else "[red]failed[/]"
            table.add_row(name, verdict, stage["run_id"][:12], stage["suite"],
                          "; ".join(stage["failures"]) or "-")  # fmt: skip
        console.print(table)
        console.print(
            f"version {document['label']} ({document['version'][:12]}) of {agent!r}: "
            f"gate {document['status']}",
            highlight=False,
        )
    if document["status"] == "failed":
        raise typer.Exit(EXIT_GATE_FAILED)
    if document["status"] == "unknown":
        raise typer.Exit(EXIT_NOT_STORED)


eval_app.command("replay")(eval_production.replay)
eval_app.add_typer(eval_production.dataset_app, name="dataset")

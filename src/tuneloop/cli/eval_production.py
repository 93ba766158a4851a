"""``tuneloop eval dataset from-traces`` and ``tuneloop eval replay``: evals from production.

Both read stored runs from the server (an admin key): the first writes them as dataset
cases for review, the second re-runs their inputs against a candidate version and
compares the outcome, tool errors, latency and cost with what production recorded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from tuneloop.cli.eval_common import (
    EXIT_GATE_FAILED,
    EXIT_NOT_STORED,
    AdminKey,
    Server,
    connect,
    console,
    err,
    invalid_exits_2,
    print_stored,
    say_error,
    write,
)

dataset_app = typer.Typer(help="Build eval datasets.", no_args_is_help=True)

Agent = Annotated[str, typer.Option("--agent", "-a", help="The agent whose runs to read")]
Where = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        "-w",
        help="KEY=VALUE: outcome, version, variant, experiment, since, ... or a run attribute",
    ),
]
Seed = Annotated[str, typer.Option(help="Seed of the sample: the same seed picks the same runs")]


@dataset_app.command("from-traces")
@invalid_exits_2
def from_traces(
    agent: Agent,
    out: Annotated[Path, typer.Option(help="The JSONL dataset to write")],
    where: Where = None,
    limit: Annotated[int, typer.Option(help="Cases to write", min=1)] = 200,
    pool: Annotated[
        int | None,
        typer.Option(
            help="Pick --limit at random from this many newest matching runs (default: the newest)"
        ),
    ] = None,
    seed: Seed = "tuneloop",
    category: Annotated[str, typer.Option(help="The cases' category")] = "production",
    expect_observed: Annotated[
        bool,
        typer.Option(
            help="Write what production answered and called as the cases' expected values"
        ),
    ] = False,
    server: Server = None,
    api_key: AdminKey = None,
) -> None:
    """Sample stored runs into dataset cases: inputs, observed outputs and tool calls."""
    from tuneloop.evals.dataset import load_dataset
    from tuneloop.evals.from_traces import (
        parse_where,
        sample_production_runs,
        to_case,
        write_cases,
    )

    filters = parse_where(where or [])
    with connect(server, api_key) as remote:
        sample = sample_production_runs(
            remote, agent=agent, where=filters, limit=limit, pool=pool, seed=seed
        )
    if not sample.runs:
        from tuneloop.errors import NotFoundError

        raise NotFoundError(
            f"no stored run of agent {agent!r} matches {where or 'the filters'} with a readable "
            f"input ({sample.listed} listed, {sample.skipped} without input); widen --where"
        )
    cases = [
        to_case(run, category=category, expect_observed=expect_observed) for run in sample.runs
    ]
    write_cases(out, cases)
    load_dataset(out)  # what was written must read back as a dataset
    truncated = sum(1 for run in sample.runs if run.truncated)
    err.print(
        f"{len(cases)} cases written to {out} ({sample.listed} runs listed, {sample.skipped} "
        f"skipped without input{f', {truncated} with truncated text' if truncated else ''})",
        highlight=False,
    )


@invalid_exits_2
def replay(
    agent: Agent,
    candidate: Annotated[
        str, typer.Option(help="The candidate version: hash, prefix, label or channel")
    ],
    target: Annotated[
        str | None,
        typer.Option(help="'module:callable', async (input, config) -> output (from the cwd)"),
    ] = None,
    agent_factory: Annotated[
        str | None,
        typer.Option(help="'module:factory', (config) -> an agent whose run(input) answers"),
    ] = None,
    sample: Annotated[int, typer.Option(help="Production runs to replay", min=1)] = 500,
    pool: Annotated[
        int | None,
        typer.Option(help="Sample from this many of the newest matching runs (default: 10x)"),
    ] = None,
    where: Where = None,
    seed: Seed = "tuneloop",
    concurrency: Annotated[int, typer.Option(help="Replays in flight at once", min=1)] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds per replayed run", min=0.001)] = 30.0,
    alpha: Annotated[
        float, typer.Option(help="Level of McNemar's exact test on outcomes", min=0.0, max=1.0)
    ] = 0.05,
    max_success_drop: Annotated[
        float, typer.Option(help="Allowed drop of the success rate (absolute; -1: no check)")
    ] = 0.10,
    max_tool_error_increase: Annotated[
        float, typer.Option(help="Allowed rise of the tool error rate (absolute; -1: no check)")
    ] = 0.02,
    max_latency_ratio: Annotated[
        float, typer.Option(help="Allowed latency p95 over production's (x; -1: no check)")
    ] = 1.25,
    max_cost_ratio: Annotated[
        float, typer.Option(help="Allowed mean cost over production's (x; -1: no check)")
    ] = 1.25,
    out: Annotated[Path | None, typer.Option(help="Write the replay run as JSON here")] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal)"),
    ] = None,
    upload: Annotated[
        bool, typer.Option(help="Store the run and the candidate's replay gate verdict")
    ] = True,
    server: Server = None,
    api_key: AdminKey = None,
) -> None:
    """Re-run sampled production inputs against a candidate version; exit 1 if it does worse."""
    from tuneloop.config.model import AgentConfig
    from tuneloop.errors import InvalidInputError, NotFoundError
    from tuneloop.evals.from_traces import parse_where, sample_production_runs
    from tuneloop.evals.replay import ReplayThresholds
    from tuneloop.evals.replay import replay as replay_sample

    thresholds = ReplayThresholds(
        alpha=alpha,
        max_success_drop=_limit(max_success_drop),
        max_tool_error_increase=_limit(max_tool_error_increase),
        max_latency_ratio=_limit(max_latency_ratio),
        max_cost_ratio=_limit(max_cost_ratio),
    )
    if (target is None) == (agent_factory is None):
        raise InvalidInputError("name the target with exactly one of --target or --agent-factory")
    fn = _target(target, agent_factory)
    filters = parse_where(where or [])
    with connect(server, api_key) as remote:
        found = remote.version(agent, candidate)
        config = AgentConfig.from_data(found["config"])
        drawn = sample_production_runs(
            remote, agent=agent, where=filters, limit=sample, pool=pool or sample * 10, seed=seed
        )
        if not drawn.runs:
            raise NotFoundError(
                f"no stored run of agent {agent!r} matches {where or 'the filters'} with a "
                f"readable input ({drawn.listed} listed); widen --where"
            )
        err.print(
            f"replaying {len(drawn.runs)} production runs of {agent!r} against version "
            f"{found['label']} ({found['version'][:12]})",
            highlight=False,
        )
        result = asyncio.run(
            replay_sample(
                drawn.runs,
                fn,
                config,
                agent=agent,
                version=found["label"],
                config_hash=found["version"],
                thresholds=thresholds,
                concurrency=concurrency,
                timeout_s=timeout,
                progress=progress,
                console=err,
            )
        )
        if out is not None:
            write(out, result.to_json(), "replay run")
        _print_replay(result)
        stored_error = None
        if upload:
            try:
                print_stored(remote.upload(result, agent=agent, version=found["version"]))
            except Exception as exc:  # reported after the verdict; the run is in --out
                stored_error = exc
    assert result.gate is not None
    if not result.gate.passed:
        raise typer.Exit(EXIT_GATE_FAILED)
    if stored_error is not None:
        say_error(f"the replay was not stored: {stored_error}")
        raise typer.Exit(EXIT_NOT_STORED)


def _limit(value: float) -> float | None:
    return None if value < 0 else value


def _target(target: str | None, factory: str | None) -> Any:
    from tuneloop.evals.target import agent_target, as_async, import_object

    where = [Path.cwd()]
    if factory is not None:
        built = import_object(factory, search_paths=where, what="--agent-factory")
        return agent_target(built, what=f"--agent-factory {factory!r}")
    assert target is not None
    found = import_object(target, search_paths=where, what="--target")
    return as_async(found, what=f"--target {target!r}")


def _print_replay(run: Any) -> None:
    from rich.table import Table

    figures = run.environment["replay"]
    table = Table(title=f"replay {run.agent} · {run.version}")
    for header in ("", "runs", "success", "tool errors", "p95", "cost"):
        table.add_column(header, justify="left" if not header else "right")
    for side in ("production", "candidate"):
        row = figures[side]
        table.add_row(
            side,
            str(row["runs"]),
            _pct(row["success_rate"]),
            _pct(row["tool_error_rate"]),
            "-" if row["latency_p95_ms"] is None else f"{row['latency_p95_ms']:.0f}ms",
            "-" if row["mean_cost_usd"] is None else f"${row['mean_cost_usd']:.4f}",
        )
    console.print(table)
    for check in run.gate.checks:
        mark = {"pass": "[green]ok[/]", "fail": "[bold red]FAIL[/]", "skipped": "[dim]skip[/]"}
        console.print(f"{mark[check.status]} {check.message}", markup=True, highlight=False)
    verdict = "[bold green]replay passed[/]" if run.gate.passed else "[bold red]replay failed[/]"
    console.print(f"{verdict} (run {run.run_id})", markup=True, highlight=False)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"

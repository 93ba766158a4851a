"""``tuneloop``: serve, keys, traces, metrics, demo."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from tuneloop.cli.common import friendly
from tuneloop.cli.config_cmd import audit_app, bundle_app, channel_app, config_app
from tuneloop.cli.eval_cmd import eval_app
from tuneloop.cli.experiment_cmd import experiment_app
from tuneloop.cli.recommend_cmd import recommend_app
from tuneloop.cli.review_cmd import review_app
from tuneloop.cli.rollout_cmd import rollback, rollout_app
from tuneloop.settings import Settings, load_settings

app = typer.Typer(
    name="tuneloop",
    help="Keep LLM agents improving in production: traces in, better versions out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(
    help="Create, list and revoke API keys (run on the server host).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(config_app, name="config")
app.add_typer(bundle_app, name="bundle")
app.add_typer(channel_app, name="channel")
app.add_typer(audit_app, name="audit")
app.add_typer(eval_app, name="eval")
app.add_typer(experiment_app, name="experiment")
app.add_typer(review_app, name="review")
app.add_typer(recommend_app, name="recommend")
app.add_typer(rollout_app, name="rollout")
app.command("rollback")(rollback)

console = Console()
err = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="Database URL [env: TUNELOOP_DATABASE_URL]")
]
Url = Annotated[str | None, typer.Option("--url", help="Server URL [env: TUNELOOP_URL]")]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", help="Admin API key [env: TUNELOOP_API_KEY]")
]


def _store(settings: Settings) -> Any:
    from tuneloop.store import Store

    return Store.open(settings.resolved_database_url())


@app.command()
@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [env: TUNELOOP_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env: TUNELOOP_PORT]")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the server: OTLP ingest at /v1/traces and the REST API at /api/v1."""
    import uvicorn

    from tuneloop.clock import SystemClock
    from tuneloop.server import create_app
    from tuneloop.server.bootstrap import bootstrap

    settings = load_settings(host=host, port=port, database_url=database_url)
    store = _store(settings)
    created = bootstrap(store, SystemClock())
    if created:
        err.print("[bold]First start: created project 'default'. These keys are shown once:[/]")
        for key in created:
            err.print(f"  {key.info.scope:<7} {key.secret}")
    err.print(
        f"tuneloop listening on http://{settings.host}:{settings.port} "
        f"({store.dialect}); OTLP endpoint /v1/traces"
    )
    try:
        uvicorn.run(
            create_app(settings, store=store),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
        )
    finally:
        store.close()


@keys_app.command("create")
@friendly
def keys_create(
    project: Annotated[str, typer.Option(help="Project id; created if it does not exist")],
    scope: Annotated[str, typer.Option(help="ingest (write traces and feedback) or admin")],
    name: Annotated[str, typer.Option(help="A label for the key")] = "",
    plain: Annotated[bool, typer.Option(help="Print only the key")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key and print it once; only its hash is stored."""
    from tuneloop.clock import SystemClock

    store = _store(load_settings(database_url=database_url))
    try:
        now = SystemClock().now_ms()
        created_project = store.keys.ensure_project(project, now_ms=now)
        key = store.keys.create_key(project, scope, name=name, now_ms=now)
    finally:
        store.close()
    if plain:
        print(key.secret)
        return
    if created_project:
        err.print(f"created project {project!r}")
    err.print(f"{scope} key {key.info.key_id} for project {project!r} (shown once):")
    print(key.secret)


@keys_app.command("list")
@friendly
def keys_list(
    project: Annotated[str | None, typer.Option(help="Only this project")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List keys (never their secrets)."""
    from datetime import UTC, datetime

    from rich.table import Table

    store = _store(load_settings(database_url=database_url))
    try:
        keys = store.keys.list_keys(project)
    finally:
        store.close()
    table = Table("key id", "project", "scope", "name", "created", "revoked")
    for key in keys:
        created = datetime.fromtimestamp(key.created_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            key.key_id,
            key.project_id,
            key.scope,
            key.name,
            created,
            "yes" if key.revoked_ms else "",
        )
    console.print(table)


@keys_app.command("revoke")
@friendly
def keys_revoke(key_id: str, database_url: DatabaseUrl = None) -> None:
    """Revoke a key; servers refuse it within seconds."""
    from tuneloop.clock import SystemClock

    store = _store(load_settings(database_url=database_url))
    try:
        store.keys.revoke_key(key_id, now_ms=SystemClock().now_ms())
    finally:
        store.close()
    err.print(f"revoked {key_id}")


def _api(url: str | None, api_key: str | None) -> Any:
    from tuneloop.cli.api import Api

    return Api(load_settings(url=url, api_key=api_key))


@app.command()
@friendly
def traces(
    agent: Annotated[str | None, typer.Option(help="Only this agent")] = None,
    version: Annotated[str | None, typer.Option(help="Only this config version")] = None,
    variant: Annotated[str | None, typer.Option(help="Only this variant")] = None,
    outcome: Annotated[str | None, typer.Option(help="success, failure, escalated, …")] = None,
    since: Annotated[str | None, typer.Option(help="e.g. 24h, or ISO 8601")] = None,
    attr: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE on the run's attributes")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to show")] = 20,
    trace_id: Annotated[
        str | None, typer.Option("--id", help="Show one trace as a span tree")
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Search runs, or show one trace's span tree with --id."""
    from tuneloop.cli.render import trace_tree, traces_table

    api = _api(url, api_key)
    try:
        if trace_id:
            console.print(trace_tree(api.get(f"/api/v1/traces/{trace_id}")))
            return
        params = [("limit", str(limit))]
        for name, value in (
            ("agent", agent), ("version", version), ("variant", variant),
            ("outcome", outcome), ("since", since),
        ):  # fmt: skip
            if value is not None:
                params.append((name, value))
        params += [("attr", item) for item in attr or []]
        document = api.get("/api/v1/traces", params)
        console.print(traces_table(document["items"]))
        if document["next_cursor"]:
            err.print(f"[dim]more: --limit, or the API with cursor={document['next_cursor']}[/]")
    finally:
        api.close()


@app.command()
@friendly
def metrics(
    agent: Annotated[str | None, typer.Option(help="One agent (default: every agent)")] = None,
    group_by: Annotated[
        list[str] | None,
        typer.Option("--group-by", "-g", help="version, variant, experiment, tool, time"),
    ] = None,
    bucket: Annotated[str, typer.Option(help="Time bucket for --group-by time")] = "1h",
    since: Annotated[str | None, typer.Option(help="e.g. 24h, or ISO 8601")] = None,
    until: Annotated[str | None, typer.Option(help="e.g. ISO 8601")] = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Runs, success / error / escalation rates, latency percentiles, tokens, cost, tool errors."""
    from tuneloop.cli.render import metrics_table

    api = _api(url, api_key)
    try:
        params = [("bucket", bucket)] + [("group_by", g) for g in group_by or []]
        for name, value in (("agent", agent), ("since", since), ("until", until)):
            if value is not None:
                params.append((name, value))
        console.print(metrics_table(api.get("/api/v1/metrics", params)))
    finally:
        api.close()


@app.command()
@friendly
def demo(
    serve: Annotated[
        bool,
        typer.Option("--serve/--no-serve", help="Keep the server and dashboard up until Ctrl-C"),
    ] = True,
    port: Annotated[int, typer.Option(help="Port for the embedded server (0: any free port)")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated world")] = 7,
) -> None:
    """The whole loop on the embedded server: traffic, recommendations, gate, A/B, rollouts."""
    from tuneloop.demo.run import run_demo

    run_demo(keep_serving=serve, port=port, seed=seed, console=console)


def main() -> None:
    """Entry point of the ``tuneloop`` command."""
    app(prog_name="tuneloop")


if __name__ == "__main__":
    main()

"""``tuneloop config|bundle|channel|audit``: versioned agent configs from the command line.

Every command talks to the server over HTTP with an admin key, except ``audit verify
--database-url URL``, which reads the database directly and checks every project (so
it works with the server down, and does not trust the server's answer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tuneloop.cli.common import friendly

if TYPE_CHECKING:
    from tuneloop.cli.api import Api

config_app = typer.Typer(
    help="Push, list, diff and export agent config versions.", no_args_is_help=True
)
bundle_app = typer.Typer(
    help="Apply bundles (change sets) to an agent's config.", no_args_is_help=True
)
channel_app = typer.Typer(
    help="Point channels (production, staging, ...) at versions.", no_args_is_help=True
)
audit_app = typer.Typer(
    help="The audit log of config changes, and its hash-chain check.", no_args_is_help=True
)

console = Console()
err = Console(stderr=True)

Agent = Annotated[str, typer.Option("--agent", "-a", help="Agent name")]
AgentArg = Annotated[str, typer.Argument(help="Agent name")]
Url = Annotated[str | None, typer.Option("--url", help="Server URL [env: TUNELOOP_URL]")]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", help="Admin API key [env: TUNELOOP_API_KEY]")
]
Label = Annotated[str | None, typer.Option(help="Semver label (default: next minor)")]
Message = Annotated[str, typer.Option("--message", "-m", help="Why this version exists")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer")]


def _api(url: str | None, api_key: str | None) -> Api:
    from tuneloop.cli.api import Api
    from tuneloop.settings import load_settings

    return Api(load_settings(url=url, api_key=api_key))


def _send(api: Api, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """A write request; errors become tuneloop exceptions carrying the server's message."""
    return api.request(method, path, json=body)


def _short(version: dict[str, Any]) -> str:
    return f"{version['label']} ({version['version'][:12]})"


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _print_diff(document: dict[str, Any]) -> None:
    from rich.table import Table

    if not document["changes"]:
        console.print("no differences")
        return
    table = Table("op", "path", "before", "after")
    for change in document["changes"]:
        before = "" if change["op"] == "add" else _value(change["before"])
        after = "" if change["op"] == "remove" else _value(change["after"])
        if change["path"].startswith("/prompts/"):
            before, after = ("", "") if change["op"] == "remove" else ("", "(text diff below)")
        table.add_row(change["op"], change["path"], before, after, style=None)
    console.print(table)
    for text in document["prompts"].values():
        typer.echo(text, nl=False)


@config_app.command("push")
@friendly
def push(
    file: Annotated[Path, typer.Argument(help="Config YAML or JSON; prompts may be files")],
    agent: Agent,
    label: Label = None,
    message: Message = "",
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Store a config file as a new version (the agent's first becomes production)."""
    from tuneloop.config.canonical import content_hash
    from tuneloop.config.loading import load_config_file

    config = load_config_file(file)
    data = config.to_data()
    body = {"config": data, "label": label, "message": message, "hash": content_hash(data)}
    api = _api(url, api_key)
    try:
        version = _send(api, "POST", f"/api/v1/agents/{agent}/versions", body)
    finally:
        api.close()
    if version["created"]:
        typer.echo(f"created {agent} {_short(version)}")
    else:
        typer.echo(f"unchanged: {agent} already has this config as {_short(version)}")


@config_app.command("versions")
@friendly
def versions(
    agent: AgentArg, as_json: AsJson = False, url: Url = None, api_key: ApiKey = None
) -> None:
    """List an agent's versions, newest first, with the channels on them."""
    from datetime import UTC, datetime

    from rich.table import Table

    api = _api(url, api_key)
    try:
        document = api.get(f"/api/v1/agents/{agent}/versions")
    finally:
        api.close()
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    on: dict[str, list[str]] = {}
    for channel, version in document["channels"].items():
        on.setdefault(version, []).append(channel)
    table = Table("label", "hash", "channels", "bundle", "author", "created", "message")
    for v in document["items"]:
        created = datetime.fromtimestamp(v["created_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        bundle = f"{v['bundle_id']}@{v['bundle_version']}" if v["bundle_id"] else ""
        channels = ", ".join(on.get(v["version"], []))
        table.add_row(
            v["label"], v["version"][:12], channels, bundle, v["author"], created, v["message"]
        )
    console.print(table)


@config_app.command("diff")
@friendly
def diff(
    agent: AgentArg,
    old: Annotated[str, typer.Argument(help="From: hash, hash prefix, label or channel")],
    new: Annotated[str, typer.Argument(help="To: hash, hash prefix, label or channel")],
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Show what changed between two versions: path by path, and prompts as unified diffs."""
    api = _api(url, api_key)
    try:
        document = api.get(f"/api/v1/agents/{agent}/diff", [("from", old), ("to", new)])
    finally:
        api.close()
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    err.print(f"{agent}: {_short(document['from'])} -> {_short(document['to'])}")
    _print_diff(document)


@config_app.command("export")
@friendly
def export(
    agent: AgentArg,
    version: Annotated[str, typer.Argument(help="Hash, hash prefix, label or channel")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write into")] = Path(),
    force: Annotated[bool, typer.Option(help="Overwrite existing files")] = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Write a version back out as files: agent.yaml and prompts/NAME.txt."""
    from tuneloop.config.export import write_export
    from tuneloop.config.model import AgentConfig

    api = _api(url, api_key)
    try:
        found = api.get(f"/api/v1/agents/{agent}/versions/{version}")
    finally:
        api.close()
    header = f"tuneloop agent config: {agent} {found['label']}\nversion {found['version']}"
    config = AgentConfig.from_data(found["config"], source=f"version {found['label']}")
    for path in write_export(config, out, header=header, overwrite=force):
        typer.echo(f"wrote {path}")


@bundle_app.command("apply")
@friendly
def bundle_apply(
    file: Annotated[Path, typer.Argument(help="Bundle YAML or JSON")],
    agent: Agent,
    base: Annotated[str | None, typer.Option(help="Version to apply to")] = None,
    label: Label = None,
    message: Message = "",
    dry_run: Annotated[bool, typer.Option(help="Show the diff; create nothing")] = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Apply a bundle to a version (default: production's) and store the result."""
    from tuneloop.config.loading import load_bundle_file

    bundle = load_bundle_file(file)
    body = {
        "bundle": bundle.to_data(), "base": base, "label": label, "message": message,
        "dry_run": dry_run,
    }  # fmt: skip
    api = _api(url, api_key)
    try:
        result = _send(api, "POST", f"/api/v1/agents/{agent}/bundles", body)
    finally:
        api.close()
    if dry_run:
        typer.echo(f"dry run: {bundle.bundle_id} on {_short(result['base'])} would change:")
    elif result["created"]:
        typer.echo(
            f"created {agent} {_short(result)} from {_short(result['base'])} "
            f"with bundle {bundle.bundle_id} {bundle.version}"
        )
    else:
        typer.echo(f"unchanged: the result is {agent} {_short(result)}, which exists")
    _print_diff(result)


def _current(api: Api, agent: str, channel: str) -> str | None:
    channels = api.get(f"/api/v1/agents/{agent}/channels")["items"]
    return next((c["version"] for c in channels if c["channel"] == channel), None)


Expected = Annotated[
    str | None,
    typer.Option(
        "--expected", help="Move only if the channel is on this version (default: as read now)"
    ),
]


@channel_app.command("set")
@friendly
def channel_set(
    agent: AgentArg,
    channel: Annotated[str, typer.Argument(help="production, staging, ...")],
    version: Annotated[str, typer.Argument(help="Hash, hash prefix or label")],
    expected: Expected = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Point a channel at a version (a compare-and-set: refused if someone moved it)."""
    api = _api(url, api_key)
    try:
        seen = expected or _current(api, agent, channel)
        body = {"version": version, "expected_version": seen}
        moved = _send(api, "PUT", f"/api/v1/agents/{agent}/channels/{channel}", body)
    finally:
        api.close()
    verb = "moved" if moved["moved"] else "already on"
    typer.echo(f"{agent} {channel} {verb} {moved['label']} ({moved['version'][:12]})")


@channel_app.command("rollback")
@friendly
def channel_rollback(
    agent: AgentArg,
    channel: Annotated[str, typer.Argument(help="production, staging, ...")],
    version: Annotated[
        str | None, typer.Argument(help="Earlier version (default: the one before)")
    ] = None,
    expected: Expected = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Move a channel back to an earlier version, instantly; recorded as a rollback."""
    api = _api(url, api_key)
    try:
        seen = expected or _current(api, agent, channel)
        body = {"version": version, "expected_version": seen}
        moved = _send(api, "POST", f"/api/v1/agents/{agent}/channels/{channel}/rollback", body)
    finally:
        api.close()
    typer.echo(f"rolled back {agent} {channel} to {moved['label']} ({moved['version'][:12]})")


@channel_app.command("list")
@friendly
def channel_list(agent: AgentArg, url: Url = None, api_key: ApiKey = None) -> None:
    """An agent's channels and their versions."""
    api = _api(url, api_key)
    try:
        items = api.get(f"/api/v1/agents/{agent}/channels")["items"]
    finally:
        api.close()
    for item in items:
        typer.echo(f"{item['channel']:<12} {item['label']:<10} {item['version']}")


@audit_app.command("list")
@friendly
def audit_list(
    agent: Annotated[str | None, typer.Option(help="Only this agent")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show")] = 100,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """The audit log: who did what to which agent and channel, oldest first."""
    from datetime import UTC, datetime

    from rich.table import Table

    params = [("limit", str(limit))] + ([("agent", agent)] if agent else [])
    api = _api(url, api_key)
    try:
        items = api.get("/api/v1/audit", params)["items"]
    finally:
        api.close()
    table = Table("seq", "when", "who", "action", "agent", "channel", "before", "after")
    for row in items:
        when = datetime.fromtimestamp(row["created_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            str(row["seq"]), when, row["key_id"], row["action"], row["agent"],
            row["channel"] or "", (row["before"] or "")[:12], (row["after"] or "")[:12],
        )  # fmt: skip
    console.print(table)


@audit_app.command("verify")
@friendly
def audit_verify(
    database_url: Annotated[
        str | None,
        typer.Option(help="Check every project in this database directly, without a server"),
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Recompute the audit hash chain and every version's hash; exit 1 if anything is off."""
    if database_url:
        import sqlalchemy as sa

        from tuneloop.errors import StoreError
        from tuneloop.store import Store

        store = Store.open(database_url, upgrade=False)
        try:
            reports = [report.to_data() for report in store.configs.verify()]
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot read the audit log at {database_url!r}: {exc}") from exc
        finally:
            store.close()
    else:
        api = _api(url, api_key)
        try:
            reports = [api.get("/api/v1/audit/verify")]
        finally:
            api.close()
    for report in reports:
        state = "[green]ok[/]" if report["ok"] else "[bold red]TAMPERED[/]"
        console.print(
            f"{report['project_id']}: {state}, {report['rows']} rows, head {report['head_hash']}",
            soft_wrap=True,
        )
        for problem in report["problems"]:
            console.print(f"  - {problem}", markup=False, highlight=False, soft_wrap=True)
    if not all(report["ok"] for report in reports):
        raise typer.Exit(1)

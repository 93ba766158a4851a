"""``tuneloop rollout start|status|list|pause|resume|approve|abort`` and ``tuneloop rollback``.

Every command talks to the server over HTTP with an admin key; the actions act on the
agent's active rollout. ``status`` prints the rollout's steps, its latest figures and
its timeline (holds folded, unless ``--all``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tuneloop.cli.common import friendly
from tuneloop.cli.rollout_render import render

rollout_app = typer.Typer(
    help="Roll a version out in steps, guarded against the stable version.", no_args_is_help=True
)
console = Console()

AgentArg = Annotated[str, typer.Argument(help="Agent name")]
Url = Annotated[str | None, typer.Option("--url", help="Server URL [env: TUNELOOP_URL]")]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", help="Admin API key [env: TUNELOOP_API_KEY]")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer")]
Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (shown in the timeline)")]


def call(url: str | None, api_key: str | None, method: str, path: str, body: Any = None) -> Any:
    """One request to the server; error answers become tuneloop exceptions with its message."""
    from tuneloop.cli.api import Api
    from tuneloop.settings import load_settings

    api = Api(load_settings(url=url, api_key=api_key))
    try:
        return api.request(method, path, json=body, timeout=60.0)
    finally:
        api.close()


def _active(url: str | None, api_key: str | None, agent: str) -> str:
    document = call(url, api_key, "GET", f"/api/v1/agents/{agent}/rollout?limit=1")
    return str(document["rollout_id"])


def _show(document: dict[str, Any], as_json: bool) -> None:
    if as_json:
        import json

        print(json.dumps(document, indent=2))
    else:
        console.print(render(document))


def _weights(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(part) for part in text.replace("%", "").split(",") if part.strip()]
    except ValueError:
        from tuneloop.errors import InvalidInputError

        raise InvalidInputError(
            f"--steps takes percentages separated by commas, e.g. 5,25,50,100; got {text!r}"
        ) from None


@rollout_app.command("start")
@friendly
def start(
    agent: AgentArg,
    version: Annotated[str, typer.Option("--version", "-v", help="The candidate version")],
    preset: Annotated[str, typer.Option(help="canary, gradual or blue-green")] = "canary",
    steps: Annotated[str | None, typer.Option(help="Weights in percent, e.g. 5,25,50,100")] = None,
    step_duration: Annotated[
        str | None, typer.Option(help="Minimum time per step, e.g. 30m")
    ] = None,
    min_units: Annotated[int | None, typer.Option(help="Minimum candidate units per step")] = None,
    approve_before: Annotated[
        str | None, typer.Option(help="Weights whose step needs an approval, e.g. 50,100")
    ] = None,
    notify: Annotated[
        list[str] | None, typer.Option(help="Webhook URL told of a rollback (repeatable)")
    ] = None,
    definition: Annotated[
        Path | None, typer.Option(help="A full definition (JSON or YAML file)")
    ] = None,
    force_reason: Annotated[
        str | None, typer.Option(help="Start despite a failed eval gate; recorded")
    ] = None,
    rollout_id: Annotated[
        str | None,
        typer.Option("--id", help="The rollout's id, also its unit-split salt (default: random)"),
    ] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Start rolling VERSION out to AGENT's units against production."""
    body: dict[str, Any] = {"version": version, "preset": preset}
    if definition is not None:
        import yaml

        body["definition"] = yaml.safe_load(definition.read_text(encoding="utf-8"))
    for key, value in (("steps", _weights(steps)), ("step_duration", step_duration),
                       ("min_units", min_units), ("notify", notify),
                       ("force_reason", force_reason), ("rollout_id", rollout_id)):  # fmt: skip
        if value is not None:
            body[key] = value
    body["approve_before"] = _weights(approve_before) or []
    document = call(url, api_key, "POST", f"/api/v1/agents/{agent}/rollouts", body)
    _show(document, as_json)


@rollout_app.command("status")
@friendly
def status(
    agent: AgentArg,
    rollout_id: Annotated[str | None, typer.Option("--id", help="A rollout by id")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every evaluation, holds too")] = False,
    limit: Annotated[int, typer.Option(help="Timeline rows to fetch")] = 500,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """The agent's active (else latest) rollout: steps, latest figures, timeline."""
    path = f"/api/v1/rollouts/{rollout_id}" if rollout_id else f"/api/v1/agents/{agent}/rollout"
    document = call(url, api_key, "GET", f"{path}?limit={limit}")
    if as_json:
        _show(document, True)
    else:
        console.print(render(document, every=every))


@rollout_app.command("list")
@friendly
def list_rollouts(
    agent: Annotated[str | None, typer.Option(help="Only this agent")] = None,
    active: Annotated[bool, typer.Option(help="Only running or paused ones")] = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """The project's rollouts, newest first."""
    query = f"?active={str(active).lower()}" + (f"&agent={agent}" if agent else "")
    document = call(url, api_key, "GET", f"/api/v1/rollouts{query}")
    table = Table("id", "agent", "candidate", "stable", "status", "step", "weight", "started")
    for item in document["items"]:
        table.add_row(
            item["rollout_id"], item["agent"], item["candidate_label"] or item["candidate"][:12],
            item["stable_label"] or item["stable"][:12], item["status"],
            f"{item['step'] + 1}/{item['steps']}", f"{item['weight']:g} %",
            datetime.fromtimestamp(item["created_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M"),
        )  # fmt: skip
    console.print(table)


def _action(
    agent: str, action: str, body: dict[str, Any] | None, url: str | None, api_key: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    rollout_id = _active(url, api_key, agent)
    document = call(url, api_key, "POST", f"/api/v1/rollouts/{rollout_id}/{action}", body)
    _show(document, as_json)


@rollout_app.command("pause")
@friendly
def pause(
    agent: AgentArg, reason: Reason = "", as_json: AsJson = False, url: Url = None,
    api_key: ApiKey = None,
) -> None:  # fmt: skip
    """Hold the rollout at its current weight (guards still roll back)."""
    _action(agent, "pause", {"reason": reason}, url, api_key, as_json)


@rollout_app.command("resume")
@friendly
def resume(
    agent: AgentArg, as_json: AsJson = False, url: Url = None, api_key: ApiKey = None
) -> None:
    """Continue a paused rollout."""
    _action(agent, "resume", None, url, api_key, as_json)


@rollout_app.command("approve")
@friendly
def approve(
    agent: AgentArg,
    step: Annotated[int | None, typer.Option(help="Step number (default: the next)")] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Approve a step that waits for approval."""
    _action(agent, "approve", {"step": step}, url, api_key, as_json)


@rollout_app.command("abort")
@friendly
def abort(
    agent: AgentArg, reason: Reason = "", as_json: AsJson = False, url: Url = None,
    api_key: ApiKey = None,
) -> None:  # fmt: skip
    """Stop the rollout: the candidate gets no more units; production is unchanged."""
    _action(agent, "abort", {"reason": reason}, url, api_key, as_json)


@friendly
def rollback(
    agent: AgentArg,
    to: Annotated[str | None, typer.Option(help="Version to put production on")] = None,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Back to safety: stop any rollout; with none running, move production back one version."""
    document = call(url, api_key, "POST", f"/api/v1/agents/{agent}/rollback", {"to": to})
    if as_json:
        _show(document, True)
        return
    if document["rollout"]:
        stopped = document["rollout"]
        console.print(
            f"rolled back rollout {stopped['rollout_id']} of {stopped['candidate_label']}: "
            f"every unit is on {stopped['stable_label']} again"
        )
    if document["production"]:
        moved = document["production"]
        console.print(
            f"production of {agent} moved back from {moved['from_label']} to {moved['to_label']}"
        )

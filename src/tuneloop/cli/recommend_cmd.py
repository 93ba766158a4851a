"""``tuneloop recommend``: what the analyzers found in an agent's traffic, and deciding on it.

``tuneloop recommend --agent support --window 24h`` asks the server to analyze the
agent's recent runs now and prints the findings; ``accept ID`` turns one into a bundle
and a candidate version, ``dismiss ID --reason …`` sets it aside.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from tuneloop.cli.common import friendly

if TYPE_CHECKING:
    from tuneloop.cli.api import Api

recommend_app = typer.Typer(
    help="Recommendations from an agent's production traces: list, accept, dismiss.",
    invoke_without_command=True,
)
console = Console()

Agent = Annotated[str, typer.Option("--agent", "-a", help="Agent name")]
Url = Annotated[str | None, typer.Option("--url", help="Server URL [env: TUNELOOP_URL]")]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", help="Admin API key [env: TUNELOOP_API_KEY]")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer")]


def _api(url: str | None, api_key: str | None) -> Api:
    from tuneloop.cli.api import Api
    from tuneloop.settings import load_settings

    return Api(load_settings(url=url, api_key=api_key))


def _request(api: Api, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """A request (analysis can take minutes); errors carry the server's message."""
    return api.request(method, path, json=body, timeout=300.0)


def _op(op: dict[str, Any]) -> str:
    value = json.dumps(op.get("value"), ensure_ascii=False)
    if len(value) > 80:
        value = value[:77] + "..."
    return f"{op['op']} {op['path']}" + ("" if op["op"] == "remove" else f" = {value}")


def print_findings(items: list[dict[str, Any]], *, title: str) -> None:
    """Findings one block each: id, type, target, confidence, then what, impact and patch."""
    console.print(f"[bold]{escape(title)}[/]")
    for item in items:
        impact = item.get("expected_impact") or {}
        text = impact.get("text", "") if isinstance(impact, dict) else str(impact)
        target = escape(item["target"])
        head = f"\n[bold cyan]{item.get('id', '-')}[/]  {item['type']}  [bold]{target}[/]"
        gate = "  [yellow]needs the eval gate[/]" if item.get("requires_eval_gate") else ""
        console.print(f"{head}  confidence {item['confidence']:.2f}{gate}", highlight=False)
        console.print(f"  {escape(item['title'])}", highlight=False, soft_wrap=True)
        console.print(f"  [dim]impact:[/] {escape(text)}", highlight=False, soft_wrap=True)
        for op in item.get("change", []):
            console.print(f"  [dim]change:[/] {escape(_op(op))}", highlight=False, soft_wrap=True)
        traces = (item.get("evidence") or {}).get("example_trace_ids") or []
        if traces:
            shown = ", ".join(traces[:3]) + (f" (+{len(traces) - 3})" if len(traces) > 3 else "")
            console.print(f"  [dim]examples:[/] {shown}", highlight=False, soft_wrap=True)


def _print_report(report: dict[str, Any], items: list[dict[str, Any]]) -> None:
    version = report.get("version") or "all versions"
    console.print(
        f"[bold]{report['agent']}[/] ({escape(str(version))}): {report['runs']:,} runs analyzed"
        f" (about {report['weighted_runs']:,.0f} with sampling undone)"
    )
    if items:
        print_findings(items, title=f"{len(items)} open recommendation(s)")
    else:
        console.print("No recommendations: nothing to change.")
    for note in report.get("notes", []):
        console.print(f"[dim]note:[/] {escape(note)}", soft_wrap=True)
    for item in report.get("discarded", []):
        console.print(
            f"[dim]discarded:[/] {escape(item['target'])}: {escape(item['reason'])}", soft_wrap=True
        )
    saved = report.get("saved")
    if saved:
        console.print(f"[dim]stored: {', '.join(f'{k} {v}' for k, v in saved.items() if v)}[/]")


@recommend_app.callback()
@friendly
def recommend(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Agent name")] = None,
    window: Annotated[str, typer.Option(help="How far back to analyze: 24h, 7d…")] = "24h",
    version: Annotated[
        str | None, typer.Option(help="Config version (default: the busiest)")
    ] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh/--no-refresh", help="Analyze now, or list what is stored")
    ] = True,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Analyze an agent's recent traces and print the recommendations."""
    if ctx.invoked_subcommand is not None:
        return
    if agent is None:
        raise typer.BadParameter(
            "give the agent: tuneloop recommend --agent NAME", param_hint="--agent"
        )
    api = _api(url, api_key)
    try:
        path = f"/api/v1/agents/{agent}/recommendations"
        report: dict[str, Any] | None = None
        if refresh:
            report = _request(
                api, "POST", f"{path}/refresh", {"window": window, "version": version}
            )
        listed = _request(api, "GET", path)
    finally:
        api.close()
    if as_json:
        typer.echo(json.dumps({"report": report, "items": listed["items"]}, indent=2))
        return
    if report is None:
        print_findings(listed["items"], title=f"open recommendations of {agent}")
        return
    _print_report(report, listed["items"])
    if listed["items"]:
        first = listed["items"][0]["id"]
        console.print(
            f"\nAccept one:  tuneloop recommend accept {first} --agent {agent}\n"
            f"Dismiss one: tuneloop recommend dismiss {first} --agent {agent} --reason '…'",
            soft_wrap=True,
        )


@recommend_app.command("accept")
@friendly
def accept(
    rec_id: Annotated[str, typer.Argument(help="Recommendation id (rec_…)")],
    agent: Agent,
    base: Annotated[
        str | None, typer.Option(help="Version to apply it to (default: its own)")
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
    as_json: AsJson = False,
) -> None:
    """Accept a recommendation: a bundle and a candidate version are created."""
    api = _api(url, api_key)
    try:
        result = _request(
            api, "POST", f"/api/v1/agents/{agent}/recommendations/{rec_id}/accept", {"base": base}
        )
    finally:
        api.close()
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    version = result["version"]
    console.print(
        f"Accepted {rec_id}: bundle [bold]{result['bundle']['bundle_id']}[/] on "
        f"{result['base']['label']} → candidate version [bold]{version['label']}[/] "
        f"({version['version'][:12]})"
    )
    if result["recommendation"].get("requires_eval_gate"):
        console.print("[yellow]Run the eval gate on it before any experiment.[/]")


@recommend_app.command("dismiss")
@friendly
def dismiss(
    rec_id: Annotated[str, typer.Argument(help="Recommendation id (rec_…)")],
    agent: Agent,
    reason: Annotated[str, typer.Option(help="Why (shown to the team)")],
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Dismiss a recommendation; it is not proposed again unless its evidence worsens."""
    api = _api(url, api_key)
    try:
        _request(
            api,
            "POST",
            f"/api/v1/agents/{agent}/recommendations/{rec_id}/dismiss",
            {"reason": reason},
        )
    finally:
        api.close()
    console.print(f"Dismissed {rec_id}.")

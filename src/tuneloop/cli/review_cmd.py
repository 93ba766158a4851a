"""``tuneloop review list|show|approve|reject``: the human review queue from the command line.

Every command talks to the server over HTTP with an admin key. A decision is final;
the agent picks it up when it resumes the parked run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from tuneloop.cli.common import friendly

if TYPE_CHECKING:
    from tuneloop.cli.api import Api

review_app = typer.Typer(
    help="Runs and tool calls waiting for a human: list, show, approve, reject.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

Url = Annotated[str | None, typer.Option("--url", help="Server URL [env: TUNELOOP_URL]")]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", help="Admin API key [env: TUNELOOP_API_KEY]")
]
Reason = Annotated[str, typer.Option("--reason", "-r", help="Why (recorded with the decision)")]
Reviewer = Annotated[
    str | None, typer.Option("--reviewer", help="Who decides (default: the API key's id)")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer")]


def _api(url: str | None, api_key: str | None) -> Api:
    from tuneloop.cli.api import Api
    from tuneloop.settings import load_settings

    return Api(load_settings(url=url, api_key=api_key))


def _post(api: Api, path: str, body: dict[str, Any]) -> Any:
    """POST a JSON body; errors become tuneloop exceptions carrying the server's message."""
    return api.request("POST", path, json=body)


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _what(item: dict[str, Any]) -> str:
    if item["kind"] == "tool_call":
        arguments = json.dumps(item.get("arguments") or {}, ensure_ascii=False)
        text = f"{item['tool']}({arguments})"
    else:
        text = f"{item['kind']}: {json.dumps(item.get('content'), ensure_ascii=False)}"
    return text if len(text) <= 70 else text[:67] + "..."


@review_app.command("list")
@friendly
def list_reviews(
    status: Annotated[str, typer.Option(help="pending, approved, rejected or all")] = "pending",
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Only this agent")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show")] = 50,
    as_json: AsJson = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """List review items (pending by default), oldest first, and the override rate."""
    from rich.table import Table

    api = _api(url, api_key)
    try:
        params = [("status", status), ("limit", str(limit))]
        stats_params = []
        if agent is not None:
            params.append(("agent", agent))
            stats_params.append(("agent", agent))
        document = api.get("/api/v1/reviews", params)
        stats = api.get("/api/v1/reviews/stats", stats_params)
    finally:
        api.close()
    if as_json:
        typer.echo(json.dumps({**document, "stats": stats}, indent=2))
        return
    table = Table("review", "agent", "run", "what", "why", "status", "created", "decided by")
    for item in document["items"]:
        table.add_row(
            item["review_id"],
            item["agent"],
            item["run_id"][:12],
            escape(_what(item)),
            escape(item["reason"]),
            item["status"],
            _when(item["created_ms"]),
            escape(item["reviewer"] or ""),
        )
    console.print(table)
    rate = stats["override_rate"]
    shown = "n/a" if rate is None else f"{rate:.1%}"
    err.print(
        f"{stats['pending']} pending, {stats['approved']} approved, {stats['rejected']} "
        f"rejected; human override rate {shown}"
    )


@review_app.command("show")
@friendly
def show(
    review_id: Annotated[str, typer.Argument(help="The review's id (rv_…)")],
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Print one review item as JSON."""
    api = _api(url, api_key)
    try:
        typer.echo(json.dumps(api.get(f"/api/v1/reviews/{review_id}"), indent=2))
    finally:
        api.close()


def _decide(
    decision: str,
    review_id: str,
    reason: str,
    reviewer: str | None,
    url: str | None,
    key: str | None,
) -> None:
    api = _api(url, key)
    body: dict[str, Any] = {"reason": reason}
    if reviewer is not None:
        body["reviewer"] = reviewer
    try:
        item = _post(api, f"/api/v1/reviews/{review_id}/{decision}", body)
    finally:
        api.close()
    err.print(
        f"{item['status']} {item['review_id']} (run {item['run_id']}) by {escape(item['reviewer'])}"
    )


@review_app.command("approve")
@friendly
def approve(
    review_id: Annotated[str, typer.Argument(help="The review's id (rv_…)")],
    reason: Reason = "",
    reviewer: Reviewer = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Approve: the call runs (or the answer goes out) when the agent resumes the run."""
    _decide("approve", review_id, reason, reviewer, url, api_key)


@review_app.command("reject")
@friendly
def reject(
    review_id: Annotated[str, typer.Argument(help="The review's id (rv_…)")],
    reason: Reason = "",
    reviewer: Reviewer = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Reject: the call is refused (or the run escalated) when the agent resumes the run."""
    _decide("reject", review_id, reason, reviewer, url, api_key)

"""Rich rendering of a rollout: header, steps, latest figures and the timeline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

_COLOURS = {
    "start": "cyan", "advance": "green", "promote": "bold green", "rollback": "bold red",
    "pause": "yellow", "resume": "cyan", "approve": "cyan", "abort": "red", "hold": "dim",
}  # fmt: skip
_STATUS = {"running": "green", "paused": "yellow", "promoted": "bold green",
           "rolled_back": "bold red", "aborted": "red"}  # fmt: skip


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _version(document: dict[str, Any], side: str) -> str:
    label = document.get(f"{side}_label")
    return f"{label} ({document[side][:12]})" if label else document[side][:12]


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    minutes = ms / 60_000
    return (
        f"{ms / 1000:g}s"
        if minutes < 1
        else f"{minutes:g}m"
        if minutes < 120
        else f"{minutes / 60:g}h"
    )


def _steps(document: dict[str, Any]) -> Table:
    table = Table("step", "weight", "min time", "max time", "min units", "prove", "approval",
                  "state", title="Steps", title_justify="left")  # fmt: skip
    current, status = document["step"], document["status"]
    for i, step in enumerate(document["definition"]["steps"]):
        if status == "promoted" or i < current:
            state = "[green]passed[/]"
        elif i == current:
            state = (
                f"[{_STATUS.get(status, 'white')}]{status if status != 'running' else 'current'}[/]"
            )
        else:
            state = "[dim]pending[/]"
        approval = ""
        if step["approval"]:
            approval = "approved" if i in document["approved_steps"] else "needed"
        table.add_row(
            str(i + 1), f"{step['weight']:g} %", _duration(step["min_duration_ms"]),
            _duration(step["max_duration_ms"]), str(step["min_units"]),
            "yes" if step["prove"] else "", approval, state,
        )  # fmt: skip
    return table


def _figures(entry: dict[str, Any]) -> Table | None:
    figures = entry.get("figures") or {}
    if "candidate" not in figures:
        return None
    candidate, stable = figures["candidate"], figures["stable"]
    title = (f"Latest figures (step {figures['step'] + 1}, {_time(entry['created_ms'])}): "
             f"candidate {candidate['units']} units / {candidate['runs']} runs, "
             f"stable {stable['units']} units / {stable['runs']} runs")  # fmt: skip
    table = Table("metric", "candidate", "stable", "verdict", "worse by (bounds)", "margin",
                  title=title, title_justify="left")  # fmt: skip
    guards = {guard["metric"]: guard for guard in figures.get("guards", [])}
    limits = {limit["metric"]: limit for limit in figures.get("limits", [])}
    for metric, value in candidate["values"].items():
        if value is None and metric not in guards:
            continue
        guard, limit = guards.get(metric), limits.get(metric)
        verdict, worse, margin = "", "", ""
        if guard is not None:
            colour = {"non_inferior": "green", "breached": "bold red"}.get(
                guard["verdict"], "yellow"
            )
            verdict = f"[{colour}]{guard['verdict']}[/]"
            if guard["worse_by"] is not None:
                kind = guard["margin_kind"]
                low, high = guard["lower_bound"], guard["upper_bound"]
                worse = (f"{_num(metric, guard['worse_by'], kind)} "
                         f"({_num(metric, low, kind)} .. {_num(metric, high, kind)})")  # fmt: skip
            margin = _num(metric, guard["margin"], guard["margin_kind"]).lstrip("+")
        if limit is not None and limit["breached"]:
            verdict += " [bold red]hard limit[/]"
        table.add_row(metric, _val(metric, value), _val(metric, stable["values"].get(metric)),
                      verdict, worse, margin)  # fmt: skip
    return table


def _val(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric.endswith("_ms"):
        return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"
    if metric == "cost_per_run":
        return f"${value:.4f}"
    return f"{value * 100:.2f}%"


def _num(metric: str, value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "relative":
        return f"{value * 100:+.1f}%"
    if metric.endswith("_ms"):
        return f"{value:+.0f}ms"
    if metric == "cost_per_run":
        return f"{value:+.4f}$"
    return f"{value * 100:+.2f}pp"


def _timeline(entries: list[dict[str, Any]], *, every: bool) -> Table:
    table = Table("time (UTC)", "step", "decision", "by", "reason", title="Timeline",
                  title_justify="left")  # fmt: skip
    shown = entries
    if not every:
        # Fold runs of holds: keep the last hold of each run (and the very last entry).
        shown = [e for i, e in enumerate(entries)
                 if e["decision"] != "hold" or i + 1 == len(entries)
                 or entries[i + 1]["decision"] != "hold"]  # fmt: skip
    for entry in shown:
        colour = _COLOURS.get(entry["decision"], "white")
        table.add_row(
            _time(entry["created_ms"]), str(entry["step"] + 1),
            Text(entry["decision"], style=colour), entry["actor"], escape(entry["reason"]),
        )  # fmt: skip
    return table


def render(document: dict[str, Any], *, every: bool = False) -> Group:
    """A rollout as Rich renderables: header, steps, latest figures, timeline."""
    status = document["status"]
    header = Text.from_markup(
        f"[bold]Rollout {document['rollout_id']}[/] of [bold]{escape(document['agent'])}[/]: "
        f"{_version(document, 'candidate')} against {_version(document, 'stable')}\n"
        f"status [{_STATUS.get(status, 'white')}]{status}[/], step {document['step'] + 1} of "
        f"{document['steps']}, candidate weight {document['weight']:g} %, started "
        f"{_time(document['created_ms'])} by {escape(document['created_by'])}"
        + (f"\nreason: {escape(document['reason'])}" if document.get("reason") else "")
    )
    parts: list[Any] = [header, _steps(document)]
    evaluations = [
        e for e in document.get("timeline", []) if "candidate" in (e.get("figures") or {})
    ]
    if evaluations:
        figures = _figures(evaluations[-1])
        if figures is not None:
            parts.append(figures)
    parts.append(_timeline(document.get("timeline", []), every=every))
    return Group(*parts)

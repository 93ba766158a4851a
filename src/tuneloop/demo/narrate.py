"""What the demo prints: each act's figures as the server answered them, in Rich tables.

Nothing here computes a figure; it formats the API's documents (the same renderings
as the CLI's ``rollout``, ``experiment`` and ``recommend`` commands where they exist).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

from tuneloop.cli.rollout_render import render as rollout_view
from tuneloop.demo.acts import Baseline, Candidate, Findings, Gates
from tuneloop.demo.gate import GateResult
from tuneloop.demo.shipping import WORTHWHILE_LIFT, BadRollout, Experiment, Rollout
from tuneloop.demo.traffic import Served
from tuneloop.experiments.report import results_view

HOUR_MS = 3_600_000


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M")


def served_line(served: Served) -> str:
    """How much traffic an act served, in simulated time."""
    hours = (served.until_ms - served.since_ms) / HOUR_MS
    reviewed = (
        f", {served.reviewed:,} refunds decided by the support team" if served.reviewed else ""
    )
    return (
        f"{served.runs:,} customer messages answered{reviewed} over {hours:.1f} simulated hours "
        f"({_when(served.since_ms)}-{_when(served.until_ms)} UTC)"
    )


def health_table(document: dict[str, Any], labels: dict[str, str], *, title: str) -> Table:
    """Runs, success, escalations, errors, latency, cost and tool errors per version."""
    table = Table(title=title, title_justify="left")
    for column in ("version", "runs", "success", "escalated", "errors", "p50", "p95",
                   "cost/run", "tool errors"):  # fmt: skip
        table.add_column(column, justify="left" if column == "version" else "right")
    named = [(labels.get(row["group"].get("version") or ""), row) for row in document["groups"]]
    for label, row in sorted(named, key=lambda item: _semver_key(item[0])):
        version = row["group"].get("version")
        latency = row["latency_ms"]
        table.add_row(
            label or (version or "-")[:12],
            f"{row['runs']:,}",
            _pct(row["task_success_rate"]),
            _pct(row["escalation_rate"]),
            _pct(row["error_rate"]),
            _ms(latency["p50"]),
            _ms(latency["p95"]),
            "-" if row["mean_cost_usd"] is None else f"${row['mean_cost_usd']:.4f}",
            _pct(row["tool_error_rate"]),
        )
    return table


def tools_table(document: dict[str, Any]) -> Table:
    """Calls, error rate and latency per tool."""
    table = Table(title="Tool calls", title_justify="left")
    for column in ("tool", "calls", "error rate", "retryable", "mean retries", "p50", "p95"):
        table.add_column(column, justify="left" if column == "tool" else "right")
    for row in document["groups"]:
        latency = row["latency_ms"]
        table.add_row(
            str(row["group"].get("tool")),
            f"{row['tool_calls']:,}",
            _pct(row["tool_error_rate"]),
            str(row["tool_errors_retryable"]),
            "-" if row["mean_retries"] is None else f"{row['mean_retries']:.2f}",
            _ms(latency["p50"]),
            _ms(latency["p95"]),
        )
    return table


def _semver_key(label: str | None) -> tuple[int, ...]:
    parts = (label or "").split(".")
    return tuple(int(part) for part in parts) if all(p.isdigit() for p in parts) else (1 << 30,)


class Narrator:
    """Prints the acts on ``console``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._started = time.perf_counter()

    def act(self, number: int, title: str) -> None:
        """An act's heading, with the real time since the demo began."""
        elapsed = time.perf_counter() - self._started
        self.console.print()
        self.console.print(
            Rule(f"[bold]{number}. {title}[/] [dim](at {elapsed:.0f} s)[/]", align="left")
        )

    def say(self, text: str) -> None:
        """One line of narration (Rich markup allowed)."""
        self.console.print(text, soft_wrap=True, highlight=False)

    def baseline(self, act: Baseline, labels: dict[str, str]) -> None:
        """Act 1."""
        self.say(served_line(act.served))
        self.console.print(health_table(act.health, labels, title="Health (GET /api/v1/metrics)"))
        self.console.print(tools_table(act.tools))

    def findings(self, act: Findings) -> None:
        """Act 2."""
        report = act.report
        self.say(
            f"The analyzers read {report['runs']:,} runs of version "
            f"{str(report.get('version') or '-')[:12]} and propose {len(act.items)} change(s):"
        )
        table = Table("type", "target", "finding", "expected impact", "conf.",
                      title="Recommendations (GET /api/v1/agents/support/recommendations)",
                      title_justify="left")  # fmt: skip
        for item in act.items:
            table.add_row(
                item["type"],
                escape(item["target"]),
                escape(item["title"]),
                _impact(item.get("expected_impact")),
                f"{item['confidence']:.2f}",
            )
        self.console.print(table)
        for item in act.items:
            impact = item.get("expected_impact") or {}
            examples = (item.get("evidence") or {}).get("example_trace_ids") or []
            self.say(
                f"  [bold]{escape(item['target'])}[/]: {escape(impact.get('basis', ''))} "
                f"[dim](e.g. trace {examples[0] if examples else '-'})[/]"
            )

    def candidate(self, act: Candidate) -> None:
        """Act 3."""
        for answer in act.accepted:
            rec, version = answer["recommendation"], answer["version"]
            bundle = answer["bundle"]["bundle_id"]
            self.say(
                f"accepted [bold]{escape(rec['title'])}[/] -> bundle {bundle}, "
                f"version {version['label']} ({version['version'][:12]})"
            )
        for item, reason in act.skipped:
            self.say(f"[yellow]left open[/] {escape(item['title'])}: {escape(reason)}")
        table = Table("path", "production", "candidate", title=(
            f"Diff production -> candidate {act.version['label']} (GET /api/v1/agents/support/diff)"
        ), title_justify="left")  # fmt: skip
        for change in act.diff.get("changes", []):
            table.add_row(change["path"], _value(change.get("before")), _value(change.get("after")))
        self.console.print(table)

    def gates(self, act: Gates) -> None:
        """Act 4."""
        self.console.print(_gate_table([act.candidate, act.harmful]))
        for result in (act.candidate, act.harmful):
            failed = ", ".join(result.failed_categories) or "none"
            self.say(
                f"version {result.version['label']}: gate [bold]{result.gate_status}[/] "
                f"(failed categories: {failed})"
            )
        self.say(f"An experiment on the harmful variant is refused: {escape(act.refused)}")

    def experiment(self, act: Experiment) -> None:
        """Act 5."""
        plan = act.plan
        self.say(
            f"planned for a {plan.effect:.3f} absolute lift ({WORTHWHILE_LIFT:.0%} relative): "
            f"{plan.total_units:,} units ({plan.method}); {served_line(act.served)}"
        )
        self.console.print(results_view(act.results))
        concluded = act.concluded
        self.say(
            f"experiment {concluded['id']}: {concluded['status']}, decision "
            f"[bold]{concluded['decision']}[/] {concluded.get('winner') or ''}"
        )

    def rollout(self, act: Rollout) -> None:
        """Acts 6 and 7's rollout."""
        self.say(served_line(act.served))
        self.console.print(rollout_view(act.document))

    def bad_rollout(self, act: BadRollout) -> None:
        """Act 7."""
        self.say(
            f"bundle fail-fast-lookups -> version {act.version['label']}; offline gate "
            f"[bold]{act.gate.gate_status}[/] ({act.gate.run.overall.pass_rate * 100:.0f}% of "
            "cases pass: the fixtures answer at once, so the suite cannot see the timeout)"
        )
        self.rollout(act.rollout)
        self.say(f"after the rollback: {served_line(act.after)}")

    def final(self, document: dict[str, Any], labels: dict[str, str]) -> None:
        """Act 8's table."""
        self.console.print(
            health_table(
                document, labels, title="Before and after, per version (GET /api/v1/metrics)"
            )
        )


def _impact(impact: Any) -> str:
    """``metric: before -> after`` of a finding's expected impact."""
    if not isinstance(impact, dict) or impact.get("before") is None:
        return "-"
    unit = impact.get("unit")

    def show(value: float) -> str:
        if unit == "ratio":
            return f"{value * 100:.1f}%"
        if unit == "usd_per_day":
            return f"${value:,.2f}/day"
        if unit == "ms":
            return _ms(value)
        return f"{value:,.0f}" + ("/day" if str(unit).endswith("per_day") else "")

    return (
        f"{escape(str(impact.get('metric')))}: {show(impact['before'])} -> {show(impact['after'])}"
    )


def _value(value: Any) -> str:
    if isinstance(value, dict):
        value = {key: item for key, item in value.items() if item is not None}
    text = value if isinstance(value, str) else json.dumps(value)
    return escape(text if len(text) <= 80 else text[:77] + "...")


def _gate_table(results: list[GateResult]) -> Table:
    categories = sorted({name for result in results for name in result.run.categories})
    table = Table(
        "version", *categories, "gate", title="Eval gate (post-merge)", title_justify="left"
    )
    for result in results:
        cells = [
            f"{result.run.categories[name].pass_rate * 100:.0f}%"
            if name in result.run.categories
            else "-"
            for name in categories
        ]
        status = result.gate_status
        colour = "green" if status == "passed" else "bold red"
        table.add_row(result.version["label"], *cells, f"[{colour}]{status}[/]")
    return table

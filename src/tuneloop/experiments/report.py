"""Rich renderings of experiment documents, as the CLI prints them.

They read the JSON the server answers (not the Python objects), so they show exactly
what the API says.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

_NONE = "-"
_VERDICT_STYLE = {"non_inferior": "green", "breached": "bold red", "inconclusive": "yellow"}
_ACTION_STYLE = {"ship": "bold green", "stop": "bold red", "investigate": "bold red"}


def when(ms: int | None) -> str:
    """Epoch milliseconds as a UTC time, or '-'."""
    if ms is None:
        return _NONE
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def number(value: float | None) -> str:
    """A metric value with four significant digits, or '-'."""
    return _NONE if value is None else f"{value:.4g}"


def p_value(value: float | None) -> str:
    """A p-value: three decimals, or scientific below 0.001."""
    if value is None:
        return _NONE
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _interval(interval: dict[str, Any], *, percent: bool) -> str:
    estimate, lower, upper = interval["estimate"], interval["lower"], interval["upper"]
    if estimate is None:
        return _NONE

    def fmt(value: float) -> str:
        return f"{value * 100:+.1f}%" if percent else f"{value:+.4g}"

    bounds = f" [{fmt(lower)}, {fmt(upper)}]" if lower is not None and upper is not None else ""
    return fmt(estimate) + bounds


def experiments_table(items: list[dict[str, Any]]) -> Table:
    """A list of experiments."""
    table = Table(
        "id",
        "agent",
        "status",
        "unit",
        "variants",
        "primary",
        "started",
        "decision",
        title="Experiments",
        title_justify="left",
    )
    for item in items:
        variants = ", ".join(
            f"{v['name']} {v['label']} {v['weight'] * 100:.0f}%" for v in item["variants"]
        )
        decision = item["decision"] or ""
        if item.get("winner"):
            decision += f" ({item['winner']})"
        table.add_row(
            item["id"],
            item["agent"],
            item["status"],
            item["unit_type"],
            variants,
            item["primary_metric"],
            when(item["started_ms"]),
            decision,
        )
    return table


def describe(experiment: dict[str, Any]) -> Table:
    """One experiment's definition and lifecycle, as a two-column table."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    guardrails = ", ".join(
        f"{g['metric']} (margin {g['margin'] * 100:.0f}%)"
        if g["margin_kind"] == "relative"
        else f"{g['metric']} (margin {g['margin']:g})"
        for g in experiment["guardrails"]
    )
    rows = [
        ("experiment", f"{experiment['id']} on {experiment['agent']} ({experiment['status']})"),
        (
            "variants",
            ", ".join(
                f"{v['name']} = {v['label']} ({v['version'][:12]}) {v['weight'] * 100:.0f}%"
                for v in experiment["variants"]
            ),
        ),
        ("description", experiment["description"] or _NONE),
        ("units", f"{experiment['unit_type']}, salt {experiment['salt']!r}"),
        (
            "primary",
            experiment["primary_metric"]
            + (
                f", mde {experiment['mde']:g} ({experiment['mde_kind']})"
                if experiment["mde"]
                else ""
            ),
        ),
        ("guardrails", guardrails or _NONE),
        ("secondary", ", ".join(experiment["metrics"]) or _NONE),
        (
            "method",
            f"{experiment['method']}, alpha {experiment['alpha']:g}"
            + (
                f", planned {experiment['planned_units']:,} units"
                if experiment["planned_units"]
                else ""
            ),
        ),
        ("started", when(experiment["started_ms"])),
        ("stopped", when(experiment["stopped_ms"])),
    ]
    if experiment["decision"]:
        decided = f"{experiment['decision']}"
        if experiment["winner"]:
            decided += f" {experiment['winner']}"
        decided += f" by {experiment['decided_by']} at {when(experiment['concluded_ms'])}"
        if experiment["decision_reason"]:
            decided += f": {experiment['decision_reason']}"
        rows.append(("decision", decided))
    for name, value in rows:
        table.add_row(name, escape(value))
    return table


def results_table(results: dict[str, Any]) -> Table:
    """Per metric and variant: units, value, lifts with intervals, p-values, verdicts."""
    sequential = results["method"] == "sequential"
    table = Table(
        "metric",
        "variant",
        "units",
        "value",
        "lift",
        "abs. lift",
        "p (always valid)" if sequential else "p",
        "result",
        title=f"{results['experiment']['id']}: results ({results['method']}, "
        f"alpha {results['alpha']:g}, {results['total_units']:,} units)",
        title_justify="left",
    )
    for metric in results["metrics"]:
        comparisons = {c["variant"]: c for c in metric["comparisons"]}
        label = (
            f"{metric['name']} ({metric['role']})"
            if metric["role"] != "secondary"
            else (metric["name"])
        )
        count = "{:,} runs" if metric["kind"] == "quantile" else "{:,}"
        for index, value in enumerate(metric["values"]):
            name = label if index == 0 else ""
            comparison = comparisons.get(value["variant"])
            if comparison is None:
                table.add_row(
                    name,
                    value["variant"],
                    count.format(value["units"]),
                    number(value["value"]),
                    "",
                    "",
                    "",
                    "control",
                )
                continue
            interval = "sequential_" if sequential else ""
            p = comparison["adjusted_always_valid_p_value" if sequential else "adjusted_p_value"]
            table.add_row(
                name,
                value["variant"],
                count.format(value["units"]),
                number(value["value"]),
                _interval(comparison[f"{interval}relative"], percent=True),
                _interval(comparison[f"{interval}absolute"], percent=False),
                p_value(p),
                _result(comparison),
            )
    return table


def _result(comparison: dict[str, Any]) -> Text:
    if comparison["status"] != "ok":
        return Text(comparison["reason"] or "not enough data", style="dim")
    guardrail = comparison.get("guardrail")
    if guardrail is not None and guardrail["verdict"] is not None:
        verdict = guardrail["verdict"]
        return Text(verdict.replace("_", "-"), style=_VERDICT_STYLE.get(verdict, ""))
    effect = comparison["effect"]
    if not comparison["significant"] or effect == "none":
        return Text("no significant difference", style="dim")
    return Text(f"significantly {effect}", style="green" if effect == "better" else "red")


def results_view(results: dict[str, Any]) -> RenderableType:
    """The results table, the sample-ratio check and the recommendation."""
    srm = results["srm"]
    units = ", ".join(f"{name} {count:,}" for name, count in results["units"].items())
    if srm["p_value"] is None:
        srm_line = Text(f"sample ratio: no units yet ({units})", style="dim")
    elif srm["flagged"]:
        srm_line = Text(
            f"sample ratio MISMATCH: p = {p_value(srm['p_value'])} ({units})", style="bold red"
        )
    else:
        srm_line = Text(f"sample ratio ok: p = {p_value(srm['p_value'])} ({units})")
    parts: list[RenderableType] = [results_table(results), srm_line]
    if results["excluded_units"]:
        parts.append(
            Text(
                f"{results['excluded_units']:,} unit(s) seen in several variants were left out",
                style="yellow",
            )
        )
    if results["message"]:
        parts.append(Text(results["message"], style="yellow"))
    recommendation = results["recommendation"]
    parts.append(
        Text(recommendation["message"], style=_ACTION_STYLE.get(recommendation["action"], "bold"))
    )
    return Group(*parts)


def plan_table(plan: dict[str, Any], names: list[str]) -> Table:
    """A sample-size plan: units per variant, total, days."""
    table = Table("variant", "units", title="Sample size", title_justify="left")
    for name, units in zip(names, plan["units_per_variant"], strict=True):
        table.add_row(name, f"{units:,}")
    table.add_row("total", f"{plan['total_units']:,}", style="bold")
    return table

"""Rich tables for metrics and traces."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.tree import Tree

_NONE = "-"


def _pct(value: float | None) -> str:
    return _NONE if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    if value is None:
        return _NONE
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{value:.0f}ms"


def _num(value: float | None, fmt: str = "{:.0f}") -> str:
    return _NONE if value is None else fmt.format(value)


def _usd(value: float | None) -> str:
    return _NONE if value is None else f"${value:.4f}"


def _group_label(group: dict[str, Any], bucket_ms: int | None) -> list[str]:
    labels = []
    for name, value in group.items():
        if name == "time" and value is not None:
            labels.append(datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M"))
        else:
            labels.append("(none)" if value is None else str(value))
    return labels


def metrics_table(document: dict[str, Any]) -> Table | Group:
    """The metrics document as tables, one row per group (per tool: one table)."""
    groups = document["group_by"]
    title = f"Metrics for {document['agent']}" if document.get("agent") else "Metrics"
    table = Table(title=f"{title}: tool calls", title_justify="left")
    for name in groups:
        table.add_column(name)
    if "tool" in groups:
        for header in (
            "calls",
            "error rate",
            "retryable",
            "non-retryable",
            "mean retries",
            "p50",
            "p95",
            "p99",
        ):
            table.add_column(header, justify="right")
        for row in document["groups"]:
            lat = row["latency_ms"]
            table.add_row(
                *_group_label(row["group"], document.get("bucket_ms")),
                str(row["tool_calls"]),
                _pct(row["tool_error_rate"]),
                str(row["tool_errors_retryable"]),
                str(row["tool_errors_non_retryable"]),
                _num(row["mean_retries"], "{:.2f}"),
                _ms(lat["p50"]),
                _ms(lat["p95"]),
                _ms(lat["p99"]),
            )
        return table
    quality = Table(title=f"{title}: quality and latency", title_justify="left")
    cost = Table(title=f"{title}: cost and tools", title_justify="left")
    for table_ in (quality, cost):
        for name in groups:
            table_.add_column(name)
    for header in ("runs", "success", "errors", "escalated", "p50", "p90", "p95", "p99"):
        quality.add_column(header, justify="right")
    for header in (
        "tokens/run",
        "cost/run",
        "total cost",
        "tool calls",
        "tool errors",
        "retryable",
    ):
        cost.add_column(header, justify="right")
    for row in document["groups"]:
        lat = row["latency_ms"]
        labels = _group_label(row["group"], document.get("bucket_ms"))
        quality.add_row(
            *labels,
            str(row["runs"]),
            _pct(row["task_success_rate"]),
            _pct(row["error_rate"]),
            _pct(row["escalation_rate"]),
            _ms(lat["p50"]),
            _ms(lat["p90"]),
            _ms(lat["p95"]),
            _ms(lat["p99"]),
        )
        cost.add_row(
            *labels,
            _num(row["mean_tokens"]),
            _usd(row["mean_cost_usd"]),
            _usd(row["total_cost_usd"]),
            str(row["tool_calls"]),
            _pct(row["tool_error_rate"]),
            _retryable_share(row),
        )
    return Group(quality, cost)


def _retryable_share(row: dict[str, Any]) -> str:
    retryable = row["tool_errors_retryable"]
    return f"{retryable}/{retryable + row['tool_errors_non_retryable']}"


def traces_table(items: list[dict[str, Any]]) -> Table:
    """Runs as a table, newest first."""
    table = Table(title="Runs", title_justify="left")
    for header in (
        "trace id",
        "started",
        "agent",
        "version",
        "variant",
        "outcome",
        "duration",
        "tokens",
        "cost",
        "tools",
    ):
        table.add_column(header)
    for run in items:
        started = datetime.fromtimestamp(run["started_ms"] / 1000, UTC).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
        outcome = run["outcome"] or _NONE
        style = {"success": "green", "failure": "red", "escalated": "yellow"}.get(outcome, "")
        table.add_row(
            run["trace_id"],
            started,
            run["agent"] or _NONE,
            run["version"] or _NONE,
            run["variant"] or _NONE,
            f"[{style}]{outcome}[/]" if style else outcome,
            _ms(run["duration_ms"]),
            str(run["input_tokens"] + run["output_tokens"]),
            _usd(run["cost_usd"]),
            f"{run['tool_calls'] - run['tool_errors']}/{run['tool_calls']}",
        )
    return table


def trace_tree(document: dict[str, Any]) -> Tree:
    """A trace's spans as a tree with durations, status and key attributes."""
    tree = Tree(f"trace {document['trace_id']} ({document['span_count']} spans)")
    # The API lists spans depth-first with their depth: the last node seen at each
    # depth is the parent of the next span one level deeper.
    parents: list[Tree] = [tree]
    for span in document["spans"]:
        depth = min(span["depth"], len(parents) - 1)
        del parents[depth + 1 :]
        mark = "[red]x[/]" if span["status"] == "error" else "[green]ok[/]"
        label = f"{mark} {span['name']} [dim]{span['kind']} · {_ms(span['duration_ms'])}[/]"
        node = parents[depth].add(label)
        for key, value in list(span["attributes"].items())[:12]:
            text = str(value)
            node.add(f"[dim]{key}[/] = {text[:117] + '...' if len(text) > 120 else text}")
        parents.append(node)
    return tree

"""Run metrics per agent, grouped by version, variant, experiment, tool or time."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from tuneloop.analysis.metrics import GROUP_BY_FIELDS, GroupBy, parse_duration_ms
from tuneloop.errors import InvalidInputError
from tuneloop.server.auth import AdminPrincipal
from tuneloop.server.params import run_filter
from tuneloop.store.rollups import HOUR_MS

router = APIRouter(prefix="/api/v1", tags=["metrics"])


def _group_by(values: list[str]) -> tuple[GroupBy, ...]:
    names: list[GroupBy] = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if not name:
                continue
            if name not in GROUP_BY_FIELDS:
                raise InvalidInputError(
                    f"cannot group by {name!r}; choose from {', '.join(GROUP_BY_FIELDS)}"
                )
            if name not in names:
                names.append(name)
    return tuple(names)


@router.get("/metrics")
def get_metrics(
    request: Request,
    principal: AdminPrincipal,
    agent: str | None = None,
    group_by: Annotated[
        list[str] | None, Query(description="version, variant, experiment, tool, time")
    ] = None,
    bucket: str = "1h",
    version: str | None = None,
    variant: str | None = None,
    experiment: str | None = None,
    since: str | None = None,
    until: str | None = None,
    attr: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    """Runs, success / error / escalation rates, latency percentiles, tokens, cost, tools.

    Without ``agent`` every agent is reported, grouped by agent. Grouping by ``tool``
    reports tool-call figures per tool. A ``since`` / ``until`` given as a span back
    from now (``14d``) starts on the hour (``14d`` at 15:42 means from 15:00, 14 days
    ago), so it is read from the rollups alone; epoch or ISO 8601 times are exact.
    The window used is in ``since_ms`` / ``until_ms`` (null: unbounded).
    """
    groups = _group_by(group_by or [])
    if agent is None and "agent" not in groups:
        groups = ("agent", *groups)
    bucket_ms = parse_duration_ms(bucket)
    where = run_filter(
        now_ms=request.app.state.clock.now_ms(),
        agent=agent,
        version=version,
        variant=variant,
        experiment=experiment,
        since=since,
        until=until,
        attr=attr,
        align_ms=HOUR_MS,
    )
    queries = request.app.state.store.queries
    rows: list[dict[str, Any]] = []
    if "tool" in groups:
        tool_results = queries.tool_aggregates(
            principal.project_id, where, groups, bucket_ms=bucket_ms
        )
        for key, aggregate in sorted(tool_results.items(), key=lambda item: _sort_key(item[0])):
            rows.append({"group": dict(zip(groups, key, strict=True)), **aggregate.summary()})
    else:
        run_results = queries.run_aggregates(
            principal.project_id, where, groups, bucket_ms=bucket_ms
        )
        for key, aggregate in sorted(run_results.items(), key=lambda item: _sort_key(item[0])):
            rows.append({"group": dict(zip(groups, key, strict=True)), **aggregate.summary()})
    return {
        "agent": agent,
        "group_by": list(groups),
        "bucket_ms": bucket_ms if "time" in groups else None,
        "since_ms": where.since_ms,
        "until_ms": where.until_ms,
        "latency_relative_accuracy": 0.01,
        "groups": rows,
    }


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple(
        (part is None, str(part) if not isinstance(part, int) else f"{part:020d}") for part in key
    )


@router.get("/usage")
def get_usage(request: Request, principal: AdminPrincipal) -> dict[str, int]:
    """Stored spans, runs and tool calls of the caller's project."""
    usage: dict[str, int] = request.app.state.store.queries.usage(principal.project_id)
    return usage


@router.get("/agents")
def list_agents(request: Request, principal: AdminPrincipal) -> dict[str, list[str]]:
    """Agents with runs in the caller's project."""
    return {"agents": request.app.state.store.queries.agents(principal.project_id)}

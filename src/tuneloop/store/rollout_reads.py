"""Per-version figures for a time window, as the rollout policy and alerts read them.

`version_figures` sums one version's runs per unit (``unit_id``; a run without one is
its own unit) in one query, and sums those per-unit sums, their squares and their
cross-products with the unit's run count in the same statement, so a window of any
size comes back as a handful of numbers: exactly the `RatioSummary` fields. The p95
latency comes from the runs' latency buckets (a histogram within 1 % of the values).

`window_aggregate` is the agent-wide aggregate alerts evaluate (every version), and
`guardrail_trigger_rate` counts runs whose guardrail span blocked, redacted or asked
for approval.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tuneloop import semconv as sc
from tuneloop.analysis.metrics import RunAggregate
from tuneloop.analysis.quantiles import bucket_value
from tuneloop.rollouts.metrics import GuardMetric, VersionFigures
from tuneloop.stats import QuantileSummary, RatioSummary, Summary
from tuneloop.store.aggregates import run_aggregates
from tuneloop.store.filters import RunFilter
from tuneloop.store.ingest import decode_payload
from tuneloop.store.schema import runs, spans
from tuneloop.telemetry.model import STATUS_CODES

__all__ = ["guardrail_trigger_rate", "version_figures", "window_aggregate"]

# Numerators summed per unit; every one is divided by the unit's runs except tool errors.
_NUMERATORS: dict[GuardMetric, str] = {
    "error_rate": "errors",
    "task_success_rate": "successes",
    "escalation_rate": "escalations",
    "latency_mean_ms": "duration",
    "cost_per_run": "cost",
}
_TRIGGERED = (sc.GUARDRAIL_VERDICT_BLOCK, sc.GUARDRAIL_VERDICT_REDACT,
              sc.GUARDRAIL_VERDICT_REQUIRE_APPROVAL)  # fmt: skip


def _window(project_id: str, agent: str, version: str, since_ms: int, until_ms: int) -> list[Any]:
    return [
        runs.c.project_id == project_id,
        runs.c.has_root.is_(True),
        runs.c.agent == agent,
        runs.c.config_version == version,
        runs.c.started_ms >= since_ms,
        runs.c.started_ms < until_ms,
    ]


def _per_unit(where: list[Any]) -> Any:
    def count_of(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    has_llm = runs.c.llm_calls > 0
    is_error = sa.or_(runs.c.status == STATUS_CODES["error"], runs.c.error_type.is_not(None))
    return (
        sa.select(
            sa.func.count().label("runs"),
            count_of(is_error).label("errors"),
            count_of(runs.c.outcome == "success").label("successes"),
            count_of(runs.c.outcome == "escalated").label("escalations"),
            sa.func.sum(sa.func.coalesce(runs.c.duration_ms, 0.0)).label("duration"),
            sa.func.sum(sa.case((has_llm, runs.c.cost_usd), else_=runs.c.root_cost_usd)).label(
                "cost"
            ),
            sa.func.sum(runs.c.tool_calls).label("tool_calls"),
            sa.func.sum(runs.c.tool_errors).label("tool_errors"),
        )
        .where(*where)
        .group_by(sa.func.coalesce(runs.c.unit_id, runs.c.trace_id))
        .subquery("per_unit")
    )


def _sums(unit: Any) -> list[Any]:
    """n, then for runs and each numerator: sum, sum of squares, cross with the denominator."""
    columns: list[Any] = [sa.func.count()]
    n, d = unit.c.runs, unit.c.runs
    columns += [sa.func.sum(n), sa.func.sum(n * n)]
    for name in _NUMERATORS.values():
        x = unit.c[name]
        columns += [sa.func.sum(x), sa.func.sum(x * x), sa.func.sum(x * d)]
    x, y = unit.c.tool_errors, unit.c.tool_calls
    columns += [sa.func.sum(x), sa.func.sum(x * x), sa.func.sum(y), sa.func.sum(y * y),
                sa.func.sum(x * y)]  # fmt: skip
    return columns


def version_figures(
    engine: sa.Engine,
    project_id: str,
    agent: str,
    version: str,
    *,
    since_ms: int,
    until_ms: int,
) -> VersionFigures:
    """One version's figures over ``[since_ms, until_ms)``: units, runs, a summary per metric."""
    where = _window(project_id, agent, version, since_ms, until_ms)
    unit = _per_unit(where)
    histogram = (
        sa.select(runs.c.latency_bucket, sa.func.count())
        .where(*where, runs.c.latency_bucket.is_not(None))
        .group_by(runs.c.latency_bucket)
    )
    with engine.connect() as conn:
        row = conn.execute(sa.select(*_sums(unit))).one()
        buckets = conn.execute(histogram).all()
    values = [float(v or 0) for v in row]  # PostgreSQL sums integers as NUMERIC
    units = int(values[0])
    if units == 0:
        return VersionFigures(version, since_ms, until_ms)
    run_count, run_squares = values[1], values[2]
    summaries: dict[GuardMetric, Summary] = {}
    at = 3
    for metric in _NUMERATORS:
        total, squares, cross = values[at : at + 3]
        summaries[metric] = RatioSummary(units, total, squares, run_count, run_squares, cross)
        at += 3
    errors, error_squares, calls, call_squares, cross = values[at : at + 5]
    if calls > 0:
        summaries["tool_error_rate"] = RatioSummary(
            units, errors, error_squares, calls, call_squares, cross
        )
    counts: dict[float, int] = {}
    for bucket, count in buckets:
        value = bucket_value(int(bucket))
        counts[value] = counts.get(value, 0) + int(count)
    if counts:
        summaries["latency_p95_ms"] = QuantileSummary.from_counts(counts)
    return VersionFigures(version, since_ms, until_ms, units, int(run_count), summaries)


def window_aggregate(
    engine: sa.Engine, project_id: str, agent: str, *, since_ms: int, until_ms: int
) -> RunAggregate:
    """All of an agent's runs in ``[since_ms, until_ms)`` as one aggregate (every version)."""
    where = RunFilter(agent=agent, since_ms=since_ms, until_ms=until_ms)
    found = run_aggregates(engine, project_id, where, (), bucket_ms=3_600_000)
    return found.get((), RunAggregate())


def guardrail_trigger_rate(
    engine: sa.Engine, project_id: str, agent: str, *, since_ms: int, until_ms: int
) -> tuple[float | None, int]:
    """Share of the agent's runs in the window whose guardrail did not simply allow.

    Returns the rate (None without runs) and the number of runs.
    """
    window = sa.select(runs.c.trace_id).where(
        runs.c.project_id == project_id,
        runs.c.has_root.is_(True),
        runs.c.agent == agent,
        runs.c.started_ms >= since_ms,
        runs.c.started_ms < until_ms,
    )
    guard_spans = sa.select(spans.c.trace_id, spans.c.payload).where(
        spans.c.project_id == project_id,
        spans.c.kind == sc.SPAN_KIND_GUARDRAIL,
        spans.c.trace_id.in_(window.scalar_subquery()),
    )
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(window.subquery())).scalar_one()
        triggered = {
            trace_id
            for trace_id, payload in conn.execute(guard_spans)
            if decode_payload(payload).get("attributes", {}).get(sc.TL_GUARDRAIL_VERDICT)
            in _TRIGGERED
        }
    if not total:
        return None, 0
    return len(triggered) / int(total), int(total)

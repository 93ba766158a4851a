"""Per-unit sums of run facts by variant or version, for experiments, rollouts and dashboards.

``read_units`` runs one ``GROUP BY group, unit`` over the ``runs`` facts of an agent in
a time window (the ``ix_runs_agent_time`` index), one more for feedback scores joined
by trace, and one ``GROUP BY group, hour, latency bucket`` for latency quantiles; the
result is a `UnitTable` of numpy arrays. ``read_summaries`` goes one step further and
returns each group's sufficient statistics per metric, ready for `tuneloop.stats`::

    from tuneloop.store.experiment_reads import read_summaries
    found = read_summaries(store.engine, "acme", "support", by="version",
                           groups=[stable_hash, candidate_hash], since_ms=t0, until_ms=t1,
                           metrics=["task_success", "error_rate", "latency_p95"])
    check_guardrail(spec, found.summary(stable_hash, "error_rate"),
                    found.summary(candidate_hash, "error_rate"), settings=...)

A unit is a user (``unit_id``) or a session (``session_id``, else ``unit_id``, as the
SDK assigns session allocations); its first exposure is the start of its first run in
the window. A unit seen in several groups is left out (and counted), since its runs
cannot be attributed to one; latency quantiles, which are over runs, still count its
runs (leaving them out would need a per-run read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa

from tuneloop.config.state import UnitType
from tuneloop.errors import InvalidInputError
from tuneloop.experiments.metrics import UNIT_COLUMNS, feedback_columns, metric_def
from tuneloop.experiments.units import HOUR_MS, Floats, LatencyCounts, UnitTable, summaries
from tuneloop.stats import Summary
from tuneloop.store.schema import feedback, runs
from tuneloop.telemetry.model import STATUS_CODES

GroupBy = Literal["variant", "version"]
_R = runs.c
_F = feedback.c


def _unit(unit_type: UnitType) -> Any:
    return _R.unit_id if unit_type == "user" else sa.func.coalesce(_R.session_id, _R.unit_id)


def _group(by: GroupBy) -> Any:
    return _R.variant if by == "variant" else _R.config_version


def _conditions(
    project_id: str,
    agent: str,
    *,
    by: GroupBy,
    groups: Sequence[str],
    experiment: str | None,
    since_ms: int,
    until_ms: int,
) -> list[Any]:
    conds = [
        _R.project_id == project_id,
        _R.agent == agent,
        _R.started_ms >= since_ms,
        _R.started_ms < until_ms,
        _R.has_root.is_(True),
        _group(by).in_(list(groups)),
    ]
    if experiment is not None:
        conds.append(_R.experiment == experiment)
    return conds


def _flag(condition: Any) -> Any:
    return sa.case((condition, 1), else_=0)


def _float_sum(value: Any) -> Any:
    # PostgreSQL sums integers as NUMERIC; floats come back as floats on both engines.
    return sa.cast(sa.func.sum(value), sa.Float)


def _sums() -> list[Any]:
    llm = _R.llm_calls > 0
    error = sa.or_(_R.status == STATUS_CODES["error"], _R.error_type.is_not(None))
    tokens = sa.case(
        (llm, _R.input_tokens + _R.output_tokens),
        else_=_R.root_input_tokens + _R.root_output_tokens,
    )
    cost = sa.case((llm, _R.cost_usd), else_=_R.root_cost_usd)
    return [
        sa.cast(sa.func.count(), sa.Float),
        _float_sum(_flag(_R.outcome == "success")),
        _float_sum(_flag(error)),
        _float_sum(_flag(_R.outcome == "escalated")),
        sa.cast(sa.func.count(_R.duration_ms), sa.Float),
        sa.func.coalesce(_float_sum(_R.duration_ms), 0.0),
        _float_sum(cost),
        _float_sum(tokens),
        _float_sum(_R.tool_calls),
        _float_sum(_R.tool_errors),
    ]


def read_units(
    engine: sa.Engine,
    project_id: str,
    agent: str,
    *,
    by: GroupBy,
    groups: Sequence[str],
    since_ms: int,
    until_ms: int,
    experiment: str | None = None,
    unit_type: UnitType = "user",
    feedback_names: Sequence[str] = (),
    latency: bool = True,
) -> UnitTable:
    """One row of sums per unit of ``agent`` in ``[since_ms, until_ms)``, per group.

    Args:
        engine: the store's engine.
        project_id: the project.
        agent: the agent.
        by: group runs by ``variant`` (an experiment's) or ``version`` (config hash).
        groups: the variants or versions, in the order results should have them.
        since_ms: the window's start (inclusive).
        until_ms: the window's end (exclusive).
        experiment: only runs tagged with this experiment (``feature_flag.key``).
        unit_type: ``user`` or ``session``.
        feedback_names: feedback scores to sum per unit (``feedback:<name>`` metrics).
        latency: also read run latency histograms (quantile metrics need them).
    """
    if len(set(groups)) != len(groups) or not groups:
        raise InvalidInputError(f"groups must be distinct and non-empty, got {list(groups)}")
    conds = _conditions(
        project_id,
        agent,
        by=by,
        groups=groups,
        experiment=experiment,
        since_ms=since_ms,
        until_ms=until_ms,
    )
    unit, group = _unit(unit_type), _group(by)
    # Runs without a unit come back as one row per group whose unit is NULL.
    per_unit = (
        sa.select(group.label("g"), unit.label("u"), sa.func.min(_R.started_ms), *_sums())
        .where(*conds)
        .group_by(group, unit)
    )
    joined = sa.and_(_F.project_id == _R.project_id, _F.trace_id == _R.trace_id)
    feedback_query = (
        sa.select(group, unit, _F.name, _float_sum(_F.value), sa.func.count())
        .select_from(runs.join(feedback, joined))
        .where(*conds, unit.is_not(None), _F.name.in_(list(feedback_names)))
        .group_by(group, unit, _F.name)
    )
    # Literal, not bound: PostgreSQL matches GROUP BY expressions by their text.
    hour_ms = sa.literal_column(str(HOUR_MS), sa.BigInteger)
    hour = (_R.started_ms // hour_ms) * hour_ms
    latency_query = (
        sa.select(group, hour, _R.latency_bucket, sa.func.count())
        .where(*conds, unit.is_not(None), _R.latency_bucket.is_not(None))
        .group_by(group, hour, _R.latency_bucket)
    )
    with engine.connect() as conn:
        rows = conn.execute(per_unit).all()
        scores = conn.execute(feedback_query).all() if feedback_names else []
        latency_rows = conn.execute(latency_query).all() if latency else []
    without_unit = sum(int(row[3]) for row in rows if row[1] is None)
    rows = [row for row in rows if row[1] is not None]
    return _table(groups, rows, scores, latency_rows, feedback_names, without_unit)


def _table(
    groups: Sequence[str],
    rows: Sequence[Any],
    scores: Sequence[Any],
    latency_rows: Sequence[Any],
    feedback_names: Sequence[str],
    without_unit: int,
) -> UnitTable:
    index = {name: i for i, name in enumerate(groups)}
    seen: dict[str, int] = {}
    for row in rows:
        seen[row[1]] = seen.get(row[1], 0) + 1
    shared = {unit for unit, count in seen.items() if count > 1}
    kept = [row for row in rows if row[1] not in shared]
    kept.sort(key=lambda row: (index[row[0]], row[1]))
    size = len(kept)
    values = np.array([row[3:] for row in kept], dtype=np.float64).reshape(size, len(UNIT_COLUMNS))
    columns: dict[str, Floats] = {
        name: np.ascontiguousarray(values[:, i]) for i, name in enumerate(UNIT_COLUMNS)
    }
    position = {(row[0], row[1]): i for i, row in enumerate(kept)}
    for name in feedback_names:
        total, count = feedback_columns(name)
        columns[total] = np.zeros(size, dtype=np.float64)
        columns[count] = np.zeros(size, dtype=np.float64)
    for group, unit, name, total_value, count_value in scores:
        at = position.get((group, unit))
        if at is not None:
            total, count = feedback_columns(name)
            columns[total][at] += float(total_value)
            columns[count][at] += float(count_value)
    latency = np.array(
        [(index[r[0]], int(r[1]), int(r[2]), int(r[3])) for r in latency_rows], dtype=np.int64
    ).reshape(-1, 4)
    return UnitTable(
        groups=tuple(groups),
        group=np.array([index[row[0]] for row in kept], dtype=np.int64),
        units=tuple(str(row[1]) for row in kept),
        first_ms=np.array([int(row[2]) for row in kept], dtype=np.int64),
        columns=columns,
        latency=LatencyCounts(*(np.ascontiguousarray(latency[:, i]) for i in range(4))),
        excluded_units=len(shared),
        runs_without_unit=without_unit,
    )


@dataclass(frozen=True, slots=True)
class GroupSummaries:
    """Each group's units and, per metric, its sufficient statistics."""

    groups: tuple[str, ...]
    units: tuple[int, ...]
    metrics: dict[str, tuple[Summary, ...]]

    def summary(self, group: str, metric: str) -> Summary:
        """The summary of ``metric`` for ``group``."""
        return self.metrics[metric][self.groups.index(group)]


def read_summaries(
    engine: sa.Engine,
    project_id: str,
    agent: str,
    *,
    by: GroupBy,
    groups: Sequence[str],
    since_ms: int,
    until_ms: int,
    metrics: Sequence[str],
    experiment: str | None = None,
    unit_type: UnitType = "user",
) -> GroupSummaries:
    """Per group, the sufficient statistics of each metric (names from the catalog).

    Raises:
        ConfigError: an unknown metric, naming the known ones.
    """
    defs = [metric_def(name) for name in metrics]
    table = read_units(
        engine,
        project_id,
        agent,
        by=by,
        groups=groups,
        since_ms=since_ms,
        until_ms=until_ms,
        experiment=experiment,
        unit_type=unit_type,
        feedback_names=sorted({d.feedback for d in defs if d.feedback is not None}),
        latency=any(d.kind == "quantile" for d in defs),
    )
    return GroupSummaries(table.groups, table.counts(), {d.name: summaries(table, d) for d in defs})

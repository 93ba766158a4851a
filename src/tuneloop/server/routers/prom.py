"""``GET /metrics``: Prometheus text format, built from the hourly rollups at scrape time.

A custom collector, registered in a registry made for the request (no global registry,
no module-level state), reads the key's project: runs by outcome, errors, a latency
histogram, tokens, cost and tool calls/errors per agent, version (its label when
known) and variant, as counters summed over every stored hour (a few rows per agent,
version and hour, whatever the traffic); and tuneloop's own health: ingest rate and
queue depth, controller lag and ticks, active rollouts, firing alerts and webhook
deliveries. Prometheus scrapes it with an admin key
(``authorization: {credentials: KEY}`` in its scrape config).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from tuneloop.analysis.quantiles import bucket_value
from tuneloop.server.auth import AdminPrincipal
from tuneloop.store import Store
from tuneloop.store.schema import config_versions, run_rollups, runs, tool_rollups

router = APIRouter(tags=["metrics"])
# Upper bounds of the latency histogram, in seconds (+Inf is added).
LATENCY_BOUNDS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
INGEST_WINDOW_MS = 300_000
IDENTITY = ["agent", "version", "variant"]


class TuneloopCollector:
    """Collects one project's figures from the store when the registry asks."""

    def __init__(
        self, store: Store, project_id: str, *, now_ms: int, controller: Any = None
    ) -> None:
        self._store = store
        self._project = project_id
        self._now_ms = now_ms
        self._controller = controller

    def collect(self) -> Iterator[Metric]:
        """Every family, read fresh."""
        with self._store.engine.connect() as conn:
            labels = self._labels(conn)
            yield from self._runs(conn, labels)
            yield from self._tools(conn, labels)
            yield from self._ingest(conn)
        yield from self._health()

    def _labels(self, conn: sa.Connection) -> dict[tuple[str, str], str]:
        v = config_versions.c
        query = sa.select(v.agent, v.version_hash, v.label).where(v.project_id == self._project)
        return {(agent, version): label for agent, version, label in conn.execute(query)}

    def _identity(self, labels: dict[tuple[str, str], str], agent: str, version: str) -> str:
        return labels.get((agent, version), version)

    def _runs(self, conn: sa.Connection, labels: dict[tuple[str, str], str]) -> Iterator[Metric]:
        t = run_rollups.c
        names = ("runs", "successes", "failures", "escalations", "errors", "input_tokens",
                 "output_tokens", "cost_usd")  # fmt: skip
        query = (
            sa.select(
                t.agent,
                t.config_version,
                t.variant,
                t.latency_bucket,
                *(sa.func.sum(t[name]) for name in names),
            )
            .where(t.project_id == self._project)
            .group_by(t.agent, t.config_version, t.variant, t.latency_bucket)
        )
        totals: dict[tuple[str, str, str], list[float]] = {}
        histograms: dict[tuple[str, str, str], dict[int, int]] = {}
        for agent, version, variant, bucket, *sums in conn.execute(query):
            key = (agent, self._identity(labels, agent, version), variant)
            row = totals.setdefault(key, [0.0] * len(names))
            for i, value in enumerate(sums):
                row[i] += float(value or 0)
            counts = histograms.setdefault(key, {})
            counts[int(bucket)] = counts.get(int(bucket), 0) + int(sums[0] or 0)
        outcomes = CounterMetricFamily(
            "tuneloop_runs", "Runs by outcome (other: no outcome reported)",
            labels=[*IDENTITY, "outcome"],
        )  # fmt: skip
        errors = CounterMetricFamily(
            "tuneloop_run_errors", "Runs that ended in error", labels=IDENTITY
        )
        tokens = CounterMetricFamily(
            "tuneloop_tokens", "Model tokens used", labels=[*IDENTITY, "direction"]
        )
        cost = CounterMetricFamily("tuneloop_cost_usd", "Model cost in US dollars", labels=IDENTITY)
        latency = HistogramMetricFamily(
            "tuneloop_run_duration_seconds", "Run latency (bucketed within 1 %)", labels=IDENTITY
        )
        for key, (n, ok, failed, escalated, errs, tin, tout, usd) in sorted(totals.items()):
            for outcome, count in (("success", ok), ("failure", failed),
                                   ("escalated", escalated),
                                   ("other", n - ok - failed - escalated)):  # fmt: skip
                outcomes.add_metric([*key, outcome], count)
            errors.add_metric(list(key), errs)
            tokens.add_metric([*key, "input"], tin)
            tokens.add_metric([*key, "output"], tout)
            cost.add_metric(list(key), usd)
            buckets, total = _histogram(histograms[key])
            latency.add_metric(list(key), buckets=buckets, sum_value=total)
        yield from (outcomes, errors, latency, tokens, cost)

    def _tools(self, conn: sa.Connection, labels: dict[tuple[str, str], str]) -> Iterator[Metric]:
        t = tool_rollups.c
        query = (
            sa.select(
                t.agent,
                t.config_version,
                t.variant,
                t.tool,
                sa.func.sum(t.calls),
                sa.func.sum(t.errors),
            )
            .where(t.project_id == self._project)
            .group_by(t.agent, t.config_version, t.variant, t.tool)
            .order_by(t.agent, t.config_version, t.variant, t.tool)
        )
        calls = CounterMetricFamily("tuneloop_tool_calls", "Tool calls", labels=[*IDENTITY, "tool"])
        errors = CounterMetricFamily(
            "tuneloop_tool_errors", "Tool calls that failed", labels=[*IDENTITY, "tool"]
        )
        for agent, version, variant, tool, n, errs in conn.execute(query):
            key = [agent, self._identity(labels, agent, version), variant, tool]
            calls.add_metric(key, float(n or 0))
            errors.add_metric(key, float(errs or 0))
        yield from (calls, errors)

    def _ingest(self, conn: sa.Connection) -> Iterator[Metric]:
        recent = sa.select(sa.func.count()).where(
            runs.c.project_id == self._project,
            runs.c.started_ms >= self._now_ms - INGEST_WINDOW_MS,
            runs.c.started_ms <= self._now_ms,
        )
        rate = GaugeMetricFamily(
            "tuneloop_ingest_runs_per_second",
            "Runs started in the last 5 minutes, per second",
            value=int(conn.execute(recent).scalar_one()) / (INGEST_WINDOW_MS / 1000),
        )
        depth = GaugeMetricFamily(
            "tuneloop_ingest_queue_depth", "Ingest requests waiting for the writer",
            value=self._store.writer.pending,
        )  # fmt: skip
        yield from (rate, depth)

    def _health(self) -> Iterator[Metric]:
        controller = self._controller
        if controller is not None:
            lag = controller.lag_s()
            if lag is not None:
                yield GaugeMetricFamily(
                    "tuneloop_controller_lag_seconds", "Seconds since the controller's last tick",
                    value=lag,
                )  # fmt: skip
            yield CounterMetricFamily(
                "tuneloop_controller_ticks", "Controller ticks in this process",
                value=controller.ticks,
            )  # fmt: skip
        active = GaugeMetricFamily(
            "tuneloop_rollout_weight_percent", "Candidate share of units of active rollouts",
            labels=["agent", "rollout"],
        )  # fmt: skip
        for record in self._store.rollouts.find(self._project, active_only=True):
            active.add_metric([record.agent, record.rollout_id], record.weight() * 100)
        firing = GaugeMetricFamily(
            "tuneloop_alerts_firing", "Alert rules firing now (1)", labels=["agent", "rule"]
        )
        for rule in self._store.alerts.firing(self._project):
            firing.add_metric([rule.agent, rule.spec.name], 1)
        deliveries = GaugeMetricFamily(
            "tuneloop_webhook_deliveries", "Webhook deliveries by status", labels=["status"]
        )
        for (project, status), count in sorted(self._store.alerts.delivery_counts().items()):
            if project == self._project:
                deliveries.add_metric([status], count)
        yield from (active, firing, deliveries)


def _histogram(counts: dict[int, int]) -> tuple[list[tuple[str, float]], float]:
    """Cumulative Prometheus buckets and the sum, from latency-bucket counts (ms)."""
    cumulative = [0] * len(LATENCY_BOUNDS_S)
    total_s = 0.0
    n = 0
    for bucket, count in counts.items():
        seconds = bucket_value(bucket) / 1000
        total_s += seconds * count
        n += count
        for i, bound in enumerate(LATENCY_BOUNDS_S):
            if seconds <= bound:
                cumulative[i] += count
    buckets = [
        (f"{bound:g}", float(c)) for bound, c in zip(LATENCY_BOUNDS_S, cumulative, strict=True)
    ]
    return [*buckets, ("+Inf", float(n))], total_s


@router.get("/metrics", response_class=Response)
def metrics(request: Request, principal: AdminPrincipal) -> Response:
    """Prometheus text exposition of the key's project and of this server's health."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        TuneloopCollector(
            request.app.state.store,
            principal.project_id,
            now_ms=request.app.state.clock.now_ms(),
            controller=getattr(request.app.state, "controller", None),
        )
    )
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

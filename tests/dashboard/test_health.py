"""Agent health from aggregates: windows on bucket boundaries, series with gaps, status."""

from __future__ import annotations

from collections import Counter

import pytest

from tuneloop.analysis.metrics import RunAggregate
from tuneloop.analysis.quantiles import bucket_of
from tuneloop.errors import InvalidInputError
from tuneloop.server.dashboard.health import (
    HOUR_MS,
    WINDOWS,
    Thresholds,
    health_of,
    window_named,
)

NOW = 1_767_225_600_000 + 5 * HOUR_MS + 1234  # 05:00:01.234 on a day boundary's day


def aggregate(runs: int, successes: int, *, escalations: int = 0, errors: int = 0,
              cost: float = 0.0, latency_ms: float = 100.0) -> RunAggregate:  # fmt: skip
    return RunAggregate(
        runs=runs,
        successes=successes,
        escalations=escalations,
        errors=errors,
        failures=runs - successes - escalations,
        cost_usd=cost,
        latency=Counter({bucket_of(latency_ms): runs}),
    )


def test_windows_start_on_a_bucket_boundary_and_end_with_the_current_bucket() -> None:
    day = WINDOWS["24h"]
    starts = day.starts(NOW)
    assert len(starts) == 24
    assert all(s % HOUR_MS == 0 for s in starts)
    assert starts[-1] <= NOW < starts[-1] + HOUR_MS
    week = WINDOWS["7d"]
    assert week.since_ms(NOW) % (24 * HOUR_MS) == 0
    assert week.starts(NOW)[-1] <= NOW < week.starts(NOW)[-1] + 24 * HOUR_MS
    assert (day.bucket_name, week.bucket_name) == ("hour", "day")
    month = WINDOWS["30d"].starts(NOW)
    assert len(month) == 30 and month[-1] == 1_767_225_600_000


def test_window_names() -> None:
    assert window_named(None).name == "24h"
    assert window_named("7d").bucket_ms == 24 * HOUR_MS
    with pytest.raises(InvalidInputError, match="choose one of 24h, 7d, 30d"):
        window_named("1y")


def test_health_adds_up_the_buckets_and_leaves_gaps_where_nothing_ran() -> None:
    starts = WINDOWS["24h"].starts(NOW)
    buckets = {
        starts[0]: aggregate(10, 9, cost=0.5, latency_ms=200),
        starts[2]: aggregate(30, 24, escalations=3, errors=1, cost=1.5, latency_ms=800),
    }
    health = health_of("support", buckets, starts, thresholds=Thresholds())
    assert health.runs == 40
    assert health.summary["task_success_rate"] == pytest.approx(33 / 40)
    assert health.summary["mean_cost_usd"] == pytest.approx(2.0 / 40)
    assert health.series["runs"][:4] == [10.0, 0.0, 30.0, 0.0]
    assert health.series["success"][:4] == [pytest.approx(0.9), None, pytest.approx(0.8), None]
    assert health.series["escalation"][2] == pytest.approx(0.1)
    assert health.series["cost"][0] == pytest.approx(0.05)
    p95 = health.series["p95"]
    assert p95[0] == pytest.approx(200, rel=0.02) and p95[2] == pytest.approx(800, rel=0.02)
    assert health.summary["latency_ms"]["p95"] == pytest.approx(800, rel=0.02)
    assert len(health.series["errors"]) == 24


@pytest.mark.parametrize(
    ("agg", "status"),
    [
        (aggregate(100, 95), "good"),
        (aggregate(100, 85), "warn"),  # completion under 90 %
        (aggregate(100, 70), "bad"),  # completion under 80 %
        (aggregate(100, 95, errors=3), "warn"),  # errors over 2 %
        (aggregate(100, 95, errors=6), "bad"),
        (aggregate(100, 85, escalations=12), "warn"),
        (aggregate(100, 75, escalations=25), "bad"),
        (RunAggregate(), "idle"),
    ],
)
def test_the_status_is_the_worst_any_rate_calls_for(agg: RunAggregate, status: str) -> None:
    assert Thresholds().status(agg.summary()) == status


def test_an_agent_without_runs_is_idle_with_empty_series() -> None:
    starts = WINDOWS["24h"].starts(NOW)
    health = health_of("quiet", {}, starts, thresholds=Thresholds())
    assert (health.status, health.runs) == ("idle", 0)
    assert set(health.series["success"]) == {None}
    assert set(health.series["runs"]) == {0.0}

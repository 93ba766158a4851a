"""``GET /metrics`` scraped and parsed as Prometheus does (prometheus_client.parser)."""

from __future__ import annotations

import secrets
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tuneloop.store.ingest import write_spans
from tuneloop.telemetry.model import NormalizedSpan, ToolFact

from .conftest import Served
from .traffic import AGENT, MINUTE, PROJECT, Behaviour, Traffic, _root, push_versions


def scrape(served: Served, key: str | None = None) -> Any:
    with served.client(key) as client:
        return client.get("/metrics")


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name].append((sample.labels, sample.value))
    return found


def tool_runs(version: str, started_ms: int, *, count: int, failing: int) -> list[NormalizedSpan]:
    """``count`` runs with one tool call each, ``failing`` of them failed calls."""
    spans = []
    for i in range(count):
        root = _root(
            AGENT,
            SimpleNamespace(version=version, key=None, variant=None),
            f"u{i}",
            started_ms,
            50.0,
            False,
            "success",
            0.0,
        )
        trace_id = root.trace_id
        spans.append(root)
        status = "error" if i < failing else "success"
        fact = ToolFact(
            "lookup_order",
            status,
            "Timeout" if i < failing else None,  # type: ignore[arg-type]
            i < failing,
            12.0,
            0,
            started_ms,
        )
        start_ns = started_ms * 1_000_000
        spans.append(
            NormalizedSpan(
                trace_id,
                secrets.token_hex(8),
                None,
                "execute_tool lookup_order",
                "tool",
                start_ns,
                start_ns + 12_000_000,
                "error" if i < failing else "ok",
                "",
                {},
                tool=fact,
            )
        )
    return spans


def test_metrics_parse_and_match_what_was_ingested(served: Served) -> None:
    store, clock = served.store, served.clock
    v1, _ = push_versions(store)
    traffic = Traffic(store, clock, {v1.hash: Behaviour(error_rate=0.1, latency_ms=700)}, seed=4)
    traffic.send(300, over_ms=5 * MINUTE)
    with store.engine.begin() as conn:
        write_spans(conn, PROJECT, tool_runs(v1.hash, clock.now_ms() - 1, count=20, failing=5))
    served.controller.tick()
    response = scrape(served)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    found = samples(response.text)
    identity = {"agent": "support", "version": "1.0.0", "variant": ""}
    outcomes = {s[0]["outcome"]: s[1] for s in found["tuneloop_runs_total"]}
    assert sum(outcomes.values()) == 320  # 300 runs, 20 with a tool call
    errors = sum(error for _unit, _v, _t, error in traffic.log)
    assert found["tuneloop_run_errors_total"] == [(identity, float(errors))]
    assert outcomes["failure"] >= errors  # every run in error failed
    buckets = [
        (labels["le"], value)
        for labels, value in found["tuneloop_run_duration_seconds_bucket"]
        if labels["version"] == "1.0.0"
    ]
    values = [value for _le, value in buckets]
    assert values == sorted(values) and buckets[-1] == ("+Inf", 320.0)
    assert found["tuneloop_run_duration_seconds_count"] == [(identity, 320.0)]
    # 20 runs take 50 ms, the others ~0.7 s.
    assert dict(buckets)["0.1"] == 20 and dict(buckets)["0.25"] < 320 <= dict(buckets)["2.5"]
    mean = (found["tuneloop_run_duration_seconds_sum"][0][1] - 20 * 0.05) / 300
    assert 0.6 < mean < 0.9
    tokens = {labels["direction"]: value for labels, value in found["tuneloop_tokens_total"]}
    assert tokens == {"input": 320 * 100.0, "output": 320 * 50.0}
    assert found["tuneloop_cost_usd_total"][0][1] == pytest.approx(300 * 0.01)
    tools = {labels["tool"]: value for labels, value in found["tuneloop_tool_errors_total"]}
    assert tools == {"lookup_order": 5.0}
    assert found["tuneloop_tool_calls_total"][0][1] == 20.0
    # tuneloop's own health.
    assert found["tuneloop_ingest_runs_per_second"][0][1] == 320 / 300  # in the last 5 min
    assert found["tuneloop_ingest_queue_depth"][0][1] == 0
    assert found["tuneloop_controller_lag_seconds"][0][1] == 0.0
    assert found["tuneloop_controller_ticks_total"][0][1] == 1.0


def test_metrics_need_an_admin_key(served: Served) -> None:
    assert scrape(served, key="nope").status_code == 401
    assert scrape(served, key=served.ingest_key).status_code == 403

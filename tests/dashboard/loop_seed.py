"""Data for the loop pages: an experiment, a rollout, recommendations, evals, reviews, alerts.

It goes on top of `conftest.seed` through the same paths production uses: the HTTP API
for versions, experiments, rollouts and alert rules; the SDK for runs; the
repositories for what only the runtime or an analyzer writes (review items, findings,
eval runs); and the app's own controller for alert evaluations.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.dashboard.conftest import EXAMPLES, DashServer
from tests.sdk.sdk_fakes import FAST_RETRY
from tuneloop.analysis.recommend.findings import Finding, Impact, Report, fingerprint
from tuneloop.config.loading import load_bundle_file, load_config_file
from tuneloop.evals.aggregate import aggregate_cases
from tuneloop.evals.evaluators.base import Score
from tuneloop.evals.results import CaseResult, EvalRun, GateCheck, GateReport, TrialResult
from tuneloop.runtime.review import ReviewItem
from tuneloop.sdk import Client

EXPERIMENT = "triage-concise"
EXPERIMENT_UNITS = 24  # per variant
# Successes per variant out of EXPERIMENT_UNITS (one run per unit).
EXPERIMENT_SUCCESSES = {"control": 12, "concise": 20}
ROLLOUT_UNITS = 24  # per version


@dataclass
class Loop:
    """What the loop seed made, for assertions."""

    rollout_id: str = ""
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    recommendations: dict[str, str] = field(default_factory=dict)
    eval_runs: dict[str, str] = field(default_factory=dict)
    reviews: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)


def _push_versions(api: httpx.Client, agent: str) -> dict[str, str]:
    """1.0.0 (production) and 1.1.0 (the example bundle) of ``agent``."""
    base = load_config_file(EXAMPLES / "agent.yaml")
    first = api.post(
        f"/api/v1/agents/{agent}/versions",
        json={"config": base.to_data(), "label": "1.0.0", "message": "first version"},
    )
    assert first.status_code == 201, first.text
    bundle = load_bundle_file(EXAMPLES / "bundle.yaml")
    second = api.post(
        f"/api/v1/agents/{agent}/bundles",
        json={"bundle": bundle.to_data(), "label": "1.1.0", "message": "quality loop"},
    )
    assert second.status_code == 201, second.text
    return {"1.0.0": first.json()["version"], "1.1.0": second.json()["version"]}


def _wait_for(api: httpx.Client, path: str, done: Any) -> Any:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        body = api.get(path).json()
        if done(body):
            return body
        time.sleep(0.05)
    raise AssertionError(f"{path} never got there")


def _experiment(server: DashServer, api: httpx.Client, versions: dict[str, str]) -> None:
    created = api.post(
        "/api/v1/experiments",
        json={
            "agent": "triage",
            "key": EXPERIMENT,
            "description": "shorter answers",
            "variants": [{"name": "control"}, {"name": "concise", "version": "1.1.0"}],
            "primary_metric": "task_success",
            "guardrails": [{"metric": "error_rate", "margin": 0.05}],
            "metrics": ["latency_mean"],
            "method": "sequential",
        },
    )
    assert created.status_code == 201, created.text
    assert api.post(f"/api/v1/experiments/{EXPERIMENT}/start").status_code == 200
    with Client(server.url, server.ingest_key, retry=FAST_RETRY) as client:
        for variant, successes in EXPERIMENT_SUCCESSES.items():
            version = versions["1.1.0" if variant == "concise" else "1.0.0"]
            for i in range(EXPERIMENT_UNITS):
                # The first failure of each variant is an error (an exception), too.
                with contextlib.suppress(TimeoutError), client.run(
                    "triage", unit_id=f"{variant}-{i}", config_version=version,
                    variant=variant, experiment=EXPERIMENT,
                ) as run:  # fmt: skip
                    run.outcome("success" if i < successes else "failure")
                    if i == successes:
                        raise TimeoutError("the model did not answer")
        assert client.flush(timeout_s=10.0)
    _wait_for(
        api,
        f"/api/v1/experiments/{EXPERIMENT}/results",
        lambda body: body.get("total_units") == 2 * EXPERIMENT_UNITS,
    )


def _rollout(server: DashServer, api: httpx.Client, versions: dict[str, str]) -> str:
    started = api.post(
        "/api/v1/agents/orders/rollouts",
        json={"version": "1.1.0", "steps": [10, 50, 100], "step_duration": "1h",
              "min_units": 10, "approve_before": [50]},
    )  # fmt: skip
    assert started.status_code == 201, started.text
    rollout_id: str = started.json()["rollout_id"]
    with Client(server.url, server.ingest_key, retry=FAST_RETRY) as client:
        for side, version in (("stable", versions["1.0.0"]), ("candidate", versions["1.1.0"])):
            for i in range(ROLLOUT_UNITS):
                with client.run("orders", unit_id=f"{side}-{i}", config_version=version) as run:
                    run.outcome("failure" if side == "candidate" and i == 0 else "success")
        assert client.flush(timeout_s=10.0)
    _wait_for(api, "/api/v1/usage", lambda body: body["runs"] >= 6 + 2 * EXPERIMENT_UNITS + 48)
    evaluated = api.post(f"/api/v1/rollouts/{rollout_id}/evaluate")
    assert evaluated.status_code == 200, evaluated.text
    return rollout_id


def _finding(kind: str, title: str, change: dict[str, Any], traces: list[str]) -> Finding:
    return Finding(
        type="timeout_adjustment" if kind == "raise_timeout" else "retry_policy",
        target="data_fetch",
        kind=kind,
        title=title,
        evidence={
            "tool": "data_fetch",
            "calls": 120,
            "failures": 14,
            "failure_rate": 0.1167,
            "example_trace_ids": traces,
        },
        change=(change,),
        impact=Impact("data_fetch error rate", 0.1167, 0.03, "ratio", "timeouts above 4 s"),
        confidence=0.82 if kind == "raise_timeout" else 0.55,
        headline=0.1167,
        fingerprint=fingerprint("support", "timeout_adjustment", "data_fetch", kind, ["/tools"]),
    )


def _recommendations(server: DashServer, now: int) -> dict[str, str]:
    traces = [server.seeded.traces["escalated"], server.seeded.traces["failure"]]
    timeout = _finding(
        "raise_timeout",
        "Raise data_fetch's timeout to 6 s: 11.7 % of its calls time out",
        {"op": "replace", "path": "/tools/data_fetch/timeout_ms", "value": 6000},
        traces,
    )
    retry = _finding(
        "retry",
        "Retry data_fetch three times: most failures are transient",
        {"op": "replace", "path": "/tools/data_fetch/retry/max_attempts", "value": 3},
        traces[:1],
    )
    report = Report("support", server.seeded.versions["1.1.0"], now - 86_400_000, now, 120, 120.0,
                    findings=(timeout, retry))  # fmt: skip
    server.store.recommendations.save_report(server.project, report, now_ms=now)
    items = server.store.recommendations.list_for(server.project, "support")
    return {item["kind"]: item["id"] for item in items}


def _eval_run(run_id: str, passes: dict[str, tuple[str, list[bool]]], *, minute: int) -> EvalRun:
    cases = tuple(
        CaseResult(
            case_id,
            category,
            tuple(
                TrialResult(
                    k,
                    ok,
                    (Score("contains", "pass" if ok else "fail", float(ok), "ok"),),
                    output=f"answer {case_id}",
                    latency_ms=120.0,
                    cost_usd=0.001,
                )
                for k, ok in enumerate(trials)
            ),
        )
        for case_id, (category, trials) in passes.items()
    )
    overall, categories = aggregate_cases(cases)
    passed = overall.pass_rate >= 0.8
    check = GateCheck("overall", "pass_rate", "pass" if passed else "fail", overall.pass_rate,
                      0.8, f"overall pass^1 {overall.pass_rate:.2f} vs 0.8")  # fmt: skip
    return EvalRun(
        run_id=run_id, suite="support-regression", stage="post-merge", repeat=3,
        started_ms=1_700_000_000_000 + minute * 60_000,
        finished_ms=1_700_000_000_000 + minute * 60_000 + 30_000, cases=cases,
        overall=overall, categories=categories, gate=GateReport((check,)), agent="support",
    )  # fmt: skip


def _evals(server: DashServer, now: int) -> dict[str, str]:
    ok, bad = [True, True, True], [False, False, False]
    baseline = _eval_run(
        "eval-baseline",
        {"refund-1": ("refunds", ok), "refund-2": ("refunds", ok),
         "order-1": ("orders", ok), "order-2": ("orders", [True, False, True])},
        minute=0,
    )  # fmt: skip
    current = _eval_run(
        "eval-current",
        {"refund-1": ("refunds", bad), "refund-2": ("refunds", ok),
         "order-1": ("orders", ok), "order-2": ("orders", ok), "order-3": ("orders", ok)},
        minute=10,
    )  # fmt: skip
    for run, version in ((baseline, "1.0.0"), (current, "1.1.0")):
        server.store.evals.save_run(
            server.project, run, author="seed", now_ms=now, agent="support", version=version
        )
    return {"baseline": baseline.run_id, "current": current.run_id}


def _reviews(server: DashServer, now: int) -> dict[str, str]:
    refund = ReviewItem(
        review_id="rv-refund", run_id="run-refund", agent="support", kind="tool_call",
        reason="refund requires approval", source="tool_settings", created_ms=now - 60_000,
        tool="refund", call_id="call-1", arguments={"order_id": "1234", "amount": 40},
        hop="tool_args", trace_id=server.seeded.traces["escalated"], session_id="sess-42",
    )  # fmt: skip
    sample = ReviewItem(
        review_id="rv-sample", run_id="run-sample", agent="support", kind="output",
        reason="sampled for review (2 %)", source="sample", created_ms=now - 30_000,
        content="Your order 1234 ships tomorrow.", trace_id=server.seeded.traces["first"],
    )  # fmt: skip
    for item in (refund, sample):
        server.store.runtime.add_review(server.project, item)
    return {"refund": refund.review_id, "sample": sample.review_id}


def _alerts(server: DashServer, api: httpx.Client, app: Any) -> dict[str, str]:
    rules = {}
    for name, metric, op, threshold in (
        ("support escalations", "escalation_rate", "above", 0.1),
        ("support completion", "task_success_rate", "below", 0.9),
    ):
        created = api.post(
            "/api/v1/agents/support/alerts",
            json={"name": name, "metric": metric, "op": op, "threshold": threshold,
                  "window_ms": "1h", "for_ms": 0, "min_runs": 1, "severity": "critical"},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        rules[metric] = created.json()["rule_id"]
    controller = app.state.controller
    controller.tick()  # both fire: support has 25 % escalations and 50 % completion
    rule = api.get(f"/api/v1/alerts/{rules['task_success_rate']}").json()
    spec = {k: rule[k] for k in ("name", "metric", "op", "window_ms", "for_ms", "min_runs",
                                 "severity", "webhooks", "action", "enabled")}  # fmt: skip
    lowered = api.put(
        f"/api/v1/alerts/{rules['task_success_rate']}", json={**spec, "threshold": 0.3}
    )
    assert lowered.status_code == 200, lowered.text
    controller.tick()  # the completion rule resolves
    return rules


def seed_loop(server: DashServer, app: Any) -> Loop:
    """Seed the loop pages' data on a server `make_server` started (see the module docstring)."""
    loop = Loop()
    now = int(time.time() * 1000)
    with server.api() as api:
        loop.versions["triage"] = _push_versions(api, "triage")
        loop.versions["orders"] = _push_versions(api, "orders")
        _experiment(server, api, loop.versions["triage"])
        loop.rollout_id = _rollout(server, api, loop.versions["orders"])
        loop.rules = _alerts(server, api, app)
    loop.recommendations = _recommendations(server, now)
    loop.eval_runs = _evals(server, now)
    loop.reviews = _reviews(server, now)
    return loop

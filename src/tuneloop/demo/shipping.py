"""Acts 5 to 8 of the demo: the A/B experiment, the canary rollout, the automatic rollback.

Sample sizes come from the statistics engine's planning (`plan_sample_size`) on the
figures the platform measured, never from the simulated world's parameters; the
experiment is sequential, so it stops as soon as its always-valid test decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneloop.demo.acts import AGENT_PATH, HOUR_MS, Stage, metrics
from tuneloop.demo.gate import GateResult, evaluate
from tuneloop.demo.support import AGENT
from tuneloop.demo.traffic import Served
from tuneloop.errors import ConfigError
from tuneloop.rollouts import preset
from tuneloop.stats import SamplePlan, plan_sample_size

MINUTE_MS = 60_000
# The smallest lift in task success worth shipping a change for (relative).
WORTHWHILE_LIFT = 0.05
EXPERIMENT_KEY = "support-recommended-fixes"
EXPERIMENT_MAX_MS = 24 * HOUR_MS
EXPERIMENT_LOOK_MS = 15 * MINUTE_MS
TOOL_ERROR_MARGIN = 0.02  # absolute: two more failed tool calls in a hundred
TOOL_ERROR_LIMIT = 0.10  # an alert level: one tool call in ten failing
ROLLOUT_MAX_MS = 24 * HOUR_MS
AFTER_ROLLBACK_MS = 30 * MINUTE_MS
ACTIVE = ("running", "paused")


def _success_rate(document: dict[str, Any]) -> float:
    """Task success over every group of a metrics document, weighted by runs."""
    rows = document["groups"]
    runs = int(sum(row["runs"] for row in rows))
    if not runs:
        raise ConfigError("no runs to plan with: the agent had no traffic in the window")
    return float(sum(row["task_success_rate"] * row["runs"] for row in rows)) / runs


# --- act 5 ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Experiment:
    """Act 5: the plan, the traffic it took, the results and the decision."""

    plan: SamplePlan
    served: Served
    results: dict[str, Any]
    concluded: dict[str, Any]

    @property
    def action(self) -> str:
        """What the engine recommended at the end: ship, stop, keep_running, investigate."""
        return str(self.results["recommendation"]["action"])


async def experiment(stage: Stage, candidate: str, baseline: dict[str, Any]) -> Experiment:
    """Test ``candidate`` against production, sequentially, until the engine decides.

    Args:
        stage: the server and the traffic.
        candidate: the candidate version's hash.
        baseline: act 1's metrics by version (the control's success rate plans the test).
    """
    platform, traffic = stage.platform, stage.traffic
    plan = plan_sample_size(
        kind="binary",
        baseline=_success_rate(baseline),
        mde=WORTHWHILE_LIFT,
        mde_kind="relative",
        method="sequential",
    )
    body = {
        "agent": AGENT,
        "key": EXPERIMENT_KEY,
        "description": "the accepted recommendations against production",
        "variants": [{"name": "control"}, {"name": "treatment", "version": candidate}],
        "unit_type": "user",
        "primary_metric": "task_success",
        "guardrails": [
            {"metric": "cost_per_run", "margin": 0.10, "margin_kind": "relative"},
            {"metric": "latency_mean", "margin": 0.10, "margin_kind": "relative"},
        ],
        "metrics": ["escalation_rate", "tool_error_rate", "feedback:thumbs"],
        "method": "sequential",
        "mde": WORTHWHILE_LIFT,
        "mde_kind": "relative",
        "planned_units": plan.total_units,
    }
    platform.post("/api/v1/experiments", body)
    platform.post(f"/api/v1/experiments/{EXPERIMENT_KEY}/start")
    traffic.refresh_state()
    latest: dict[str, Any] = {}

    def decided() -> bool:
        traffic.settle()
        latest.update(platform.get(f"/api/v1/experiments/{EXPERIMENT_KEY}/results"))
        action = latest["recommendation"]["action"]
        return bool(action != "keep_running")

    served = await traffic.serve(
        for_ms=EXPERIMENT_MAX_MS, done=decided, check_every_ms=EXPERIMENT_LOOK_MS
    )
    if not served.done:
        decided()
    action = latest["recommendation"]["action"]
    platform.post(f"/api/v1/experiments/{EXPERIMENT_KEY}/stop", {"reason": f"engine: {action}"})
    traffic.refresh_state()
    traffic.settle()
    results: dict[str, Any] = platform.get(f"/api/v1/experiments/{EXPERIMENT_KEY}/results")
    decision = {
        "decision": "ship" if action == "ship" else "keep_control",
        "reason": results["recommendation"]["message"],
        "promote": False,  # the canary rollout ships it
    }
    concluded = platform.post(f"/api/v1/experiments/{EXPERIMENT_KEY}/conclude", decision)
    return Experiment(plan, served, results, concluded)


def treatment_lift(results: dict[str, Any]) -> float:
    """The treatment's absolute effect on the primary metric (0 when undefined)."""
    primary = next(m for m in results["metrics"] if m["role"] == "primary")
    comparison = primary["comparisons"][0]
    estimate = comparison["absolute"]["estimate"]
    return float(estimate) if estimate is not None else 0.0


# --- acts 6 and 7 -----------------------------------------------------------------------


def rollout_body(candidate: str, *, control_rate: float, lift: float) -> dict[str, Any]:
    """The canary preset's rollout of ``candidate``, with two changes.

    The guards' confidence sequences are tuned (by planning) to the units that show
    non-inferiority within the task-success margin, given the lift the experiment
    measured; and tool errors are guarded, with a hard limit too. Steps need the units
    the guards need to say anything, and hard limits apply from that many runs.
    """
    canary = preset("canary")
    guards = [guard.model_dump(mode="json") for guard in canary.guards]
    guards.append({"metric": "tool_error_rate", "margin": TOOL_ERROR_MARGIN})
    margin = next(g.margin for g in canary.guards if g.metric == "task_success_rate")
    tuning = plan_sample_size(
        kind="binary",
        baseline=control_rate,
        mde=margin + max(lift, 0.0),
        mde_kind="absolute",
        method="sequential",
    ).total_units
    limits = [limit.model_dump(mode="json") for limit in canary.hard_limits]
    limits.append({"metric": "tool_error_rate", "limit": TOOL_ERROR_LIMIT})
    # A level is judged on as many runs as the guards need units, not on the first run.
    limits = [{**limit, "min_runs": canary.min_units_for_stats} for limit in limits]
    return {
        "version": candidate,
        "preset": "canary",
        "steps": [step.weight for step in canary.steps],
        "min_units": canary.min_units_for_stats,
        "overrides": {"sequential_tuning": tuning, "guards": guards, "hard_limits": limits},
    }


@dataclass(frozen=True, slots=True)
class Rollout:
    """Acts 6 and 7: a rollout from start to its end, with its timeline."""

    served: Served
    document: dict[str, Any]

    @property
    def status(self) -> str:
        """promoted, rolled_back, or still running (the time ran out)."""
        return str(self.document["status"])


async def roll_out(stage: Stage, body: dict[str, Any]) -> Rollout:
    """Start a rollout and serve traffic until the controller promotes or rolls it back."""
    platform, traffic = stage.platform, stage.traffic
    started = platform.post(f"{AGENT_PATH}/rollouts", body)
    traffic.refresh_state()
    path = f"/api/v1/rollouts/{started['rollout_id']}"

    def finished() -> bool:
        return platform.get(path, [("limit", "1")])["status"] not in ACTIVE

    served = await traffic.serve(for_ms=ROLLOUT_MAX_MS, done=finished)
    traffic.settle()
    return Rollout(served, platform.get(path, [("limit", "1000")]))


# Rollout ids are the salt that splits units: fixed ones put the same customers on each
# candidate in every run of the demo (a random id would draw a new canary each time).
CANARY_ID = "demo-canary"
BAD_ROLLOUT_ID = "demo-fail-fast"

SLOW_BUNDLE: dict[str, Any] = {
    "bundle_id": "fail-fast-lookups",
    "version": "1.0.0",
    "description": "Fail slow order lookups fast and let the retry answer",
    "recommendations": [
        {
            "type": "timeout_adjustment",
            "target": "lookup_order",
            "change": [{"op": "replace", "path": "/tools/lookup_order/timeout_ms", "value": 150}],
            "rationale": "a slow lookup holds the whole answer; retry it instead of waiting",
            "expected_impact": "lower p99 latency on order questions",
        }
    ],
}


@dataclass(frozen=True, slots=True)
class BadRollout:
    """Act 7: a bundle that passes the offline gate, its rollout, and the rollback."""

    version: dict[str, Any]
    gate: GateResult
    rollout: Rollout
    after: Served


async def bad_rollout(stage: Stage, body: dict[str, Any]) -> BadRollout:
    """Bundle a too-tight timeout on production, gate it, roll it out, watch it roll back."""
    version = stage.platform.post(f"{AGENT_PATH}/bundles", {"bundle": SLOW_BUNDLE})
    gated = await evaluate(stage.platform, version["version"])
    bad = {**body, "version": version["version"], "rollout_id": BAD_ROLLOUT_ID}
    rollout = await roll_out(stage, bad)
    stage.traffic.refresh_state()
    after = await stage.traffic.serve(for_ms=AFTER_ROLLBACK_MS)
    stage.traffic.settle()
    return BadRollout(version, gated, rollout, after)


# --- act 8 ------------------------------------------------------------------------------


def before_after(stage: Stage, since_ms: int) -> dict[str, Any]:
    """Act 8: every version's figures over the whole demo, from the metrics API."""
    return metrics(stage.platform, "version", since_ms, stage.traffic.now_ms + 1)

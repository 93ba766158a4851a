"""Acts 1 to 4 of the demo: traffic, what the platform finds in it, the fix, the eval gate.

Each act calls the server's HTTP API with the admin key (and, for the gate, the evals
package as CI would) and returns what the server answered; `narrate` prints it.
Acts 5 to 8 are in `tuneloop.demo.shipping`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tuneloop.demo.api import Platform, segment
from tuneloop.demo.gate import GateResult, evaluate
from tuneloop.demo.support import AGENT, initial_config
from tuneloop.demo.traffic import Served, Traffic
from tuneloop.errors import ConfigError, ConflictError, GateFailedError

HOUR_MS = 3_600_000
BASELINE_MS = 2 * HOUR_MS
AGENT_PATH = f"/api/v1/agents/{AGENT}"


@dataclass(frozen=True, slots=True)
class Stage:
    """What every act works with: the server's API and the production traffic."""

    platform: Platform
    traffic: Traffic


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 (UTC), for ``since`` and ``until`` parameters."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def metrics(platform: Platform, group_by: str, since_ms: int, until_ms: int) -> dict[str, Any]:
    """``GET /api/v1/metrics`` for the support agent over ``[since_ms, until_ms)``."""
    params = [("agent", AGENT), ("group_by", group_by), ("since", iso(since_ms))]
    params.append(("until", iso(until_ms)))
    found: dict[str, Any] = platform.get("/api/v1/metrics", params)
    return found


def labels(platform: Platform) -> dict[str, str]:
    """Every version's semver label by hash."""
    items = platform.get(f"{AGENT_PATH}/versions")["items"]
    return {item["version"]: item["label"] for item in items}


def push_initial_config(platform: Platform) -> dict[str, Any]:
    """Store the team's first config; the agent's first version becomes production."""
    body = {"config": initial_config(), "label": "1.0.0", "message": "the support agent ships"}
    found: dict[str, Any] = platform.post(f"{AGENT_PATH}/versions", body)
    return found


# --- act 1 ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Baseline:
    """Act 1: production traffic on the first version, and its health."""

    served: Served
    health: dict[str, Any]
    tools: dict[str, Any]


async def baseline(stage: Stage) -> Baseline:
    """Serve two hours of customers, then read the agent's health from the metrics API."""
    served = await stage.traffic.serve(for_ms=BASELINE_MS)
    stage.traffic.settle()
    until = served.until_ms + 1
    return Baseline(
        served,
        metrics(stage.platform, "version", served.since_ms, until),
        metrics(stage.platform, "tool", served.since_ms, until),
    )


# --- act 2 ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Findings:
    """Act 2: the recommendations the analyzers made from the traces, with their evidence."""

    report: dict[str, Any]
    items: list[dict[str, Any]]


def recommend(stage: Stage, since_ms: int) -> Findings:
    """Ask the server to analyze the traffic since ``since_ms``; list what it proposes."""
    window_ms = max(stage.traffic.now_ms - since_ms + 1, 1)
    report = stage.platform.post(
        f"{AGENT_PATH}/recommendations/refresh", {"window": str(math.ceil(window_ms))}
    )
    items = stage.platform.get(f"{AGENT_PATH}/recommendations")["items"]
    return Findings(report, items)


# --- act 3 ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """Act 3: the recommendations accepted one on top of the other, and the result.

    Attributes:
        accepted: each accept's answer (recommendation, bundle, base, version).
        skipped: recommendations left open, with why.
        version: the candidate version (the last accept's).
        diff: production to candidate, path by path.
    """

    accepted: list[dict[str, Any]]
    skipped: list[tuple[dict[str, Any], str]]
    version: dict[str, Any]
    diff: dict[str, Any]


def accept_all(stage: Stage, findings: Findings) -> Candidate:
    """Accept every recommendation, each onto the version the previous one made.

    Raises:
        ConfigError: none of them could be accepted.
    """
    platform = stage.platform
    base = "production"
    accepted: list[dict[str, Any]] = []
    skipped: list[tuple[dict[str, Any], str]] = []
    for item in findings.items:
        path = f"{AGENT_PATH}/recommendations/{segment(item['id'])}/accept"
        try:
            answer = platform.post(path, {"base": base})
        except (ConfigError, ConflictError) as exc:  # its patch no longer applies, say
            skipped.append((item, str(exc)))
            continue
        accepted.append(answer)
        base = answer["version"]["version"]
    if not accepted:
        raise ConfigError("no recommendation could be accepted; the demo cannot go on")
    version = accepted[-1]["version"]
    diff = platform.get(f"{AGENT_PATH}/diff", [("from", "production"), ("to", version["version"])])
    return Candidate(accepted, skipped, version, diff)


# --- act 4 ------------------------------------------------------------------------------


def harmful_bundle(config: dict[str, Any]) -> dict[str, Any]:
    """A well-meant bundle that drops the PII guardrail from ``config``."""
    index = next(i for i, g in enumerate(config["guardrails"]) if g["kind"] == "pii")
    recommendation = {
        "type": "guardrail",
        "target": "pii",
        "change": [{"op": "remove", "path": f"/guardrails/{index}"}],
        "rationale": "customers find '[REDACTED:email]' in answers confusing",
        "expected_impact": "fewer follow-up questions about which e-mail an order uses",
    }
    return {
        "bundle_id": "friendlier-order-answers",
        "version": "1.0.0",
        "description": "Answers name the customer's e-mail instead of a redaction marker",
        "recommendations": [recommendation],
    }


@dataclass(frozen=True, slots=True)
class Gates:
    """Act 4: the eval gate on the candidate and on a harmful variant of it.

    Attributes:
        candidate: the candidate's run and verdict.
        harmful: the harmful variant's run and verdict.
        refused: the server's answer to an experiment on the harmful variant.
    """

    candidate: GateResult
    harmful: GateResult
    refused: str


async def gate(stage: Stage, candidate: str) -> Gates:
    """Run the eval suite on ``candidate`` and on a variant without the PII guardrail."""
    platform = stage.platform
    passed = await evaluate(platform, candidate)
    config = platform.get(f"{AGENT_PATH}/versions/{segment(candidate)}")["config"]
    bundle = harmful_bundle(config)
    harmful_version = platform.post(f"{AGENT_PATH}/bundles", {"bundle": bundle, "base": candidate})
    failed = await evaluate(platform, harmful_version["version"])
    body = {
        "agent": AGENT,
        "key": "support-friendlier-answers",
        "variants": [
            {"name": "control"},
            {"name": "treatment", "version": harmful_version["version"]},
        ],
    }
    try:
        platform.post("/api/v1/experiments", body)
    except GateFailedError as exc:
        refused = str(exc)
    else:
        raise ConfigError("the server started an experiment on a version that failed its gate")
    return Gates(passed, failed, refused)

"""Simulated traffic for rollout tests: units resolved by the SDK, runs written by ingest.

Each run's unit is resolved exactly as the SDK resolves it (`compile_state` on the
agent state document the store serves now), and the run is written through the
ingest writer's own code (`write_spans`), so the controller reads what it would read
in production: run facts with version, rollout key and variant, and hourly rollups.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tuneloop.clock import FakeClock
from tuneloop.config.model import AgentConfig
from tuneloop.sdk.config import compile_state
from tuneloop.stats import RatioSummary
from tuneloop.store import Store
from tuneloop.store.ingest import write_spans
from tuneloop.telemetry.model import NormalizedSpan, RootFacts

PROJECT = "acme"
AGENT = "support"
MINUTE = 60_000


def config(temperature: float) -> AgentConfig:
    """A small valid config; versions differ by temperature."""
    return AgentConfig.from_data(
        {"model": {"provider": "openai", "name": "gpt-4o"}, "params": {"temperature": temperature}}
    )


def push_versions(store: Store, *, agent: str = AGENT, count: int = 2) -> list[Any]:
    """``count`` versions of ``agent``; the first becomes production."""
    return [
        store.configs.create_version(
            PROJECT, agent, config(0.1 * i), author="k-test", now_ms=1_000 + i
        )[0]
        for i in range(count)
    ]


@dataclass(frozen=True)
class Behaviour:
    """How runs of one version behave."""

    error_rate: float = 0.02
    success_rate: float = 0.9
    latency_ms: float = 800.0
    cost_usd: float = 0.01


@dataclass
class Traffic:
    """Sends runs of ``agent`` from a pool of users, advancing the fake clock."""

    store: Store
    clock: FakeClock
    behaviours: Mapping[str, Behaviour]
    agent: str = AGENT
    users: int = 20_000
    seed: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    # Per unit, the rollout variants it was served, in order (stickiness checks).
    variants: dict[str, list[str]] = field(default_factory=dict)
    # Every run: (unit, version, started_ms, error), for independent checks.
    log: list[tuple[str, str, int, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def send(self, runs: int, *, over_ms: int = MINUTE) -> Counter[str]:
        """``runs`` runs spread over ``over_ms``; returns runs per version hash."""
        now = self.clock.now_ms()
        state = self.store.agent_state.state(PROJECT, self.agent, now_ms=now)
        snapshot = compile_state(state, source="server")
        users = self.rng.integers(0, self.users, size=runs)
        draws = self.rng.random((runs, 3))
        spans = []
        counts: Counter[str] = Counter()
        for i in range(runs):
            unit = f"user-{users[i]}"
            resolved = snapshot.resolve(unit, None)
            assert resolved is not None
            version = resolved.version
            if resolved.kind == "rollout":
                seen = self.variants.setdefault(unit, [])
                if not seen or seen[-1] != resolved.variant:
                    seen.append(resolved.variant or "")
            b = self.behaviours[version]
            started = now + (i * over_ms) // runs
            latency = float(b.latency_ms * self.rng.lognormal(0.0, 0.3))
            error = bool(draws[i, 0] < b.error_rate)
            outcome = (
                "failure" if error else ("success" if draws[i, 1] < b.success_rate else "failure")
            )
            spans.append(
                _root(self.agent, resolved, unit, started, latency, error, outcome, b.cost_usd)
            )
            counts[version] += 1
            self.log.append((unit, version, started, error))
        with self.store.engine.begin() as conn:
            write_spans(conn, PROJECT, spans)
        self.clock.advance(over_ms)
        self.sent.update(counts)
        return counts


def error_summary(
    log: list[tuple[str, str, int, bool]], version: str, since_ms: int, until_ms: int
) -> tuple[int, RatioSummary]:
    """Units and the per-unit error-rate summary of ``version``'s runs in a window."""
    runs: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for unit, ran, started, error in log:
        if ran == version and since_ms <= started < until_ms:
            runs[unit] += 1
            errors[unit] += error
    units = sorted(runs)
    summary = RatioSummary.from_values(
        np.array([errors[u] for u in units], dtype=float),
        np.array([runs[u] for u in units], dtype=float),
    )
    return len(units), summary


def _root(
    agent: str,
    resolved: Any,
    unit: str,
    started_ms: int,
    latency_ms: float,
    error: bool,
    outcome: str,
    cost: float,
) -> NormalizedSpan:
    start_ns = started_ms * 1_000_000
    facts = RootFacts(
        agent=agent,
        config_version=resolved.version,
        experiment=resolved.key,
        variant=resolved.variant,
        unit_id=unit,
        session_id=None,
        outcome=outcome,
        status="error" if error else "ok",
        error_type="RuntimeError" if error else None,
        started_ms=started_ms,
        duration_ms=latency_ms,
        input_tokens=100,
        output_tokens=50,
        cost_usd=cost,
        attributes={},
    )
    return NormalizedSpan(
        trace_id=secrets.token_hex(16),
        span_id=secrets.token_hex(8),
        parent_span_id=None,
        name=f"invoke_agent {agent}",
        kind="agent",
        start_ns=start_ns,
        end_ns=start_ns + int(latency_ms * 1_000_000),
        status="error" if error else "ok",
        status_message="",
        attributes={},
        root=facts,
    )

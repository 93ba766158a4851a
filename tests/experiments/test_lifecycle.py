"""Experiments in the store on both engines: create, start, stop, conclude, and refusals."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.evals.stored_helpers import make_run
from tests.experiments.helpers import PROJECT, base_config, push_versions, request
from tuneloop.clock import FakeClock
from tuneloop.config.allocations import AllocationSpec, VariantSpec
from tuneloop.config.model import AgentConfig
from tuneloop.errors import (
    ConfigError,
    ConflictError,
    GateFailedError,
    InvalidInputError,
    NotFoundError,
)
from tuneloop.experiments.service import ConcludeIn, ExperimentService


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(store: Any, clock: FakeClock) -> ExperimentService:
    return ExperimentService(store, clock=clock)


@pytest.fixture
def versions(store: Any) -> tuple[Any, Any]:
    return push_versions(store)


def audit_actions(store: Any) -> list[tuple[str, str]]:
    return [(e.action, e.key_id) for e in store.configs.audit(PROJECT, agent="support")]


def test_create_start_stop_conclude_ship_moves_production(
    store: Any, service: ExperimentService, versions: tuple[Any, Any], clock: FakeClock
) -> None:
    v1, v2 = versions
    created = service.create(PROJECT, request(), author="k-alice")
    assert created.status == "draft"
    assert [(v.name, v.version, v.label, v.weight) for v in created.definition.variants] == [
        ("control", v1.hash, "1.0.0", 0.5),
        ("treatment", v2.hash, "1.1.0", 0.5),
    ]
    assert created.definition.salt == "exp-1"
    assert store.agent_state.state(PROJECT, "support", now_ms=1).allocations == []

    clock.advance(60_000)
    started = service.start(PROJECT, "exp-1", author="k-alice")
    assert (started.status, started.started_ms) == ("running", clock.now_ms())
    (allocation,) = store.agent_state.state(PROJECT, "support", now_ms=1).allocations
    assert (allocation.kind, allocation.key, allocation.unit_type) == (
        "experiment",
        "exp-1",
        "user",
    )
    assert [(v.name, v.weight, v.version.version) for v in allocation.variants] == [
        ("control", 0.5, v1.hash),
        ("treatment", 0.5, v2.hash),
    ]
    assert audit_actions(store)[-1] == ("allocation_set", "k-alice")

    clock.advance(86_400_000)
    stopped = service.stop(PROJECT, "exp-1", author="k-bob", reason="enough data")
    assert (stopped.status, stopped.stopped_ms) == ("stopped", clock.now_ms())
    assert store.agent_state.state(PROJECT, "support", now_ms=1).allocations == []
    assert audit_actions(store)[-1] == ("allocation_delete", "k-bob")

    decision = ConcludeIn(decision="ship", reason="+5 % success", promote=True)
    concluded = service.conclude(PROJECT, "exp-1", decision, author="k-carol")
    assert (concluded.status, concluded.decision, concluded.winner, concluded.decided_by) == (
        "concluded",
        "ship",
        "treatment",
        "k-carol",
    )
    assert concluded.decision_reason == "+5 % success"
    assert store.configs.get_version(PROJECT, "support", "production").hash == v2.hash
    move = store.configs.audit(PROJECT, agent="support")[-1]
    assert (move.action, move.channel, move.before_hash, move.after_hash, move.key_id) == (
        "move",
        "production",
        v1.hash,
        v2.hash,
        "k-carol",
    )
    events = store.experiments.events(PROJECT, "exp-1")
    assert [(e.action, e.actor) for e in events] == [
        ("create", "k-alice"),
        ("start", "k-alice"),
        ("stop", "k-bob"),
        ("conclude", "k-carol"),
    ]
    assert events[-1].detail["promotion"]["to"] == v2.hash
    assert events[2].detail == {"reason": "enough data"}


def test_one_running_experiment_per_agent_and_unit_type(
    store: Any, service: ExperimentService, versions: tuple[Any, Any]
) -> None:
    service.create(PROJECT, request(), author="k")
    service.create(PROJECT, request(key="exp-2"), author="k")
    service.create(PROJECT, request(key="exp-sessions", unit_type="session"), author="k")
    service.start(PROJECT, "exp-1", author="k")
    with pytest.raises(
        ConflictError,
        match=r"experiment 'exp-1' is already running on agent "
        r"'support' with user units.*tuneloop experiment stop exp-1",
    ):
        service.start(PROJECT, "exp-2", author="k")
    assert service.get(PROJECT, "exp-2").status == "draft"
    assert [a.key for a in store.agent_state.list_allocations(PROJECT, "support")] == ["exp-1"]
    service.start(PROJECT, "exp-sessions", author="k")
    assert store.experiments.running(PROJECT, "support") == ["exp-1", "exp-sessions"]
    service.stop(PROJECT, "exp-1", author="k")
    assert service.start(PROJECT, "exp-2", author="k").status == "running"


def test_a_rollout_in_progress_blocks_a_start(
    store: Any, service: ExperimentService, versions: tuple[Any, Any]
) -> None:
    v1, v2 = versions
    rollout = AllocationSpec(
        kind="rollout",
        key="ro-42",
        salt="ro-42",
        variants=[
            VariantSpec(name="stable", weight=0.75, version=v1.hash),
            VariantSpec(name="candidate", weight=0.25, version=v2.hash),
        ],
    )
    store.agent_state.put_allocation(PROJECT, "support", rollout, author="k", now_ms=5)
    service.create(PROJECT, request(), author="k")
    with pytest.raises(ConflictError, match=r"rollout 'ro-42' is in progress on agent 'support'"):
        service.start(PROJECT, "exp-1", author="k")
    assert service.get(PROJECT, "exp-1").status == "draft"


BAD_REQUESTS: list[tuple[dict[str, Any], type[Exception], str]] = [
    (
        {
            "variants": [
                {"name": "control", "weight": 0.6},
                {"name": "treatment", "version": "1.1.0", "weight": 0.6},
            ]
        },
        ConfigError,
        r"weights must sum to 1, got \[0.6, 0.6\] \(sum 1.2\)",
    ),
    (
        {
            "variants": [
                {"name": "control", "weight": 0.5},
                {"name": "treatment", "version": "1.1.0"},
            ]
        },
        ConfigError,
        "give every variant a weight or none",
    ),
    (
        {"primary_metric": "happiness"},
        ConfigError,
        r"unknown metric 'happiness'; known metrics: task_success, error_rate",
    ),
    (
        {"guardrails": [{"metric": "latency_p97", "margin": 0.1}]},
        ConfigError,
        "unknown metric 'latency_p97'",
    ),
    (
        {"metrics": ["task_success"]},
        ConfigError,
        r"metric\(s\) \['task_success'\] appear more than once",
    ),
    (
        {"variants": [{"name": "control"}, {"name": "control", "version": "1.1.0"}]},
        ConfigError,
        "variant names must be unique",
    ),
    (
        {"variants": [{"name": "control"}, {"name": "treatment"}]},
        ConfigError,
        "variant 'treatment' needs a version; only the control",
    ),
    (
        {"variants": [{"name": "control"}, {"name": "treatment", "version": "9.9.9"}]},
        NotFoundError,
        "agent 'support' has no version '9.9.9'",
    ),
    ({"alpha": 0.7}, ConfigError, "alpha"),
    ({"mde": -0.1}, ConfigError, "mde must be a positive number"),
]


def test_bad_requests_are_refused_and_store_nothing(
    store: Any, service: ExperimentService, versions: tuple[Any, Any]
) -> None:
    for overrides, error, message in BAD_REQUESTS:
        with pytest.raises(error, match=message):
            service.create(PROJECT, request(**overrides), author="k")
    assert service.list_experiments(PROJECT) == []


def test_a_variant_pinned_to_another_agents_version_is_refused(
    store: Any, service: ExperimentService, versions: tuple[Any, Any]
) -> None:
    data = base_config().to_data()
    data["params"] = {**data["params"], "temperature": 0.1}
    billing, _ = store.configs.create_version(
        PROJECT, "billing", AgentConfig.from_data(data), author="k", now_ms=5
    )
    body = request(
        variants=[{"name": "control"}, {"name": "treatment", "version": billing.hash[:12]}]
    )
    with pytest.raises(InvalidInputError, match="belongs to agent 'billing', not 'support'"):
        service.create(PROJECT, body, author="k")
    assert service.list_experiments(PROJECT) == []


def test_a_failed_eval_gate_refuses_unless_forced_with_a_recorded_reason(
    store: Any, service: ExperimentService, versions: tuple[Any, Any]
) -> None:
    _, v2 = versions
    failed = make_run({"c1": [False]}, gate_passed=False, agent="support")
    store.evals.save_run(PROJECT, failed, author="k-ci", now_ms=3_000, version="1.1.0")
    with pytest.raises(GateFailedError, match=r"version 1.1.0 .* failed its eval gate"):
        service.create(PROJECT, request(), author="k")
    assert service.list_experiments(PROJECT) == []
    forced = service.create(
        PROJECT, request(force_reason="flaky judge; checked by hand"), author="k-lead"
    )
    assert forced.definition.gate_override == "flaky judge; checked by hand"
    override = store.configs.audit(PROJECT, agent="support")[-1]
    assert (override.action, override.key_id, override.after_hash) == ("approve", "k-lead", v2.hash)
    assert override.detail["gate_override"]["reason"] == "flaky judge; checked by hand"


def test_lifecycle_moves_out_of_order_say_what_to_do(
    service: ExperimentService, versions: tuple[Any, Any]
) -> None:
    service.create(PROJECT, request(), author="k")
    with pytest.raises(ConflictError, match="it is draft, not running; start it first"):
        service.stop(PROJECT, "exp-1", author="k")
    with pytest.raises(ConflictError, match="it is draft, not stopped; start it first"):
        service.conclude(PROJECT, "exp-1", ConcludeIn(decision="inconclusive"), author="k")
    with pytest.raises(ConflictError, match="is a draft: it has no results until it starts"):
        service.results(PROJECT, "exp-1")
    service.start(PROJECT, "exp-1", author="k")
    with pytest.raises(ConflictError, match="it is running, not stopped; stop it first"):
        service.conclude(PROJECT, "exp-1", ConcludeIn(decision="ship"), author="k")
    service.stop(PROJECT, "exp-1", author="k")
    with pytest.raises(ConfigError, match="ships nothing"):
        service.conclude(
            PROJECT, "exp-1", ConcludeIn(decision="keep_control", promote=True), author="k"
        )
    with pytest.raises(ConfigError, match="to keep the control, conclude with decision keep_c"):
        service.conclude(
            PROJECT, "exp-1", ConcludeIn(decision="ship", variant="control"), author="k"
        )
    done = service.conclude(PROJECT, "exp-1", ConcludeIn(decision="keep_control"), author="k")
    assert (done.status, done.decision, done.winner) == ("concluded", "keep_control", None)
    with pytest.raises(ConflictError, match="it is concluded, not draft; it is concluded; create"):
        service.start(PROJECT, "exp-1", author="k")
    with pytest.raises(ConflictError, match="experiment 'exp-1' already exists"):
        service.create(PROJECT, request(), author="k")
    with pytest.raises(NotFoundError, match="no experiment 'nope'"):
        service.get(PROJECT, "nope")


def test_concurrent_starts_on_one_agent_let_exactly_one_through(
    store: Any, service: ExperimentService, versions: tuple[Any, Any]
) -> None:
    keys = [f"exp-race-{i}" for i in range(4)]
    for key in keys:
        service.create(PROJECT, request(key=key), author="k")
    outcomes: dict[str, str] = {}

    def start(key: str) -> None:
        try:
            service.start(PROJECT, key, author="k")
            outcomes[key] = "started"
        except ConflictError as exc:
            outcomes[key] = str(exc)

    threads = [threading.Thread(target=start, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    started = [key for key, outcome in outcomes.items() if outcome == "started"]
    assert len(started) == 1 and len(outcomes) == 4
    assert all(
        f"experiment {started[0]!r} is already running" in outcomes[key]
        for key in keys
        if key != started[0]
    )
    assert [a.key for a in store.agent_state.list_allocations(PROJECT, "support")] == started

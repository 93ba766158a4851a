"""Stored eval runs, gate verdicts and the experiment/rollout gate check, on both engines."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.evals.stored_helpers import example_config, make_run, push_version
from tuneloop.clock import FakeClock
from tuneloop.errors import ConflictError, GateFailedError, InvalidInputError, NotFoundError
from tuneloop.store import Store
from tuneloop.store.evals import require_passing_gate
from tuneloop.store.schema import eval_gate_verdicts, eval_runs


def rows(store: Store) -> tuple[int, int]:
    with store.engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (eval_runs, eval_gate_verdicts)
        )


def test_a_run_of_a_stored_config_is_linked_by_its_hash_and_records_the_verdict(
    store: Store,
) -> None:
    config = example_config()
    version = push_version(store, config, label="1.0.0")
    run = make_run({"a": [True], "b": [True]}, config=config)
    saved = store.evals.save_run("acme", run, author="key1", now_ms=5_000)
    assert saved.created and saved.version_label == "1.0.0"
    assert saved.summary.version_hash == version.hash == run.config_hash
    assert saved.summary.uploaded_by == "key1" and saved.summary.created_ms == 5_000
    assert saved.verdict is not None and saved.verdict.passed and saved.verdict.run_id == run.run_id
    gate = store.evals.gate_verdict("acme", "support", "1.0.0")
    assert gate.status == "passed"
    assert [(s.stage, s.passed, s.run_id) for s in gate.stages] == [
        ("post-merge", True, run.run_id)
    ]
    stored = store.evals.get_run("acme", run.run_id)
    assert stored.run.to_dict() == run.to_dict()


def test_a_run_of_an_unknown_config_is_stored_unlinked_without_a_verdict(store: Store) -> None:
    push_version(store, example_config(), label="1.0.0")
    run = make_run({"a": [False]}, config=example_config("config_broken.yaml"), gate_passed=False)
    saved = store.evals.save_run("acme", run, author="k", now_ms=1)
    assert saved.created and saved.summary.version_hash is None and saved.verdict is None
    assert saved.summary.passed is False
    assert store.evals.gate_verdict("acme", "support", "1.0.0").status == "unknown"


def test_uploading_for_a_version_checks_the_config_and_the_version_exist(store: Store) -> None:
    config = example_config()
    push_version(store, config, label="1.0.0")
    broken = push_version(store, example_config("config_broken.yaml"), label="1.1.0")
    run = make_run({"a": [True]}, config=config)
    with pytest.raises(InvalidInputError, match=r"ran config .* but version '1.1.0'"):
        store.evals.save_run("acme", run, author="k", now_ms=1, version="1.1.0")
    with pytest.raises(NotFoundError, match=r"agent 'support' has no version '9\.9\.9'"):
        store.evals.save_run("acme", run, author="k", now_ms=1, version="9.9.9")
    assert rows(store) == (0, 0)  # refused uploads change nothing
    # A run that carries no config hash is linked to the version it was uploaded for.
    unhashed = make_run({"a": [False]}, gate_passed=False)
    saved = store.evals.save_run("acme", unhashed, author="k", now_ms=1, version=broken.hash[:10])
    assert saved.summary.version_hash == broken.hash and saved.verdict is not None
    assert store.evals.gate_verdict("acme", "support", "1.1.0").status == "failed"


def test_the_same_run_uploaded_twice_is_stored_once_and_a_different_one_is_a_conflict(
    store: Store,
) -> None:
    config = example_config()
    push_version(store, config)
    run = make_run({"a": [True]}, config=config, run_id="run-1")
    first = store.evals.save_run("acme", run, author="k", now_ms=1)
    again = store.evals.save_run("acme", run, author="k", now_ms=2)
    assert first.created and not again.created
    assert again.summary == first.summary and again.verdict == first.verdict
    other = make_run({"a": [False]}, config=config, run_id="run-1", gate_passed=False)
    with pytest.raises(ConflictError, match="run-1 is already stored with different content"):
        store.evals.save_run("acme", other, author="k", now_ms=3)
    assert rows(store) == (1, 1)


def test_the_latest_finished_run_decides_a_stage_and_stages_are_separate(store: Store) -> None:
    config = example_config()
    push_version(store, config, label="2.0.0")
    passed = make_run({"a": [True]}, config=config, finished_ms=3_000)
    store.evals.save_run("acme", passed, author="k", now_ms=10)
    older_failure = make_run({"a": [False]}, config=config, finished_ms=2_000, gate_passed=False)
    saved = store.evals.save_run("acme", older_failure, author="k", now_ms=20)
    assert saved.created and saved.verdict is None  # stored, but it is not the latest word
    assert store.evals.gate_verdict("acme", "support", "2.0.0").status == "passed"
    replay = make_run({"a": [False]}, config=config, stage="replay", gate_passed=False)
    store.evals.save_run("acme", replay, author="k", now_ms=30)
    gate = store.evals.gate_verdict("acme", "support", "production")
    assert gate.status == "failed"
    assert {s.stage: s.passed for s in gate.stages} == {"post-merge": True, "replay": False}
    assert gate.stage("replay").failures == ("orders pass^1 0.00 < 0.9",)  # type: ignore[union-attr]
    newer_pass = make_run({"a": [True]}, config=config, stage="replay", finished_ms=9_000)
    store.evals.save_run("acme", newer_pass, author="k", now_ms=40)
    assert store.evals.gate_verdict("acme", "support", "2.0.0").status == "passed"


def test_runs_are_listed_newest_first_filtered_and_paged(store: Store) -> None:
    config = example_config()
    push_version(store, config, label="1.0.0")
    ids = []
    for n in range(5):
        run = make_run(
            {"a": [n % 2 == 0]},
            config=config,
            stage="pre-merge" if n < 3 else "post-merge",
            gate_passed=n % 2 == 0,
            run_id=f"run-{n}",
        )
        store.evals.save_run("acme", run, author="k", now_ms=100 + n)
        ids.append(run.run_id)
    store.evals.save_run(
        "acme", make_run({"x": [True]}, suite="other", agent="billing"), author="k", now_ms=200
    )
    page, cursor = store.evals.list_runs("acme", agent="support", limit=2)
    assert [item.run_id for item in page] == ["run-4", "run-3"] and cursor
    rest, end = store.evals.list_runs("acme", agent="support", limit=10, cursor=cursor)
    assert [item.run_id for item in rest] == ["run-2", "run-1", "run-0"] and end is None
    by_stage, _ = store.evals.list_runs("acme", stage="pre-merge", passed=False)
    assert [item.run_id for item in by_stage] == ["run-1"]
    by_version, _ = store.evals.list_runs("acme", agent="support", version="1.0.0")
    assert len(by_version) == 5
    assert [i.suite for i in store.evals.list_runs("acme", suite="other")[0]] == ["other"]
    assert store.evals.list_runs("another-project")[0] == []
    with pytest.raises(InvalidInputError, match="needs the agent"):
        store.evals.list_runs("acme", version="1.0.0")
    with pytest.raises(NotFoundError, match=r"no version '3\.0\.0'"):
        store.evals.list_runs("acme", agent="support", version="3.0.0")
    with pytest.raises(InvalidInputError, match="invalid cursor"):
        store.evals.list_runs("acme", cursor="@@@")


def test_a_diff_of_stored_runs_names_regressions_and_warns_across_suites(store: Store) -> None:
    before = make_run({"a": [True, True, True], "b": [True, True, True]}, run_id="before")
    after = make_run(
        {"a": [False, False, False], "b": [True, True, True], "c": [True]},
        run_id="after",
        suite="support-v2",
    )
    for run in (before, after):
        store.evals.save_run("acme", run, author="k", now_ms=1)
    diff, warnings = store.evals.diff("acme", "before", "after")
    assert {case.case_id: case.change for case in diff.cases} == {
        "a": "regressed",
        "b": "unchanged",
        "c": "added",
    }
    assert [w.split(";")[0] for w in warnings] == [
        "the runs are of different suites ('support' and 'support-v2')"
    ]
    with pytest.raises(NotFoundError, match="no eval run 'nope'"):
        store.evals.diff("acme", "before", "nope")


def test_require_passing_gate_refuses_a_failed_version_unless_forced_and_audits_it(
    store: Store,
) -> None:
    config = example_config()
    version = push_version(store, config, label="1.0.0")
    assert require_passing_gate(store, "acme", "support", "1.0.0").status == "unknown"
    with pytest.raises(GateFailedError, match="no eval gate verdict at any stage"):
        require_passing_gate(store, "acme", "support", "1.0.0", require_verdict=True)
    failing = make_run({"a": [False]}, config=config, gate_passed=False, run_id="bad-run")
    store.evals.save_run("acme", failing, author="k", now_ms=1)
    with pytest.raises(GateFailedError) as refused:
        require_passing_gate(store, "acme", "support", "1.0.0", purpose="experiment")
    message = str(refused.value)
    assert "version 1.0.0" in message and "stage 'post-merge' in run bad-run" in message
    assert "orders pass^1 0.00 < 0.9" in message and "refusing to start the experiment" in message
    # Other stages only: the failed one is not looked at.
    assert require_passing_gate(store, "acme", "support", "1.0.0", stages=["replay"]).status == (
        "failed"
    )
    before = len(store.configs.audit("acme"))
    with pytest.raises(GateFailedError):
        require_passing_gate(store, "acme", "support", "1.0.0", force_reason="   ")
    assert len(store.configs.audit("acme")) == before  # a blank reason is no reason
    gate = require_passing_gate(
        store,
        "acme",
        "support",
        "1.0.0",
        force_reason="hotfix, flaky judge",
        author="key-ops",
        purpose="rollout",
        clock=FakeClock(42_000),
    )
    assert gate.status == "failed" and gate.version_hash == version.hash
    entry = store.configs.audit("acme")[-1]
    assert (entry.action, entry.key_id, entry.after_hash, entry.created_ms) == (
        "approve",
        "key-ops",
        version.hash,
        42_000,
    )
    assert entry.detail["gate_override"] == {
        "purpose": "rollout",
        "reason": "hotfix, flaky judge",
        "failed_stages": {"post-merge": "bad-run"},
        "missing_verdict": False,
    }
    assert all(report.ok for report in store.configs.verify("acme"))


def test_the_gate_of_an_unknown_version_or_agent_is_not_found(store: Store) -> None:
    push_version(store, example_config(), label="1.0.0")
    with pytest.raises(NotFoundError):
        store.evals.gate_verdict("acme", "support", "4.0.0")
    with pytest.raises(NotFoundError):
        require_passing_gate(store, "acme", "nobody", "1.0.0")


def test_a_store_sink_keeps_a_suite_run_and_its_verdict(store: Store) -> None:
    from tests.evals.stored_helpers import EXAMPLES
    from tuneloop.evals import load_suite, run_suite_sync
    from tuneloop.evals.store_sink import StoreSink

    config = example_config()
    push_version(store, config, label="1.0.0")
    sink = StoreSink(store, "acme", author="ci", clock=FakeClock(7_000))
    suite = load_suite(EXAMPLES / "support.yaml")
    run = run_suite_sync(suite, stage="pre-merge", config=config, sink=sink, progress=False)
    assert sink.error is None and sink.saved is not None and sink.saved.created
    assert sink.saved.summary.created_ms == 7_000 and sink.saved.summary.uploaded_by == "ci"
    assert store.evals.gate_verdict("acme", "support", "1.0.0").stage("pre-merge") == (
        sink.saved.verdict
    )
    assert store.evals.get_run("acme", run.run_id).run.to_dict() == run.to_dict()
    refused = StoreSink(store, "acme", version="9.9.9")
    run_suite_sync(suite, stage="pre-merge", config=config, sink=refused, progress=False)
    assert refused.saved is None and isinstance(refused.error, NotFoundError)


def test_a_forced_override_inside_the_callers_transaction_commits_or_rolls_back_with_it(
    store: Store,
) -> None:
    from tuneloop.store.configs import write_tx

    config = example_config()
    push_version(store, config, label="1.0.0")
    store.evals.save_run(
        "acme", make_run({"a": [False]}, config=config, gate_passed=False), author="k", now_ms=1
    )
    before = len(store.configs.audit("acme"))
    with (
        pytest.raises(RuntimeError, match="the rollout insert failed"),
        write_tx(store.engine, "acme") as conn,
    ):
        require_passing_gate(store, "acme", "support", "1.0.0", "hotfix", conn=conn)
        raise RuntimeError("the rollout insert failed")
    assert len(store.configs.audit("acme")) == before  # rolled back with the caller
    with write_tx(store.engine, "acme") as conn:
        gate = require_passing_gate(store, "acme", "support", "1.0.0", "hotfix", conn=conn)
    assert gate.status == "failed"
    assert store.configs.audit("acme")[-1].detail["gate_override"]["reason"] == "hotfix"
    assert all(report.ok for report in store.configs.verify("acme"))

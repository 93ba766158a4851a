"""Versions, channels, the audit chain, flags and allocations on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tuneloop.config.allocations import AllocationSpec
from tuneloop.config.bundle import apply_bundle
from tuneloop.config.loading import load_bundle_file, load_config_file
from tuneloop.config.model import AgentConfig
from tuneloop.config.state import Flag
from tuneloop.errors import ConflictError, InvalidInputError, NotFoundError
from tuneloop.store import Store
from tuneloop.store.schema import (
    config_audit,
    config_audit_heads,
    config_channels,
    config_versions,
    feature_flags,
    state_allocations,
)

EXAMPLES = Path(__file__).parents[2] / "examples" / "support"
TABLES = (config_versions, config_channels, config_audit, feature_flags, state_allocations)


def counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in TABLES
        }


@pytest.fixture
def base() -> AgentConfig:
    return load_config_file(EXAMPLES / "agent.yaml")


@pytest.fixture
def improved(base: AgentConfig) -> AgentConfig:
    return apply_bundle(base, load_bundle_file(EXAMPLES / "bundle.yaml"))


def push(store: Store, config: AgentConfig, *, agent: str = "support", now: int = 1000,
         **kwargs: Any) -> Any:  # fmt: skip
    version, _ = store.configs.create_version(
        "acme", agent, config, author="key1", now_ms=now, **kwargs
    )
    return version


def test_the_first_version_becomes_production_and_pushing_it_again_changes_nothing(
    store: Store, base: AgentConfig
) -> None:
    v1, created = store.configs.create_version("acme", "support", base, author="k", now_ms=5)
    assert created and v1.label == "1.0.0" and v1.parents == ()
    assert [(c.channel, c.version) for c in store.configs.list_channels("acme", "support")] == [
        ("production", v1.hash)
    ]
    before = counts(store)
    again, created = store.configs.create_version("acme", "support", base, author="k", now_ms=6)
    assert not created and again.hash == v1.hash and again.created_ms == 5
    assert counts(store) == before


def test_versions_are_named_by_hash_prefix_label_or_channel(
    store: Store, base: AgentConfig, improved: AgentConfig
) -> None:
    v1 = push(store, base)
    v2 = push(store, improved, now=2000, message="bundle")
    assert v2.label == "1.1.0" and v2.parents == (v1.hash,)
    for ref in (v2.hash, v2.hash[:8], "1.1.0"):
        assert store.configs.get_version("acme", "support", ref).hash == v2.hash
    assert store.configs.get_version("acme", "support", "production").hash == v1.hash
    assert store.configs.get_version("acme", "support", "1.1.0").config == improved.to_data()
    with pytest.raises(InvalidInputError, match="at least 8 hex characters"):
        store.configs.get_version("acme", "support", v2.hash[:7])
    with pytest.raises(NotFoundError, match=r"agent 'support' has no version '9\.9\.9'"):
        store.configs.get_version("acme", "support", "9.9.9")
    with pytest.raises(NotFoundError, match="agent 'support' has no channel 'staging'"):
        store.configs.get_version("acme", "support", "staging")
    assert [v.label for v in store.configs.list_versions("acme", "support")] == ["1.1.0", "1.0.0"]


def test_an_ambiguous_prefix_lists_the_candidates(store: Store) -> None:
    # Real sha256s sharing 8 hex characters would take ~2**16 versions; write two rows.
    rows = [
        {"project_id": "acme", "agent": "support", "version_hash": "abcdef12" + c * 56,
         "label": label, "parents": "[]", "author": "k", "message": "", "created_ms": 1,
         "config": "{}"}
        for c, label in (("0", "1.0.0"), ("1", "1.1.0"))
    ]  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(config_versions.insert(), rows)
    with pytest.raises(InvalidInputError) as caught:
        store.configs.get_version("acme", "support", "abcdef12")
    assert str(caught.value) == (
        "'abcdef12' names several versions of 'support': abcdef120000 (1.0.0), "
        "abcdef121111 (1.1.0); say more"
    )
    assert store.configs.get_version("acme", "support", "abcdef121").label == "1.1.0"


def test_labels_are_unique_per_agent(
    store: Store, base: AgentConfig, improved: AgentConfig
) -> None:
    push(store, base, label="2.0.0")
    before = counts(store)
    with pytest.raises(ConflictError, match=r"already has a version 2\.0\.0"):
        push(store, improved, label="2.0.0")
    with pytest.raises(InvalidInputError, match="invalid version label 'v2'"):
        push(store, improved, label="v2")
    assert counts(store) == before
    assert push(store, improved).label == "2.1.0"
    # Another agent may reuse the label.
    assert push(store, improved, agent="billing", label="2.0.0").label == "2.0.0"


def test_a_claimed_hash_must_match_the_content(store: Store, base: AgentConfig) -> None:
    with pytest.raises(InvalidInputError, match="does not match the config's content"):
        push(store, base, expected_hash="0" * 64)
    assert counts(store) == dict.fromkeys(counts(store), 0)


def test_moves_are_compare_and_set(store: Store, base: AgentConfig, improved: AgentConfig) -> None:
    v1, v2 = push(store, base), push(store, improved, now=2000)
    moved, changed = store.configs.move_channel(
        "acme", "support", "production", "1.1.0", expected=v1.hash, author="k2", now_ms=3000
    )
    assert changed and moved.version == v2.hash and moved.updated_by == "k2"
    before = counts(store)
    with pytest.raises(ConflictError, match=r"now points at 1.1.0 .*not '1.0.0'"):
        store.configs.move_channel(
            "acme", "support", "production", "1.0.0", expected="1.0.0", author="k3", now_ms=4000
        )
    with pytest.raises(ConflictError, match=r"already points at 1\.1\.0"):
        store.configs.move_channel(
            "acme", "support", "production", "1.0.0", expected=None, author="k3", now_ms=4000
        )
    # A channel name always matches itself, so it cannot stand for what the caller saw.
    with pytest.raises(InvalidInputError, match="cannot name a version by 'production'"):
        store.configs.move_channel(
            "acme", "support", "production", "1.0.0", expected="production", author="k3",
            now_ms=4000,
        )  # fmt: skip
    assert counts(store) == before
    staging, _ = store.configs.move_channel(
        "acme", "support", "staging", "1.0.0", expected=None, author="k3", now_ms=4000
    )
    assert staging.label == "1.0.0"


def test_a_channel_cannot_point_at_another_agents_or_projects_version(
    store: Store, base: AgentConfig, improved: AgentConfig
) -> None:
    push(store, base)
    other = push(store, improved, agent="billing")
    foreign, _ = store.configs.create_version(
        "globex", "support", improved.model_copy(update={"extra": {"x": 1}}), author="g",
        now_ms=1,
    )  # fmt: skip
    before = counts(store)
    with pytest.raises(InvalidInputError, match="belongs to agent 'billing', not 'support'"):
        store.configs.move_channel(
            "acme", "support", "production", other.hash, expected="1.0.0", author="k", now_ms=2
        )
    with pytest.raises(NotFoundError, match="agent 'support' has no version"):
        store.configs.move_channel(
            "acme", "support", "production", foreign.hash, expected="1.0.0", author="k", now_ms=2
        )
    assert counts(store) == before


def test_concurrent_moves_from_the_same_read_let_exactly_one_win(
    store: Store, base: AgentConfig
) -> None:
    v1 = push(store, base)
    targets = [
        push(store, base.model_copy(update={"extra": {"n": n}}), now=2 + n) for n in range(6)
    ]
    results: list[str] = []
    barrier = threading.Barrier(len(targets))

    def move(version: str) -> None:
        barrier.wait()
        try:
            store.configs.move_channel(
                "acme", "support", "production", version, expected=v1.hash, author="k", now_ms=9
            )
            results.append("moved")
        except ConflictError:
            results.append("conflict")

    threads = [threading.Thread(target=move, args=(t.hash,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["conflict"] * 5 + ["moved"]
    (report,) = store.configs.verify("acme")
    assert report.ok, report.problems


def test_rollback_steps_back_through_history(
    store: Store, base: AgentConfig, improved: AgentConfig
) -> None:
    v1 = push(store, base)
    v2 = push(store, improved, now=2000)
    v3 = push(store, improved.model_copy(update={"extra": {"v": 3}}), now=3000)
    for version, expected, now in ((v2, v1, 4000), (v3, v2, 5000)):
        store.configs.move_channel(
            "acme", "support", "production", version.hash, expected=expected.hash,
            author="k", now_ms=now,
        )  # fmt: skip
    configs = store.configs
    assert configs.previous_version("acme", "support", "production") == v2.hash
    configs.move_channel("acme", "support", "production", v2.hash, expected=v3.hash,
                         author="k", now_ms=6000, rollback=True)  # fmt: skip
    assert configs.previous_version("acme", "support", "production") == v1.hash
    with pytest.raises(InvalidInputError, match="a rollback goes back"):
        configs.move_channel("acme", "support", "production", v3.hash, expected=v2.hash,
                             author="k", now_ms=7000, rollback=True)  # fmt: skip
    configs.move_channel("acme", "support", "production", v1.hash, expected=v2.hash,
                         author="k", now_ms=8000, rollback=True)  # fmt: skip
    assert configs.previous_version("acme", "support", "production") is None
    actions = [(e.action, e.before_hash, e.after_hash) for e in configs.audit("acme")
               if e.channel == "production"]  # fmt: skip
    assert actions == [
        ("move", None, v1.hash),
        ("move", v1.hash, v2.hash),
        ("move", v2.hash, v3.hash),
        ("rollback", v3.hash, v2.hash),
        ("rollback", v2.hash, v1.hash),
    ]


def test_the_audit_chain_verifies_and_catches_each_kind_of_tampering(
    store: Store, base: AgentConfig, improved: AgentConfig
) -> None:
    v1, v2 = push(store, base), push(store, improved, now=2000)
    store.configs.move_channel(
        "acme", "support", "production", v2.hash, expected=v1.hash, author="k", now_ms=3000
    )
    store.configs.approve_version("acme", "support", "1.1.0", author="reviewer", now_ms=2500)
    (report,) = store.configs.verify()
    assert report.ok and report.rows == 5, report.problems
    audit, versions = config_audit.c, config_versions.c

    def tamper(statement: Any) -> list[str]:
        with store.engine.begin() as conn:
            conn.execute(statement)
        (found,) = store.configs.verify("acme")
        return list(found.problems)

    # An edited row no longer matches its hash.
    problems = tamper(config_audit.update().where(audit.seq == 3).values(key_id="mallory"))
    assert problems == ["row 3 (create support): its content does not match its hash; "
                        "the row was edited"]  # fmt: skip
    tamper(config_audit.update().where(audit.seq == 3).values(key_id="key1"))
    assert store.configs.verify("acme")[0].ok
    # An edited version no longer hashes to its id.
    edited = sa.func.replace(versions.config, '"temperature":0.3', '"temperature":1.9')
    problems = tamper(
        config_versions.update().where(versions.label == "1.1.0").values(config=edited)
    )
    assert problems == [f"version {v2.hash[:12]} (1.1.0) of agent 'support': its stored config "
                        "does not hash to its id; the config was edited"]  # fmt: skip
    restored = sa.func.replace(versions.config, '"temperature":1.9', '"temperature":0.3')
    tamper(config_versions.update().where(versions.label == "1.1.0").values(config=restored))
    assert store.configs.verify("acme")[0].ok
    # A channel moved behind the audit log's back.
    problems = tamper(config_channels.update().values(version_hash=v1.hash))
    assert problems == [f"channel 'production' of agent 'support' points at {v1.hash[:12]}, "
                        "which no audited move put there"]  # fmt: skip
    # A deleted row breaks the sequence and the link.
    problems = tamper(config_audit.delete().where(audit.seq == 2))
    assert "row 3: expected row 2 here; rows are missing or reordered" in problems
    assert any(p.startswith("row 3: prev_hash does not match") for p in problems)


def test_cutting_the_tail_of_the_chain_is_detected(store: Store, base: AgentConfig) -> None:
    push(store, base)
    with store.engine.begin() as conn:
        conn.execute(config_audit.delete().where(config_audit.c.seq == 2))
    (report,) = store.configs.verify()
    assert report.problems[0] == (
        "the chain ends at row 1 but the recorded head is row 2; rows were removed from or "
        "added to the end"
    )
    with store.engine.begin() as conn:
        heads = conn.execute(sa.select(config_audit_heads)).all()
    assert len(heads) == 1


def test_flags_are_stored_audited_and_in_the_state_document(
    store: Store, base: AgentConfig
) -> None:
    repo = store.agent_state
    empty = repo.state("acme", "support", now_ms=1)
    assert empty.production is None and empty.flags == [] and empty.allocations == []
    push(store, base)
    flag = Flag(key="new_checkout", salt="s1", percentage=25.0)
    assert repo.put_flag("acme", "support", flag, author="k", now_ms=2) == (flag, True)
    assert repo.put_flag("acme", "support", flag, author="k", now_ms=3) == (flag, False)
    state = repo.state("acme", "support", now_ms=4)
    assert state.flags == [flag]
    assert state.production is not None and state.production.label == "1.0.0"
    assert state.production.config == base.to_data()
    changed = flag.model_copy(update={"percentage": 50.0})
    repo.put_flag("acme", "support", changed, author="k", now_ms=5)
    assert repo.state("acme", "support", now_ms=6).etag != state.etag
    repo.delete_flag("acme", "support", "new_checkout", author="k", now_ms=7)
    with pytest.raises(NotFoundError, match="has no flag 'new_checkout'"):
        repo.delete_flag("acme", "support", "new_checkout", author="k", now_ms=8)
    actions = [e.action for e in store.configs.audit("acme")]
    assert actions == ["create", "move", "flag_set", "flag_set", "flag_delete"]
    assert store.configs.verify("acme")[0].ok


def test_the_etag_ignores_the_generation_time(store: Store, base: AgentConfig) -> None:
    push(store, base)
    first = store.agent_state.state("acme", "support", now_ms=1)
    second = store.agent_state.state("acme", "support", now_ms=999)
    assert first.etag == second.etag and first.generated_ms != second.generated_ms


def test_allocations_embed_their_versions_configs(
    store: Store, base: AgentConfig, improved: AgentConfig
) -> None:
    v1, v2 = push(store, base), push(store, improved, now=2)
    spec = AllocationSpec(
        kind="experiment", key="exp-router", salt="salt-1", unit_type="session",
        variants=[{"name": "control", "weight": 0.5, "version": v1.hash},
                  {"name": "treatment", "weight": 0.5, "version": v2.hash}],
    )  # fmt: skip
    store.agent_state.put_allocation("acme", "support", spec, author="exp", now_ms=3)
    state = store.agent_state.state("acme", "support", now_ms=4)
    (allocation,) = state.allocations
    assert (allocation.key, allocation.salt, allocation.unit_type) == ("exp-router", "salt-1",
                                                                       "session")  # fmt: skip
    assert [v.version.config for v in allocation.variants] == [base.to_data(), improved.to_data()]
    assert store.agent_state.list_allocations("acme", "support") == [spec]
    assert store.agent_state.delete_allocation(
        "acme", "support", "experiment", "exp-router", author="exp", now_ms=5
    )
    assert store.agent_state.state("acme", "support", now_ms=6).allocations == []


def test_an_allocation_must_use_the_agents_own_versions(
    store: Store, base: AgentConfig, improved: AgentConfig
) -> None:
    push(store, base)
    other = push(store, improved, agent="billing")
    spec = AllocationSpec(
        kind="rollout", key="r1", salt="s",
        variants=[{"name": "candidate", "weight": 1.0, "version": other.hash}],
    )  # fmt: skip
    before = counts(store)
    with pytest.raises(InvalidInputError, match="belongs to agent 'billing'"):
        store.agent_state.put_allocation("acme", "support", spec, author="r", now_ms=1)
    assert counts(store) == before
    with pytest.raises(ValueError, match="variant weights must sum to 1"):
        AllocationSpec(kind="rollout", key="r", salt="s",
                       variants=[{"name": "a", "weight": 0.3, "version": other.hash}])  # fmt: skip


def test_list_agents_shows_versions_and_channels(
    store: Store, base: AgentConfig, improved: AgentConfig
) -> None:
    push(store, base)
    push(store, improved, now=2)
    push(store, base, agent="billing")
    assert store.configs.list_agents("acme") == [
        {"agent": "billing", "versions": 1, "latest_ms": 1000,
         "channels": {"production": "1.0.0"}},
        {"agent": "support", "versions": 2, "latest_ms": 1000,
         "channels": {"production": "1.0.0"}},
    ]  # fmt: skip
    assert store.configs.list_agents("globex") == []

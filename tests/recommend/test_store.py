"""Reading windows and keeping recommendations, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.recommend.traffic import AGENT, PROJECT, demo_config, send_demo_traffic
from tuneloop.analysis.recommend import Discarded, Finding, Impact, Report
from tuneloop.analysis.recommend.findings import fingerprint
from tuneloop.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError
from tuneloop.store import Store
from tuneloop.store.recommend_reads import busiest_version, read_window
from tuneloop.store.recommendations import rec_id_of


def test_window_reads_back_what_the_sdk_sent(store: Store, tmp_path: Path) -> None:
    store.keys.ensure_project(PROJECT, now_ms=0)
    traffic = send_demo_traffic(store, runs=150, seed=5, faulty=True, state_dir=str(tmp_path))
    other = send_demo_traffic(
        store, runs=40, seed=6, faulty=False, state_dir=str(tmp_path), start_ms=traffic.start_ms
    )
    assert (
        busiest_version(store.engine, PROJECT, AGENT, since_ms=0, until_ms=2**62) == traffic.version
    )
    window = read_window(
        store.engine, PROJECT, AGENT, version=traffic.version, since_ms=0, until_ms=2**62
    )
    usage = store.queries.usage(PROJECT)
    assert len(window.runs) == 150 and usage["runs"] == 190
    assert all(r.weight == 1.0 for r in window.runs)
    assert [r.started_ms for r in window.runs] == sorted(
        (r.started_ms for r in window.runs), reverse=True
    )
    assert len(window.tool_calls) == usage["tool_calls"] - len(
        read_window(
            store.engine, PROJECT, AGENT, version=other.version, since_ms=0, until_ms=2**62
        ).tool_calls
    )
    routers = [s for s in window.spans if s.decision_step == "router"]
    assert len(routers) == 150 and all(s.input_hash and s.input_text for s in routers)
    corrected = {r.trace_id for r in window.runs if r.corrections}
    assert corrected and all(
        c.step == "router" and c.value for r in window.runs for c in r.corrections
    )
    assert {s.tool for s in window.spans if s.kind == "tool"} <= {
        "lookup_order",
        "issue_refund",
        "search_policy",
        "get_account",
    }
    assert all(f.name == "thumbs" for f in window.feedback) and window.feedback
    # Bounded: the most recent runs only, and spans of the most recent of those.
    capped = read_window(
        store.engine,
        PROJECT,
        AGENT,
        version=traffic.version,
        since_ms=0,
        until_ms=2**62,
        max_runs=100,
        max_span_runs=30,
    )
    assert capped.runs_capped and len(capped.runs) == 100 and capped.runs == window.runs[:100]
    assert capped.span_runs == 30
    assert {c.trace_id for c in capped.tool_calls} <= {r.trace_id for r in capped.runs}


def test_sampled_runs_carry_their_weight(store: Store, tmp_path: Path) -> None:
    store.keys.ensure_project(PROJECT, now_ms=0)
    traffic = send_demo_traffic(
        store, runs=400, seed=8, faulty=True, state_dir=str(tmp_path), sample_rate=0.25
    )
    window = read_window(
        store.engine, PROJECT, AGENT, version=traffic.version, since_ms=0, until_ms=2**62
    )
    assert 50 <= len(window.runs) <= 150  # 100 expected
    assert {r.weight for r in window.runs} == {4.0}
    assert window.mean_sample_rate == pytest.approx(0.25)


# --- the repository ------------------------------------------------------------------------


def _finding(
    kind: str = "lower_temperature", *, headline: float = 0.12, value: float = 0.0
) -> Finding:
    change = [{"op": "replace", "path": "/params/temperature", "value": value}]
    return Finding(
        type="prompt_optimization",
        target="router",
        kind=kind,
        title=f"Lower the temperature ({kind})",
        evidence={"example_trace_ids": ["a" * 32]},
        change=tuple(change),
        impact=Impact("router misclassification rate", headline, 0.01, "ratio", "sampling flips"),
        confidence=0.9,
        headline=headline,
        fingerprint=fingerprint(
            AGENT, "prompt_optimization", "router", kind, ["/params/temperature"]
        ),
    )


def _report(version: str, *findings: Finding, discarded: tuple[Discarded, ...] = ()) -> Report:
    return Report(AGENT, version, 0, 1, 500, 500.0, findings=findings, discarded=discarded)


def _stored_version(store: Store) -> str:
    version, _ = store.configs.create_version(
        PROJECT, AGENT, demo_config(faulty=True), author="test", now_ms=1
    )
    return version.hash


def test_refresh_opens_updates_expires_and_lists(store: Store) -> None:
    version = _stored_version(store)
    saved = store.recommendations.save_report(PROJECT, _report(version, _finding()), now_ms=10)
    assert saved.opened == 1
    (item,) = store.recommendations.list_for(PROJECT, AGENT)
    assert item["id"] == rec_id_of(PROJECT, AGENT, version, _finding().fingerprint)
    assert (item["status"], item["version"], item["target"]) == ("open", version, "router")
    assert item["expected_impact"]["text"].startswith(
        "router misclassification rate 12.0 % → ~1.0 %"
    )
    again = store.recommendations.save_report(
        PROJECT, _report(version, _finding(headline=0.13)), now_ms=20
    )
    assert (again.opened, again.updated) == (0, 1)
    assert store.recommendations.get(PROJECT, AGENT, item["id"])["headline"] == 0.13
    gone = store.recommendations.save_report(PROJECT, _report(version), now_ms=30)
    assert gone.expired == 1
    assert store.recommendations.list_for(PROJECT, AGENT) == []
    assert store.recommendations.list_for(PROJECT, AGENT, status="expired")[0]["id"] == item["id"]
    back = store.recommendations.save_report(PROJECT, _report(version, _finding()), now_ms=40)
    assert (
        back.updated == 1 and store.recommendations.list_for(PROJECT, AGENT)[0]["status"] == "open"
    )
    with pytest.raises(InvalidInputError, match="unknown status 'done'"):
        store.recommendations.list_for(PROJECT, AGENT, status="done")  # type: ignore[arg-type]


def test_a_dismissed_finding_stays_dismissed_until_it_worsens_by_half(store: Store) -> None:
    version = _stored_version(store)
    store.recommendations.save_report(PROJECT, _report(version, _finding(headline=0.10)), now_ms=10)
    rec_id = store.recommendations.list_for(PROJECT, AGENT)[0]["id"]
    with pytest.raises(InvalidInputError, match="needs a reason"):
        store.recommendations.dismiss(PROJECT, AGENT, rec_id, reason="  ", author="k", now_ms=11)
    dismissed = store.recommendations.dismiss(
        PROJECT, AGENT, rec_id, reason="we tune the router by hand", author="k", now_ms=12
    )
    assert (dismissed["status"], dismissed["reason"], dismissed["decided_by"]) == (
        "dismissed",
        "we tune the router by hand",
        "k",
    )
    quiet = store.recommendations.save_report(
        PROJECT, _report(version, _finding(headline=0.14)), now_ms=20
    )
    assert quiet.suppressed == 1 and store.recommendations.list_for(PROJECT, AGENT) == []
    # The dismissal holds on other versions of the agent too.
    other = store.recommendations.save_report(
        PROJECT, _report("another", _finding(headline=0.11)), now_ms=21
    )
    assert other.suppressed == 1 and store.recommendations.list_for(PROJECT, AGENT) == []
    loud = store.recommendations.save_report(
        PROJECT, _report(version, _finding(headline=0.16)), now_ms=30
    )
    assert loud.reopened == 1
    (item,) = store.recommendations.list_for(PROJECT, AGENT)
    assert (item["id"], item["headline"], item["decided_by"]) == (rec_id, 0.16, None)


def test_accept_creates_a_bundle_and_a_candidate_version(store: Store) -> None:
    version = _stored_version(store)
    store.recommendations.save_report(PROJECT, _report(version, _finding()), now_ms=10)
    rec_id = store.recommendations.list_for(PROJECT, AGENT)[0]["id"]
    result = store.recommendations.accept(PROJECT, AGENT, rec_id, author="key1", now_ms=20)
    assert result["created"] and result["base"]["version"] == version
    candidate = store.configs.get_version(PROJECT, AGENT, result["version"]["version"])
    assert candidate.config["params"]["temperature"] == 0.0
    assert candidate.parents == (version,)
    assert candidate.bundle_id == f"rec-{rec_id.removeprefix('rec_')}"
    assert candidate.bundle is not None
    (rec,) = candidate.bundle["recommendations"]
    assert rec["type"] == "prompt_optimization" and rec["evidence"]["recommendation_id"] == rec_id
    item = store.recommendations.get(PROJECT, AGENT, rec_id)
    assert (item["status"], item["candidate_version"], item["bundle_id"]) == (
        "accepted",
        candidate.hash,
        candidate.bundle_id,
    )
    # Production did not move: the candidate waits for the eval gate and an experiment.
    production = store.configs.get_version(PROJECT, AGENT, "production")
    assert production.hash == version
    with pytest.raises(ConflictError, match="is accepted, not open"):
        store.recommendations.accept(PROJECT, AGENT, rec_id, author="key1", now_ms=21)
    with pytest.raises(ConflictError, match="roll that version back"):
        store.recommendations.dismiss(PROJECT, AGENT, rec_id, reason="x", author="k", now_ms=22)
    refreshed = store.recommendations.save_report(PROJECT, _report(version, _finding()), now_ms=30)
    assert refreshed.suppressed == 1
    assert store.recommendations.get(PROJECT, AGENT, rec_id)["status"] == "accepted"


def test_accept_refuses_a_patch_that_does_not_apply_and_changes_nothing(store: Store) -> None:
    version = _stored_version(store)
    broken = Finding(
        type="timeout_adjustment",
        target="ghost",
        kind="raise_timeout",
        title="Raise ghost's timeout",
        evidence={},
        change=({"op": "replace", "path": "/tools/ghost/timeout_ms", "value": 9},),
        impact=Impact("x", 0.1, 0.0, "ratio", "b"),
        confidence=0.9,
        headline=0.1,
        fingerprint="f" * 24,
    )
    store.recommendations.save_report(PROJECT, _report(version, broken), now_ms=10)
    rec_id = store.recommendations.list_for(PROJECT, AGENT)[0]["id"]
    with pytest.raises(ConfigError, match="has no key 'ghost'"):
        store.recommendations.accept(PROJECT, AGENT, rec_id, author="k", now_ms=11)
    assert store.recommendations.get(PROJECT, AGENT, rec_id)["status"] == "open"
    assert len(store.configs.list_versions(PROJECT, AGENT)) == 1


def test_accept_falls_back_to_production_and_needs_some_config(store: Store) -> None:
    store.recommendations.save_report(PROJECT, _report("v1", _finding()), now_ms=10)
    rec_id = store.recommendations.list_for(PROJECT, AGENT)[0]["id"]
    with pytest.raises(NotFoundError, match="tuneloop config push FILE --agent support"):
        store.recommendations.accept(PROJECT, AGENT, rec_id, author="k", now_ms=11)
    production = _stored_version(store)
    result = store.recommendations.accept(PROJECT, AGENT, rec_id, author="k", now_ms=12)
    assert result["base"]["version"] == production
    with pytest.raises(NotFoundError, match="no recommendation 'rec_nope'"):
        store.recommendations.get(PROJECT, AGENT, "rec_nope")


def test_discarded_optimizer_answers_are_kept_with_their_reason(store: Store) -> None:
    discarded = Discarded(
        "prompt_rewrite",
        "router",
        "the answer has 0 <prompt>…</prompt> blocks, not one",
        "d" * 24,
        0.1,
    )
    saved = store.recommendations.save_report(
        PROJECT, _report("v1", discarded=(discarded,)), now_ms=10
    )
    assert saved.discarded == 1
    (item,) = store.recommendations.list_for(PROJECT, AGENT, status="discarded")
    assert item["reason"] == discarded.reason and item["target"] == "router"
    assert store.recommendations.suppressed(PROJECT, AGENT) == {"d" * 24: 0.1}
    listing: list[dict[str, Any]] = store.recommendations.list_for(PROJECT, AGENT, status=None)
    assert [i["status"] for i in listing] == ["discarded"]
    # A provider failure is kept too, but the optimizer is asked again next time.
    failed = Discarded("prompt_rewrite", "system", "optimizer failed: HTTP 503", "e" * 24, 0.1)
    store.recommendations.save_report(PROJECT, _report("v1", discarded=(failed,)), now_ms=11)
    assert "e" * 24 not in store.recommendations.suppressed(PROJECT, AGENT)

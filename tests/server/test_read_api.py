"""Read API: run search filters, cursor pagination, trace trees, health."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.otlp_factory import Api, Run, agent_run, new_trace_id, request, span
from tuneloop import semconv as sc

HOUR_NS = 3600 * 10**9


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[Api]:
    with Api(live_server) as client:
        yield client


def test_health_and_readiness(api: Api) -> None:
    assert api.client.get(f"{api.server.url}/healthz").json() == {"status": "ok"}
    ready = api.client.get(f"{api.server.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": api.server.store.dialect}


# -- filters ------------------------------------------------------------------------------


@pytest.fixture
def runs(api: Api) -> dict[str, Run]:
    now = time.time_ns()
    made = {
        "old": agent_run(
            "alpha",
            start_ns=now - 48 * HOUR_NS,
            version="v1",
            variant="control",
            experiment="prompt-test",
            attrs={"tier": "gold", "seats": 3, "beta": True, "ratio": 0.5},
        ),
        "mid": agent_run(
            "alpha",
            start_ns=now - 2 * HOUR_NS,
            version="v2",
            variant="treatment",
            experiment="prompt-test",
            error="boom",
            attrs={"tier": "silver", "seats": 30, "beta": False},
        ),
        "new": agent_run(
            "beta-agent",
            start_ns=now - 60 * 10**9,
            version="v2",
            outcome="escalated",
            attrs={sc.TL_UNIT_ID: "customer-1", sc.TL_SESSION_ID: "session-1", "tier": "gold"},
        ),
    }
    spans = [s for run in made.values() for s in run.spans]
    assert api.export(request(*spans)).status_code == 200
    return made


def found(api: Api, runs: dict[str, Run], **params: Any) -> list[str]:
    """Which of the named runs a search returns, in the order returned."""
    names = {run.hex: name for name, run in runs.items()}
    return [names[item["trace_id"]] for item in api.json("traces", **params)["items"]]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_filters_by_run_identity(api: Api, runs: dict[str, Run]) -> None:
    assert found(api, runs) == ["new", "mid", "old"]
    assert found(api, runs, agent="alpha") == ["mid", "old"]
    assert found(api, runs, version="v2") == ["new", "mid"]
    assert found(api, runs, variant="control") == ["old"]
    assert found(api, runs, experiment="prompt-test") == ["mid", "old"]
    assert found(api, runs, outcome="failure") == ["mid"]
    assert found(api, runs, outcome="escalated") == ["new"]
    assert found(api, runs, unit_id="customer-1") == ["new"]
    assert found(api, runs, session_id="session-1") == ["new"]
    assert found(api, runs, agent="alpha", version="v2") == ["mid"]
    assert found(api, runs, agent="ALPHA") == []


def test_filters_by_time_as_epoch_iso_or_span_back_from_now(api: Api, runs: dict[str, Run]) -> None:
    now = datetime.now(UTC)
    three_hours_ago_ms = int((now - timedelta(hours=3)).timestamp() * 1000)
    assert found(api, runs, since="24h") == ["new", "mid"]
    assert found(api, runs, since="30m") == ["new"]
    assert found(api, runs, since="7d") == ["new", "mid", "old"]
    assert found(api, runs, since=str(three_hours_ago_ms)) == ["new", "mid"]
    assert found(api, runs, until=iso(now - timedelta(hours=1))) == ["mid", "old"]
    eastern = (now - timedelta(hours=3)).astimezone(timezone(timedelta(hours=-5)))
    assert found(api, runs, since=eastern.isoformat(), until="1h") == ["mid"]


def test_filters_by_attribute_value_of_any_type(api: Api, runs: dict[str, Run]) -> None:
    assert found(api, runs, attr="tier=gold") == ["new", "old"]
    assert found(api, runs, attr="seats=3") == ["old"]
    assert found(api, runs, attr="beta=true") == ["old"]
    assert found(api, runs, attr="beta=false") == ["mid"]
    assert found(api, runs, attr="ratio=0.5") == ["old"]
    assert found(api, runs, attr=f"{sc.SERVICE_NAME}=test-service") == ["new", "mid", "old"]
    assert found(api, runs, attr=["tier=gold", "seats=3"]) == ["old"]
    assert found(api, runs, attr=["tier=gold", "seats=30"]) == []
    assert found(api, runs, attr="tier=") == []
    assert found(api, runs, attr="missing=gold") == []


BAD_SEARCHES: list[tuple[dict[str, str], str]] = [
    ({"since": "yesterday"}, "invalid since 'yesterday'"),
    ({"until": "2026-01-01T00:00:00"}, "needs a time zone"),
    ({"since": "0h"}, "invalid since"),
    ({"attr": "no-equals-sign"}, "use attr=KEY=VALUE"),
    ({"attr": "=value"}, "use attr=KEY=VALUE"),
    ({"cursor": "not a cursor"}, "invalid cursor"),
    ({"cursor": base64.urlsafe_b64encode(b"12:short").decode()}, "invalid cursor"),
    ({"cursor": base64.urlsafe_b64encode(b"x:" + b"a" * 32).decode()}, "invalid cursor"),
    ({"cursor": base64.urlsafe_b64encode(b"12:" + b"g" * 32).decode()}, "invalid cursor"),
]


def test_bad_search_parameters_are_400_with_the_reason(api: Api) -> None:
    for params, reason in BAD_SEARCHES:
        response = api.get("/api/v1/traces", **params)
        assert response.status_code == 400, params
        assert reason in response.json()["error"]["message"], params


def test_page_size_out_of_range_is_422_naming_limit(api: Api) -> None:
    for limit in (0, 501, "many"):
        response = api.get("/api/v1/traces", limit=limit)
        assert response.status_code == 422, limit
        assert response.json()["error"]["message"].startswith("query.limit:"), limit


# -- pagination -------------------------------------------------------------------------


def test_cursor_pagination_walks_every_run_exactly_once(api: Api) -> None:
    base = time.time_ns() - HOUR_NS
    # 120 runs over only 10 distinct start times: ties must not lose or repeat runs.
    made = [agent_run("pager", start_ns=base + (i % 10) * 10**9) for i in range(120)]
    assert api.export(request(*(run.root for run in made))).status_code == 200

    seen: list[dict[str, Any]] = []
    sizes = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 25, "agent": "pager"}
        if cursor:
            params["cursor"] = cursor
        page = api.json("traces", **params)
        sizes.append(len(page["items"]))
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(sizes) < 10, "pagination does not end"

    ids = [item["trace_id"] for item in seen]
    assert sizes == [25, 25, 25, 25, 20]
    assert len(set(ids)) == 120
    assert set(ids) == {run.hex for run in made}
    order = [(item["started_ms"], item["trace_id"]) for item in seen]
    assert order == sorted(order, reverse=True)

    whole = api.json("traces", limit=120, agent="pager")
    assert [item["trace_id"] for item in whole["items"]] == ids
    assert whole["next_cursor"] is None


# -- one trace --------------------------------------------------------------------------


def test_trace_returns_the_span_tree_with_details(api: Api) -> None:
    run = agent_run("tree", llm=[("gpt-4o", 5, 1)], tools=[("lookup", "503")])
    chat = run.children[0]
    nested = span(
        "execute_tool nested",
        trace_id=run.trace_id,
        parent=chat.span_id,
        attrs={sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "nested"},
        events=[(sc.EXCEPTION_EVENT, {sc.EXCEPTION_TYPE: "KeyError"})],
        duration_ms=2.5,
    )
    assert api.export(request(*run.spans, nested)).status_code == 200

    trace = api.json(f"traces/{run.hex.upper()}")
    assert trace["trace_id"] == run.hex
    assert trace["span_count"] == 4
    assert trace["run"]["agent"] == "tree"
    assert trace["run"]["tool_errors"] == 1
    root, chat_node, grandchild, tool_node = trace["spans"]
    assert [s["depth"] for s in trace["spans"]] == [0, 1, 2, 1]
    assert root["span_id"] == run.root.span_id.hex()
    assert root["resource"] == {sc.SERVICE_NAME: "test-service"}
    assert [s["name"] for s in children(trace, root)] == ["chat gpt-4o", "execute_tool lookup"]
    assert root["child_count"] == 2
    assert (tool_node["status"], tool_node["status_message"]) == ("error", "503")
    assert children(trace, chat_node) == [grandchild]
    assert grandchild["parent_span_id"] == chat.span_id.hex()
    assert grandchild["duration_ms"] == pytest.approx(2.5)
    assert grandchild["events"][0]["name"] == sc.EXCEPTION_EVENT
    assert grandchild["events"][0]["attributes"] == {sc.EXCEPTION_TYPE: "KeyError"}
    assert grandchild["child_count"] == 0


def test_trace_without_its_root_yet_lists_orphans_and_no_run(api: Api) -> None:
    run = agent_run(tools=["a", "b"])
    assert api.export(request(*run.children)).status_code == 200
    trace = api.json(f"traces/{run.hex}")
    assert trace["run"] is None
    assert sorted(node["name"] for node in trace["spans"]) == [
        "execute_tool a",
        "execute_tool b",
    ]


def test_unknown_trace_is_404_and_malformed_id_400(api: Api) -> None:
    missing = api.get(f"/api/v1/traces/{new_trace_id().hex()}")
    assert missing.status_code == 404
    assert "no trace" in missing.json()["error"]["message"]
    for bad in ("xyz", "a" * 31, "a" * 33, "g" * 32, "a" * 30 + "%27"):
        response = api.get(f"/api/v1/traces/{bad}")
        assert response.status_code == 400, bad
        assert "32 hex characters" in response.json()["error"]["message"], bad


def children(trace: dict[str, Any], parent: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in trace["spans"] if s["parent_span_id"] == parent["span_id"]]


def test_a_deep_chain_of_spans_can_be_read(api: Api) -> None:
    trace_id = new_trace_id()
    chain = [span("step-0", trace_id=trace_id)]
    for depth in range(1, 150):
        chain.append(span(f"step-{depth}", trace_id=trace_id, parent=chain[-1].span_id))
    assert api.export(request(*chain)).status_code == 200
    response = api.get(f"/api/v1/traces/{trace_id.hex()}")
    assert response.status_code == 200
    trace = response.json()
    assert trace["span_count"] == 150
    assert [s["name"] for s in trace["spans"]] == [f"step-{depth}" for depth in range(150)]
    assert [s["depth"] for s in trace["spans"]] == list(range(150))


def test_spans_in_a_parent_cycle_are_still_listed(api: Api) -> None:
    trace_id = new_trace_id()
    first = span("first", trace_id=trace_id)
    second = span("second", trace_id=trace_id, parent=first.span_id)
    first.parent_span_id = second.span_id
    assert api.export(request(first, second)).status_code == 200
    trace = api.json(f"traces/{trace_id.hex()}")
    assert sorted(s["name"] for s in trace["spans"]) == ["first", "second"]

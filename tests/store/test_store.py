"""Ingest storage on SQLite and PostgreSQL: one transaction, late roots, retries, feedback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.otlp_factory import agent_run, request, span, stored_counts
from tuneloop import semconv as sc
from tuneloop.errors import InvalidInputError, NotFoundError, StoreError
from tuneloop.settings import DEFAULT_PRICES
from tuneloop.store.ingest import WriteResult, prepare
from tuneloop.store.queries import RunFilter
from tuneloop.store.schema import tool_calls
from tuneloop.telemetry.normalize import Normalizer
from tuneloop.telemetry.pricing import PriceTable

PROJECT = "acme"
GPT_4O = DEFAULT_PRICES["gpt-4o"]

Send = Callable[..., WriteResult]


def usd(tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * GPT_4O.input_per_1k + tokens_out * GPT_4O.output_per_1k) / 1000


@pytest.fixture
def send(store: Any) -> Iterator[Send]:
    """Normalize spans and write them through the store's ingest writer, as the server does."""
    normalizer = Normalizer(prices=PriceTable(DEFAULT_PRICES))
    store.writer.start()

    def write(*spans: Span, project: str = PROJECT) -> WriteResult:
        batch = normalizer.normalize(request(*spans, service="svc"))
        assert batch.rejected.count == 0
        result: WriteResult = store.writer.submit(prepare(project, batch.spans)).result(30)
        return result

    yield write
    store.writer.stop()


def only_run(store: Any, project: str = PROJECT) -> dict[str, Any]:
    items, _ = store.queries.list_runs(project, RunFilter())
    (item,) = items
    return dict(item)


def test_one_request_stores_its_spans_one_run_row_and_one_row_per_tool_call(
    store: Any, send: Send
) -> None:
    run = agent_run(
        "support-bot",
        version="v3",
        llm=[("gpt-4o", 1000, 200), ("gpt-4o", 500, 100)],
        tools=["search", ("crm", "503"), ("parse", "ValueError")],
    )
    assert send(*run.spans) == WriteResult(spans_written=6, duplicates=0)

    assert stored_counts(store, PROJECT) == {
        "spans": 6,
        "runs": 1,
        "tool_calls": 3,
        "feedback": 0,
    }
    facts = only_run(store)
    assert facts["trace_id"] == run.hex
    assert (facts["agent"], facts["version"], facts["outcome"]) == ("support-bot", "v3", "success")
    assert (facts["llm_calls"], facts["input_tokens"], facts["output_tokens"]) == (2, 1500, 300)
    assert facts["cost_usd"] == pytest.approx(usd(1500, 300))
    assert (facts["tool_calls"], facts["tool_errors"], facts["span_count"]) == (3, 2, 6)
    assert facts["duration_ms"] == pytest.approx(100.0)
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(tool_calls.c.tool, tool_calls.c.status, tool_calls.c.retryable)
            .where(tool_calls.c.project_id == PROJECT)
            .order_by(tool_calls.c.tool)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("crm", "error", True),
        ("parse", "error", False),
        ("search", "success", False),
    ]


def _expected_facts(run_hex: str) -> dict[str, Any]:
    return {
        "trace_id": run_hex,
        "agent": "late-bot",
        "outcome": "escalated",
        "llm_calls": 1,
        "input_tokens": 400,
        "output_tokens": 40,
        "tool_calls": 2,
        "tool_errors": 1,
        "span_count": 4,
    }


def test_root_arriving_after_its_children_still_completes_the_run(store: Any, send: Send) -> None:
    run = agent_run(
        "late-bot", outcome="escalated", llm=[("gpt-4o", 400, 40)], tools=["a", ("b", "429")]
    )
    send(*run.children)
    # Without its root the run is not listed yet, though its spans are kept.
    assert store.queries.list_runs(PROJECT, RunFilter())[0] == []
    assert store.queries.usage(PROJECT)["runs"] == 0
    assert store.queries.get_trace(PROJECT, run.hex)["run"] is None

    send(run.root)
    facts = only_run(store)
    assert {key: facts[key] for key in _expected_facts(run.hex)} == _expected_facts(run.hex)
    assert facts["cost_usd"] == pytest.approx(usd(400, 40))
    assert store.queries.usage(PROJECT) == {"spans": 4, "runs": 1, "tool_calls": 2}


def test_root_arriving_first_gives_the_same_facts(store: Any, send: Send) -> None:
    run = agent_run(
        "late-bot", outcome="escalated", llm=[("gpt-4o", 400, 40)], tools=["a", ("b", "429")]
    )
    send(run.root)
    send(run.children[0])
    send(*run.children[1:])
    facts = only_run(store)
    assert {key: facts[key] for key in _expected_facts(run.hex)} == _expected_facts(run.hex)


def test_spans_sent_again_by_a_retrying_exporter_are_not_counted_twice(
    store: Any, send: Send
) -> None:
    run = agent_run(llm=[("gpt-4o", 100, 10)], tools=["search", ("crm", "timeout")])
    send(*run.spans)
    before = (only_run(store), stored_counts(store, PROJECT))

    assert send(*run.spans) == WriteResult(spans_written=0, duplicates=4)
    assert (only_run(store), stored_counts(store, PROJECT)) == before

    # A retry that carries one new span adds exactly that span.
    extra = span(
        "execute_tool late",
        trace_id=run.trace_id,
        parent=run.root.span_id,
        attrs={sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, sc.GEN_AI_TOOL_NAME: "late"},
    )
    assert send(*run.spans, extra) == WriteResult(spans_written=1, duplicates=4)
    facts = only_run(store)
    assert (facts["tool_calls"], facts["input_tokens"], facts["span_count"]) == (3, 100, 5)


def test_the_same_span_twice_in_one_request_is_stored_once(store: Any, send: Send) -> None:
    run = agent_run(tools=["search"])
    assert send(*run.spans, *run.spans) == WriteResult(spans_written=2, duplicates=2)
    assert only_run(store)["tool_calls"] == 1


def test_root_usage_is_used_only_when_the_run_has_no_llm_spans(store: Any, send: Send) -> None:
    agent_totals = {
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
    }
    with_calls = agent_run("with-calls", llm=[("gpt-4o", 900, 90)], attrs=agent_totals)
    totals_only = agent_run("totals-only", attrs=agent_totals)
    send(*with_calls.spans, *totals_only.spans)
    items, _ = store.queries.list_runs(PROJECT, RunFilter())
    by_agent = {item["agent"]: item for item in items}

    assert (by_agent["with-calls"]["input_tokens"], by_agent["with-calls"]["output_tokens"]) == (
        900,
        90,
    )
    assert by_agent["with-calls"]["cost_usd"] == pytest.approx(usd(900, 90))
    assert (by_agent["totals-only"]["input_tokens"], by_agent["totals-only"]["output_tokens"]) == (
        1000,
        100,
    )
    assert by_agent["totals-only"]["cost_usd"] == pytest.approx(usd(1000, 100))


def test_root_usage_is_not_added_to_llm_calls_arriving_later(store: Any, send: Send) -> None:
    run = agent_run(
        llm=[("gpt-4o", 900, 90)],
        attrs={sc.GEN_AI_USAGE_INPUT_TOKENS: 1000, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100},
    )
    send(run.root)
    assert only_run(store)["input_tokens"] == 1000
    send(*run.children)
    assert (only_run(store)["input_tokens"], only_run(store)["output_tokens"]) == (900, 90)


@pytest.fixture
def refusing_database(store: Any) -> Iterator[None]:
    """A trigger that makes the database refuse the run row of agent 'refused'."""
    statements = {
        "sqlite": (
            [
                "CREATE TRIGGER refuse_run BEFORE INSERT ON runs WHEN NEW.agent = 'refused' "
                "BEGIN SELECT RAISE(ABORT, 'run refused'); END"
            ],
            ["DROP TRIGGER IF EXISTS refuse_run"],
        ),
        "postgresql": (
            [
                "CREATE FUNCTION refuse_run() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'run refused'; END $$",
                "CREATE TRIGGER refuse_run BEFORE INSERT ON runs FOR EACH ROW "
                "WHEN (NEW.agent = 'refused') EXECUTE FUNCTION refuse_run()",
            ],
            ["DROP TRIGGER IF EXISTS refuse_run ON runs", "DROP FUNCTION IF EXISTS refuse_run()"],
        ),
    }
    create, drop = statements[store.dialect]
    with store.engine.begin() as conn:
        for statement in create:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with store.engine.begin() as conn:
            for statement in drop:
                conn.exec_driver_sql(statement)


@pytest.mark.usefixtures("refusing_database")
def test_spans_and_facts_are_written_in_one_transaction(store: Any) -> None:
    normalizer = Normalizer(prices=PriceTable(DEFAULT_PRICES))
    refused = agent_run("refused", tools=["search"], llm=[("gpt-4o", 1, 1)])
    accepted = agent_run("accepted", tools=["search"])
    store.writer.start()
    try:
        # Queued back to back, so they usually share a group commit.
        bad = store.writer.submit(
            prepare(PROJECT, normalizer.normalize(request(*refused.spans)).spans)
        )
        good = store.writer.submit(
            prepare(PROJECT, normalizer.normalize(request(*accepted.spans)).spans)
        )
        with pytest.raises(StoreError, match="could not store spans") as refusal:
            bad.result(30)
        # The client learns the request failed and may retry; the SQL stays in the log.
        assert "INSERT" not in str(refusal.value) and "refused" not in str(refusal.value)
        assert good.result(30) == WriteResult(spans_written=2, duplicates=0)
    finally:
        store.writer.stop()

    # The refused run's spans and tool call were rolled back with its run row.
    assert stored_counts(store, PROJECT) == {"spans": 2, "runs": 1, "tool_calls": 1, "feedback": 0}
    with pytest.raises(NotFoundError):
        store.queries.get_trace(PROJECT, refused.hex)
    assert only_run(store)["agent"] == "accepted"


def test_projects_do_not_share_spans_even_with_the_same_ids(store: Any, send: Send) -> None:
    run = agent_run("bot", tools=["search"])
    send(*run.spans, project="acme")
    assert send(*run.spans, project="other") == WriteResult(spans_written=2, duplicates=0)
    assert store.queries.usage("acme") == store.queries.usage("other")
    assert store.queries.usage("acme") == {"spans": 2, "runs": 1, "tool_calls": 1}
    with pytest.raises(NotFoundError):
        store.queries.get_trace("nobody", run.hex)


def test_trace_tree_nests_children_under_parents(store: Any, send: Send) -> None:
    run = agent_run(llm=[("gpt-4o", 1, 1)])
    grandchild = span(
        "execute_tool nested",
        trace_id=run.trace_id,
        parent=run.children[0].span_id,
        attrs={sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL, "note": 'it\'s "quoted" 🙂'},
    )
    send(*run.spans, grandchild)
    trace = store.queries.get_trace(PROJECT, run.hex.upper())
    root, chat, tool = trace["spans"]
    assert [s["depth"] for s in trace["spans"]] == [0, 1, 2]
    assert (root["kind"], chat["kind"], tool["kind"]) == ("agent", "llm", "tool")
    assert tool["attributes"]["note"] == 'it\'s "quoted" 🙂'
    assert trace["span_count"] == 3
    assert trace["run"]["trace_id"] == run.hex


def test_feedback_shows_on_its_trace_even_when_given_before_the_trace(
    store: Any, send: Send
) -> None:
    run = agent_run()
    store.add_feedback(
        PROJECT,
        trace_id=run.hex.upper(),
        name="thumbs",
        value=1.0,
        comment="great 👍",
        key_id="k1",
        now_ms=1000,
    )
    send(*run.spans)
    store.add_feedback(
        PROJECT, trace_id=run.hex, name="csat", value=4.5, comment=None, key_id="k1", now_ms=2000
    )
    feedback = store.queries.get_trace(PROJECT, run.hex)["feedback"]
    assert feedback == [
        {"name": "thumbs", "value": 1.0, "comment": "great 👍", "created_ms": 1000},
        {"name": "csat", "value": 4.5, "comment": None, "created_ms": 2000},
    ]
    assert stored_counts(store, "other")["feedback"] == 0


@pytest.mark.parametrize("trace_id", ["abc", "z" * 32, "a" * 31, "a" * 33])
def test_feedback_needs_a_32_hex_trace_id(store: Any, trace_id: str) -> None:
    with pytest.raises(InvalidInputError, match="32 hex characters"):
        store.add_feedback(
            PROJECT, trace_id=trace_id, name="x", value=1, comment=None, key_id="k", now_ms=1
        )


def test_long_run_identity_fits_its_columns_on_every_engine(store: Any, send: Send) -> None:
    run = agent_run(version="v" * 300, variant="b" * 300, experiment="e" * 300)
    send(*run.spans)
    facts = only_run(store)
    assert facts["version"] == "v" * 128
    assert facts["variant"] == "b" * 256
    assert facts["experiment"] == "e" * 256


def test_nul_and_unicode_in_span_text_are_stored_on_every_engine(store: Any, send: Send) -> None:
    run = agent_run("bot\x00🤖", tools=["sé\x00arch"], attrs={"q": "\x00'; DROP TABLE runs; --"})
    send(*run.spans)
    assert only_run(store)["agent"] == "bot\ufffd🤖"
    trace = store.queries.get_trace(PROJECT, run.hex)
    root, tool = trace["spans"]
    assert root["attributes"]["q"] == "\ufffd'; DROP TABLE runs; --"
    assert tool["attributes"][sc.GEN_AI_TOOL_NAME] == "sé\ufffdarch"

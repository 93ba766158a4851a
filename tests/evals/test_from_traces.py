"""Datasets from production: reading runs out of traces, sampling them, writing cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import LiveServer
from tests.evals.production_helpers import Production, Tool, send
from tuneloop import semconv
from tuneloop.cli.main import app
from tuneloop.errors import InvalidInputError
from tuneloop.evals.dataset import load_dataset
from tuneloop.evals.from_traces import parse_where, sample_production_runs, to_case
from tuneloop.evals.production import read_production_run

runner = CliRunner(env={"COLUMNS": "200"})


def trace(spans: list[dict[str, Any]], **facts: Any) -> dict[str, Any]:
    run = {
        "trace_id": "ab" * 16,
        "root_span_id": "r",
        "agent": "support",
        "outcome": "success",
        "duration_ms": 120.0,
        "cost_usd": 0.002,
        "tool_calls": 0,
        "tool_errors": 0,
        **facts,
    }
    return {"trace_id": "ab" * 16, "run": run, "spans": spans, "feedback": []}


def span(span_id: str, kind: str, start: int, **attributes: Any) -> dict[str, Any]:
    return {
        "span_id": span_id,
        "kind": kind,
        "start_ns": start,
        "status": "ok",
        "name": f"{kind} span",
        "attributes": attributes,
        "depth": 0 if span_id == "r" else 1,
    }


def test_genai_messages_give_the_user_text_and_the_last_model_answer() -> None:
    found = read_production_run(
        trace(
            [
                span("r", "agent", 0),
                span(
                    "m1",
                    "llm",
                    1,
                    **{
                        semconv.GEN_AI_INPUT_MESSAGES: json.dumps(
                            [
                                {
                                    "role": "system",
                                    "parts": [{"type": "text", "content": "Be kind."}],
                                },
                                {
                                    "role": "user",
                                    "parts": [{"type": "text", "content": "Refund A-1003"}],
                                },
                            ]
                        ),
                        semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                            [{"role": "assistant", "content": "Checking."}]
                        ),
                    },
                ),
                span(
                    "t1",
                    "tool",
                    2,
                    **{
                        semconv.GEN_AI_TOOL_NAME: "issue_refund",
                        semconv.GEN_AI_TOOL_CALL_ARGUMENTS: '{"order_id": "A-1003"}',
                        semconv.TL_TOOL_STATUS: "error",
                    },
                ),
                span(
                    "m2",
                    "llm",
                    3,
                    **{
                        semconv.GEN_AI_OUTPUT_MESSAGES: [
                            {
                                "role": "assistant",
                                "content": [{"type": "text", "text": "Done: $129.99"}],
                            }
                        ],
                    },
                ),
            ],
            outcome="failure",
            tool_calls=1,
            tool_errors=1,
        )
    )
    assert found is not None
    assert (found.input, found.output, found.outcome) == (
        "Refund A-1003",
        "Done: $129.99",
        "failure",
    )
    assert [(c.name, dict(c.arguments), c.status) for c in found.tool_calls] == [
        ("issue_refund", {"order_id": "A-1003"}, "error")
    ]
    assert (found.latency_ms, found.cost_usd, found.tool_errors) == (120.0, 0.002, 1)


def test_openinference_values_a_conversation_truncation_and_what_is_skipped() -> None:
    oi = read_production_run(
        trace(
            [
                span(
                    "r",
                    "agent",
                    0,
                    **{
                        semconv.OI_INPUT_VALUE: '{"message": "hi", "format": "json"}',
                        semconv.OI_OUTPUT_VALUE: "hello",
                    },
                )
            ]
        )
    )
    assert (
        oi is not None and oi.input == {"message": "hi", "format": "json"} and oi.output == "hello"
    )
    chat = read_production_run(
        trace(
            [
                span(
                    "r",
                    "agent",
                    0,
                    **{
                        semconv.GEN_AI_INPUT_MESSAGES: json.dumps(
                            [
                                {"role": "user", "content": "Where is A-1001?"},
                                {"role": "assistant", "content": "Shipped."},
                                {"role": "user", "content": "And A-1002?"},
                            ]
                        )
                    },
                )
            ]
        )
    )
    assert chat is not None and chat.input == [
        {"role": "user", "content": "Where is A-1001?"},
        {"role": "assistant", "content": "Shipped."},
        {"role": "user", "content": "And A-1002?"},
    ]
    cut = '[{"role": "user", "content": "long' + semconv.TL_TRUNCATED_MARKER
    truncated = read_production_run(
        trace([span("r", "agent", 0, **{semconv.GEN_AI_INPUT_MESSAGES: cut})])
    )
    assert truncated is not None and truncated.truncated and truncated.input == cut
    assert read_production_run(trace([span("r", "agent", 0)])) is None  # no input anywhere
    traced_eval = {semconv.TL_EVAL_RUN_ID: "x", semconv.OI_INPUT_VALUE: "hi"}
    assert read_production_run(trace([span("r", "agent", 0, **traced_eval)])) is None
    assert read_production_run({"trace_id": "ab" * 16, "run": None, "spans": []}) is None


def test_where_filters_split_into_run_columns_and_attributes() -> None:
    assert parse_where(["outcome=failure", "support.intent=refund", "since=24h"]) == [
        ("outcome", "failure"),
        ("attr", "support.intent=refund"),
        ("since", "24h"),
    ]
    with pytest.raises(InvalidInputError, match="write KEY=VALUE"):
        parse_where(["outcome"])
    with pytest.raises(InvalidInputError, match="--agent"):
        parse_where(["agent=x"])


def test_sampling_is_seeded_and_skips_runs_without_input(live_server: LiveServer) -> None:
    from tuneloop.evals.remote import EvalServer

    runs = [
        Production(f"Where is order A-{1000 + n}?", f"Order A-{1000 + n} is fine.")
        for n in range(12)
    ]
    runs.append(Production(None))  # no readable input
    send(live_server, runs)
    with EvalServer(live_server.url, live_server.admin_key) as server:
        newest = sample_production_runs(server, agent="support", limit=5)
        assert [r.input for r in newest.runs] == [
            f"Where is order A-{1000 + n}?" for n in (11, 10, 9, 8, 7)
        ]
        assert (newest.listed, newest.skipped) == (10, 1)  # the newest run has no input
        first = sample_production_runs(server, agent="support", limit=4, pool=13, seed="a")
        again = sample_production_runs(server, agent="support", limit=4, pool=13, seed="a")
        others = [
            sample_production_runs(server, agent="support", limit=4, pool=13, seed=seed)
            for seed in ("b", "c", "d")
        ]
    assert [r.trace_id for r in first.runs] == [r.trace_id for r in again.runs]
    # Another seed picks other runs (three seeds all matching by chance: < 1e-8).
    picks = {frozenset(r.trace_id for r in sample.runs) for sample in [first, *others]}
    assert len(picks) > 1
    assert len(first.runs) == 4 and first.listed == 13


def test_from_traces_writes_failed_runs_as_cases_the_loader_reads(
    live_server: LiveServer, tmp_path: Path
) -> None:
    ids = send(
        live_server,
        [
            Production(
                "Where is order A-1001?",
                "Order A-1001 is shipped.",
                tools=[Tool("lookup_order", {"order_id": "A-1001"})],
            ),
            Production(
                "Cancel order A-1002",
                "Sorry, something went wrong.",
                outcome="failure",
                style="openinference",
                tools=[Tool("lookup_order", {"order_id": "A-1002"}, error="503")],
            ),
            Production(
                "Refund A-1003", outcome="failure", attributes={semconv.TL_EVAL_RUN_ID: "an-eval"}
            ),  # an eval's own trace
        ],
    )
    out = tmp_path / "failures.jsonl"
    result = runner.invoke(
        app,
        [
            "eval",
            "dataset",
            "from-traces",
            "--agent",
            "support",
            "--where",
            "outcome=failure",
            "--limit",
            "200",
            "--out",
            str(out),
            "--server",
            live_server.url,
            "--api-key",
            live_server.admin_key,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 cases written" in result.output and "1 skipped without input" in result.output
    (case,) = load_dataset(out)
    assert (case.id, case.input, case.category) == (
        f"trace-{ids[1]}",
        "Cancel order A-1002",
        "production",
    )
    assert case.tags == ("from-traces", "outcome-failure") and not case.expected.values
    observed = case.metadata["observed"]
    assert observed["output"] == "Sorry, something went wrong."
    assert observed["tool_calls"] == [
        {"name": "lookup_order", "arguments": {"order_id": "A-1002"}, "status": "error"}
    ]
    assert case.metadata["outcome"] == "failure" and case.metadata["tool_errors"] == 1
    assert case.metadata["version"] == "1.0.0" and case.metadata["latency_ms"] == pytest.approx(800)

    golden = tmp_path / "golden.jsonl"
    ok = runner.invoke(
        app,
        [
            "eval",
            "dataset",
            "from-traces",
            "-a",
            "support",
            "-w",
            "outcome=success",
            "--expect-observed",
            "--out",
            str(golden),
            "--server",
            live_server.url,
            "--api-key",
            live_server.admin_key,
        ],
    )
    assert ok.exit_code == 0, ok.output
    (success,) = load_dataset(golden)
    assert success.expected.get("output") == "Order A-1001 is shipped."
    assert success.expected.get("tool_calls") == [
        {"name": "lookup_order", "arguments": {"order_id": "A-1001"}}
    ]

    nothing = runner.invoke(
        app,
        [
            "eval",
            "dataset",
            "from-traces",
            "-a",
            "billing",
            "--out",
            str(tmp_path / "x.jsonl"),
            "--server",
            live_server.url,
            "--api-key",
            live_server.admin_key,
        ],
    )
    assert nothing.exit_code == 2 and "no stored run of agent 'billing'" in nothing.output
    assert not (tmp_path / "x.jsonl").exists()


def test_a_case_keeps_feedback_and_marks_truncation() -> None:
    found = read_production_run(
        {
            **trace(
                [
                    span(
                        "r",
                        "agent",
                        0,
                        **{semconv.OI_INPUT_VALUE: "x" + semconv.TL_TRUNCATED_MARKER},
                    )
                ]
            ),
            "feedback": [{"name": "thumbs", "value": 0.0, "comment": "wrong", "created_ms": 5}],
        }
    )
    assert found is not None
    case = to_case(found, category="triage")
    assert case["metadata"]["truncated"] is True and case["category"] == "triage"
    assert case["metadata"]["feedback"] == [
        {"name": "thumbs", "value": 0.0, "comment": "wrong", "created_ms": 5}
    ]

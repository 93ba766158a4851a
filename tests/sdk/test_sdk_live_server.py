"""End to end: the SDK against the real tuneloop server (uvicorn, real store)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer
from tests.sdk.sdk_fakes import FAST_RETRY
from tuneloop.sdk import Client


def test_runs_and_feedback_land_in_the_server(live_server: LiveServer) -> None:
    with Client(live_server.url, live_server.ingest_key, retry=FAST_RETRY) as client:
        with client.run("support", unit_id="user-1", config_version="v1") as run:
            with run.llm_call("gpt-4o", "openai") as call:
                call.usage(input_tokens=10, output_tokens=5)
            with run.tool_call("lookup_order") as tool:
                tool.fail("503", retryable=True)
            run.outcome("escalated")
        assert client.flush(timeout_s=10.0)
        assert client.feedback(run.trace_id, "thumbs", 1.0, "quick answer")

    response = httpx.get(
        f"{live_server.url}/api/v1/traces/{run.trace_id}", headers=live_server.headers()
    )
    assert response.status_code == 200
    body = response.json()
    facts = body["run"]
    assert (facts["agent"], facts["version"], facts["unit_id"]) == ("support", "v1", "user-1")
    assert facts["outcome"] == "escalated"
    assert (facts["llm_calls"], facts["tool_calls"], facts["tool_errors"]) == (1, 1, 1)
    assert (facts["input_tokens"], facts["output_tokens"]) == (10, 5)
    assert [(f["name"], f["value"], f["comment"]) for f in body["feedback"]] == [
        ("thumbs", 1.0, "quick answer")
    ]
    assert client.stats.spans_exported == 3


def test_a_wrong_key_is_refused_once_and_counted(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    with Client(live_server.url, "not-a-key", retry=FAST_RETRY) as client:
        with client.run("support") as run:
            pass
        assert client.flush(timeout_s=10.0) is False
        assert client.feedback(run.trace_id, "thumbs", 1.0) is False
    stats = client.stats
    assert (stats.spans_failed, stats.feedback_failed, stats.export_errors) == (1, 1, 2)
    assert "TUNELOOP_API_KEY" in caplog.text

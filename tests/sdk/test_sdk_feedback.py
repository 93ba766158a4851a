"""Feedback: JSON body, auth, retries, and never raising."""

from __future__ import annotations

import math
from collections.abc import Callable

import httpx
import pytest

from tests.sdk.sdk_fakes import API_KEY, FakeServer
from tuneloop.sdk import Client

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_feedback_posts_json_with_bearer_auth(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    assert client.feedback(TRACE_ID, "thumbs", 1, "solved my problem") is True
    [request] = server.requests
    assert str(request.url) == "http://tuneloop.test/api/v1/feedback"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert server.feedback_bodies() == [
        {"trace_id": TRACE_ID, "name": "thumbs", "value": 1.0, "comment": "solved my problem"}
    ]
    assert (client.stats.feedback_sent, client.stats.feedback_failed) == (1, 0)


def test_upper_case_trace_id_is_accepted(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    assert client.feedback(TRACE_ID.upper(), "thumbs", 1.0)
    assert server.feedback_bodies()[0]["trace_id"] == TRACE_ID


def test_feedback_for_a_run_uses_its_trace_id(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    with client.run("support") as run:
        pass
    assert client.feedback(run.trace_id, "resolved", 0.0)
    assert server.feedback_bodies()[0]["trace_id"] == run.trace_id
    assert server.feedback_bodies()[0]["comment"] is None


def test_feedback_is_retried_when_the_server_is_busy(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    server.replies = [503, httpx.ConnectError("refused")]
    client = make_client()
    assert client.feedback(TRACE_ID, "thumbs", 1.0) is True
    assert len(server.requests) == 3
    assert (client.stats.feedback_sent, client.stats.export_errors) == (1, 2)


@pytest.mark.parametrize("status", [400, 401, 404])
def test_rejected_feedback_returns_false_without_retry(
    make_client: Callable[..., Client], server: FakeServer, status: int
) -> None:
    server.default = status
    client = make_client()
    assert client.feedback(TRACE_ID, "thumbs", 1.0) is False
    assert len(server.requests) == 1
    assert (client.stats.feedback_sent, client.stats.feedback_failed) == (0, 1)


@pytest.mark.parametrize(
    ("trace_id", "value", "reason"),
    [
        ("not-a-trace-id", 1.0, "32 hex digits"),
        (TRACE_ID + "0", 1.0, "32 hex digits"),
        (TRACE_ID, math.nan, "finite"),
    ],
)
def test_invalid_feedback_returns_false_without_a_request(
    make_client: Callable[..., Client],
    server: FakeServer,
    trace_id: str,
    value: float,
    reason: str,
) -> None:
    client = make_client()
    assert client.feedback(trace_id, "thumbs", value) is False
    assert server.requests == []
    assert client.stats.feedback_failed == 1
    assert reason in (client.stats.last_error or "")


def test_feedback_after_shutdown_returns_false(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    client.shutdown()
    assert client.feedback(TRACE_ID, "thumbs", 1.0) is False
    assert server.requests == []

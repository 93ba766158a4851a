"""The Anthropic adapter through the official SDK over a mock transport.

The ``anthropic`` SDK uses the ``httpx2`` package and refuses ``httpx`` clients, so
these tests give it an ``httpx2.MockTransport`` (same API as httpx's).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from tuneloop.clock import FakeClock
from tuneloop.errors import (
    ProviderAuthError,
    ProviderBadRequestError,
    ProviderConnectionError,
    ProviderRateLimitError,
    ProviderServerError,
)
from tuneloop.runtime.providers import ChatRequest, Message, ToolCallRequest, ToolSpec
from tuneloop.runtime.providers.anthropic import AnthropicProvider

pytestmark = pytest.mark.anyio

LOOKUP = ToolSpec(
    "lookup_order",
    "Look up an order.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)


def reply(content: list[dict[str, Any]], stop: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-2026",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 9},
    }


def provider_for(handler: Callable[[httpx2.Request], httpx2.Response]) -> AnthropicProvider:
    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return AnthropicProvider(
        api_key="sk-ant-test",
        base_url="http://anthropic.test",
        http_client=client,
        clock=FakeClock(),
    )


async def test_system_tools_and_tool_results_are_translated() -> None:
    seen: list[dict[str, Any]] = []

    def handler(req: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(req.content))
        assert req.url.path == "/v1/messages"
        return httpx2.Response(200, json=reply([{"type": "text", "text": "It shipped."}]))

    conversation = (
        Message.system("You are a support agent."),
        Message.user("Where is order A-1?"),
        Message.assistant(
            "Checking.",
            [
                ToolCallRequest("toolu_1", "lookup_order", '{"order_id": "A-1"}'),
                ToolCallRequest("toolu_2", "lookup_order", '{"order_id": "A-2"}'),
            ],
        ),
        Message.tool("toolu_1", '{"status": "shipped"}'),
        Message.tool("toolu_2", '{"status": "pending"}'),
    )
    response = await provider_for(handler).chat(
        ChatRequest(
            "claude-test",
            conversation,
            (LOOKUP,),
            tool_choice="required",
            temperature=0.1,
            stop=("##",),
        )
    )
    body = seen[0]
    assert body["system"] == "You are a support agent."
    assert body["max_tokens"] == 1024
    assert body["temperature"] == 0.1
    assert body["stop_sequences"] == ["##"]
    assert body["tool_choice"] == {"type": "any"}
    assert body["tools"] == [
        {
            "name": "lookup_order",
            "description": "Look up an order.",
            "input_schema": LOOKUP.parameters,
        }
    ]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Where is order A-1?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "lookup_order",
                    "input": {"order_id": "A-1"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "lookup_order",
                    "input": {"order_id": "A-2"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": '{"status": "shipped"}',
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": '{"status": "pending"}',
                },
            ],
        },
    ]
    assert response.message.content == "It shipped."
    assert response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (30, 9)
    assert response.provider == "anthropic"


async def test_tool_use_comes_back_as_tool_calls() -> None:
    content = [
        {"type": "tool_use", "id": "toolu_9", "name": "lookup_order", "input": {"order_id": "B-7"}}
    ]
    provider = provider_for(lambda req: httpx2.Response(200, json=reply(content, "tool_use")))
    response = await provider.chat(ChatRequest("claude-test", (Message.user("B-7?"),), (LOOKUP,)))
    assert response.finish_reason == "tool_calls"
    assert response.raw_finish_reason == "tool_use"
    assert response.message.content is None
    [call] = response.message.tool_calls
    assert (call.id, call.name, json.loads(call.arguments)) == (
        "toolu_9",
        "lookup_order",
        {"order_id": "B-7"},
    )


async def test_max_tokens_stop_is_length() -> None:
    provider = provider_for(
        lambda req: httpx2.Response(
            200, json=reply([{"type": "text", "text": "Trunc"}], "max_tokens")
        )
    )
    response = await provider.chat(ChatRequest("claude-test", (Message.user("hi"),), max_tokens=5))
    assert response.finish_reason == "length"


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


async def test_429_carries_retry_after() -> None:
    provider = provider_for(
        lambda req: httpx2.Response(
            429,
            headers={"retry-after": "12"},
            json=error_body("rate_limit_error", "too many requests"),
        )
    )
    with pytest.raises(ProviderRateLimitError) as caught:
        await provider.chat(ChatRequest("claude-test", (Message.user("hi"),)))
    assert caught.value.retry_after_s == 12.0
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (529, ProviderServerError),
        (500, ProviderServerError),
        (401, ProviderAuthError),
        (400, ProviderBadRequestError),
    ],
)
async def test_statuses_map_to_the_error_tree(status: int, error: type[Exception]) -> None:
    provider = provider_for(lambda req: httpx2.Response(status, json=error_body("x", "failed")))
    with pytest.raises(error):
        await provider.chat(ChatRequest("claude-test", (Message.user("hi"),)))


async def test_connection_reset_is_a_connection_error() -> None:
    def handler(req: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection reset by peer")

    with pytest.raises(ProviderConnectionError) as caught:
        await provider_for(handler).chat(ChatRequest("claude-test", (Message.user("hi"),)))
    assert caught.value.retryable

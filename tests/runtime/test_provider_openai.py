"""The OpenAI-compatible adapter through the official SDK over httpx.MockTransport."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tuneloop.clock import FakeClock
from tuneloop.errors import (
    ConfigError,
    ProviderAuthError,
    ProviderBadRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderServerError,
    ProviderTimeoutError,
)
from tuneloop.runtime.providers import ChatRequest, Message, ToolCallRequest, ToolSpec
from tuneloop.runtime.providers.openai import OpenAIChatProvider

pytestmark = pytest.mark.anyio

BASE_URL = "http://llm.test/v1"
WEATHER = ToolSpec(
    "get_weather",
    "Current weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def completion(
    message: dict[str, Any], finish: str = "stop", usage: tuple[int, int] = (12, 5)
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": "gpt-test-2026",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
    }


def provider_for(
    handler: Callable[[httpx.Request], httpx.Response], clock: FakeClock | None = None
) -> OpenAIChatProvider:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAIChatProvider(
        api_key="sk-test", base_url=BASE_URL, http_client=client, clock=clock or FakeClock()
    )


def request(**kwargs: Any) -> ChatRequest:
    return ChatRequest(
        "gpt-test",
        (Message.system("Be brief."), Message.user("Weather in Paris?")),
        **kwargs,
    )


async def test_request_carries_messages_tools_and_params() -> None:
    seen: list[dict[str, Any]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(json.loads(req.content))
        assert req.url.path == "/v1/chat/completions"
        assert req.headers["authorization"] == "Bearer sk-test"
        return httpx.Response(200, json=completion({"content": "Sunny."}))

    conversation = (
        Message.user("Weather in Paris?"),
        Message.assistant(None, [ToolCallRequest("call_1", "get_weather", '{"city": "Paris"}')]),
        Message.tool("call_1", '{"temp_c": 21}'),
    )
    response = await provider_for(handler).chat(
        ChatRequest(
            "gpt-test",
            conversation,
            (WEATHER,),
            tool_choice="auto",
            temperature=0.2,
            max_tokens=64,
            stop=("END",),
            seed=3,
        )
    )
    body = seen[0]
    assert body["model"] == "gpt-test"
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 64
    assert body["stop"] == ["END"]
    assert body["seed"] == 3
    assert body["tool_choice"] == "auto"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city.",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    assert body["messages"][1]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert body["messages"][2] == {
        "role": "tool",
        "content": '{"temp_c": 21}',
        "tool_call_id": "call_1",
    }
    assert response.message.content == "Sunny."
    assert response.finish_reason == "stop"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 5)
    assert response.model == "gpt-test-2026"
    assert response.provider == "openai"


async def test_tool_calls_and_their_raw_arguments_come_back() -> None:
    message = {
        "content": None,
        "tool_calls": [
            {
                "id": "call_9",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Par'},
            }
        ],
    }
    provider = provider_for(lambda req: httpx.Response(200, json=completion(message, "tool_calls")))
    response = await provider.chat(request(tools=(WEATHER,)))
    assert response.finish_reason == "tool_calls"
    # Invalid JSON arguments pass through untouched: the tool runner answers them.
    assert response.message.tool_calls == (
        ToolCallRequest("call_9", "get_weather", '{"city": "Par'),
    )


async def test_max_completion_tokens_for_reasoning_models() -> None:
    seen: list[dict[str, Any]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(json.loads(req.content))
        return httpx.Response(200, json=completion({"content": "ok"}))

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    provider = OpenAIChatProvider(
        api_key="k", base_url=BASE_URL, http_client=client, max_tokens_param="max_completion_tokens"
    )
    await provider.chat(request(max_tokens=10))
    assert seen[0]["max_completion_tokens"] == 10
    assert "max_tokens" not in seen[0]


async def test_429_with_retry_after_seconds_is_a_retryable_rate_limit() -> None:
    provider = provider_for(
        lambda req: httpx.Response(
            429,
            headers={"retry-after": "7"},
            json={"error": {"message": "slow down", "type": "rate_limit"}},
        )
    )
    with pytest.raises(ProviderRateLimitError) as caught:
        await provider.chat(request())
    assert caught.value.retryable is True
    assert caught.value.retry_after_s == 7.0
    assert caught.value.status_code == 429
    assert "slow down" in str(caught.value)


async def test_retry_after_ms_and_http_date_forms() -> None:
    clock = FakeClock(start_ms=1_767_225_600_000)  # 2026-01-01T00:00:00Z
    provider = provider_for(
        lambda req: httpx.Response(
            429, headers={"retry-after-ms": "1500"}, json={"error": {"message": "x"}}
        ),
        clock,
    )
    with pytest.raises(ProviderRateLimitError) as caught:
        await provider.chat(request())
    assert caught.value.retry_after_s == 1.5

    provider = provider_for(
        lambda req: httpx.Response(
            429,
            headers={"retry-after": "Thu, 01 Jan 2026 00:00:30 GMT"},
            json={"error": {"message": "x"}},
        ),
        clock,
    )
    with pytest.raises(ProviderRateLimitError) as caught:
        await provider.chat(request())
    assert caught.value.retry_after_s == 30.0


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (500, ProviderServerError, True),
        (502, ProviderServerError, True),
        (503, ProviderServerError, True),
        (408, ProviderTimeoutError, True),
        (401, ProviderAuthError, False),
        (403, ProviderAuthError, False),
        (400, ProviderBadRequestError, False),
        (404, ProviderBadRequestError, False),
        (422, ProviderBadRequestError, False),
    ],
)
async def test_http_statuses_map_to_the_error_tree(
    status: int, error: type[ProviderError], retryable: bool
) -> None:
    provider = provider_for(
        lambda req: httpx.Response(status, json={"error": {"message": f"status {status}"}})
    )
    with pytest.raises(error) as caught:
        await provider.chat(request())
    assert caught.value.retryable is retryable
    assert caught.value.status_code == status
    assert f"HTTP {status}" in str(caught.value)


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
async def test_connection_resets_are_retryable_connection_errors(exc: Exception) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(ProviderConnectionError) as caught:
        await provider_for(handler).chat(request())
    assert caught.value.retryable is True
    assert "openai" in str(caught.value)


async def test_read_timeout_is_a_provider_timeout() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    with pytest.raises(ProviderTimeoutError) as caught:
        await provider_for(handler).chat(request())
    assert caught.value.retryable is True


async def test_no_choices_is_a_server_error() -> None:
    body = completion({"content": "x"})
    body["choices"] = []
    with pytest.raises(ProviderServerError, match="without any choice"):
        await provider_for(lambda req: httpx.Response(200, json=body)).chat(request())


async def test_empty_output_comes_back_as_an_empty_message() -> None:
    provider = provider_for(lambda req: httpx.Response(200, json=completion({"content": ""})))
    response = await provider.chat(request())
    assert response.message.text == ""
    assert response.message.tool_calls == ()


def test_missing_api_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIChatProvider(base_url=BASE_URL)

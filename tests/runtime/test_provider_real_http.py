"""The OpenAI adapter over real HTTP: a local server speaking Chat Completions in a thread."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tuneloop.errors import ProviderRateLimitError
from tuneloop.runtime.providers import ChatRequest, Message, ToolSpec
from tuneloop.runtime.providers.openai import OpenAIChatProvider
from tuneloop.runtime.tools import RetrySchedule, retry_call

pytestmark = pytest.mark.anyio


class ChatServer(ThreadingHTTPServer):
    """Answers queued (status, headers, body) replies; records each request body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies: list[tuple[int, dict[str, str], dict[str, Any]]] = []
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.paths.append(self.path)
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        status, headers, body = self.server.replies.pop(0)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def answer(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-7",
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": "local-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24},
    }


async def test_chat_over_real_http_with_a_retried_429(chat_server: ChatServer) -> None:
    host, port = chat_server.server_address[:2]
    chat_server.replies = [
        (
            429,
            {"Retry-After": "0.01"},
            {"error": {"message": "rate limited", "type": "rate_limit"}},
        ),
        (200, {}, answer("Paris is sunny.")),
    ]
    provider = OpenAIChatProvider(
        api_key="sk-local", base_url=f"http://{host}:{port}/v1", name="vllm"
    )
    request = ChatRequest(
        "local-model",
        (Message.user("Weather in Paris?"),),
        (ToolSpec("get_weather", "Weather.", {"type": "object", "properties": {}}),),
        temperature=0.0,
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    response = await retry_call(
        lambda attempt: provider.chat(request),
        RetrySchedule(max_attempts=3, backoff_ms=1, max_backoff_ms=2),
        sleep=sleep,
        rng=random.Random(0),
    )
    await provider.aclose()

    assert response.message.content == "Paris is sunny."
    assert response.provider == "vllm"
    assert response.usage.input_tokens == 21
    assert chat_server.paths == ["/v1/chat/completions", "/v1/chat/completions"]
    assert chat_server.bodies[1]["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert chat_server.bodies[1]["tools"][0]["function"]["name"] == "get_weather"
    # The wait honoured the server's Retry-After (10 ms) over the 1-2 ms backoff.
    assert waits == [pytest.approx(0.01)]


async def test_a_429_that_outlasts_the_schedule_is_raised(chat_server: ChatServer) -> None:
    host, port = chat_server.server_address[:2]
    chat_server.replies = [(429, {"Retry-After": "0"}, {"error": {"message": "busy"}})] * 2
    provider = OpenAIChatProvider(api_key="sk-local", base_url=f"http://{host}:{port}/v1")

    async def sleep(seconds: float) -> None:
        pass

    with pytest.raises(ProviderRateLimitError):
        await retry_call(
            lambda attempt: provider.chat(ChatRequest("m", (Message.user("hi"),))),
            RetrySchedule(max_attempts=2, backoff_ms=1, max_backoff_ms=1),
            sleep=sleep,
            rng=random.Random(0),
        )
    await provider.aclose()
    assert len(chat_server.bodies) == 2

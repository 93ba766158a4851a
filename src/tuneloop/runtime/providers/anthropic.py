"""Anthropic Messages through the official ``anthropic`` SDK."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

try:
    import anthropic
    import httpx2
except ImportError as exc:
    raise ImportError(
        "tuneloop.runtime.providers.anthropic needs the anthropic extra: "
        "pip install 'tuneloop[anthropic]'"
    ) from exc

from tuneloop.clock import Clock, SystemClock
from tuneloop.errors import ConfigError, ProviderConnectionError
from tuneloop.runtime.providers.base import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    ToolCallRequest,
    Usage,
)
from tuneloop.runtime.providers.errors import translate_sdk_error

_FINISH: Mapping[str, FinishReason] = MappingProxyType(
    {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "pause_turn": "stop",
        "max_tokens": "length",
        "model_context_window_exceeded": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
    }
)
_TOOL_CHOICE: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
)


class AnthropicProvider:
    """A `Provider` for Anthropic's Messages API.

    System messages become the ``system`` parameter; tool results become
    ``tool_result`` blocks. ``temperature`` and ``top_p`` are sent when set (models
    that do not take them answer 400); ``seed`` and the penalties have no Anthropic
    equivalent and are not sent. The SDK's own retries are off, as for `OpenAIChatProvider`.

    Args:
        client: an ``anthropic.AsyncAnthropic`` to use as is.
        api_key: the API key; default ``ANTHROPIC_API_KEY``.
        base_url: the endpoint; default Anthropic's.
        http_client: an ``httpx2.AsyncClient`` for the SDK (this SDK uses the ``httpx2``
            package, not ``httpx``; tests pass one with an ``httpx2.MockTransport``).
        timeout_s: longest wait for one response.
        default_max_tokens: ``max_tokens`` when the request does not set it (the
            Messages API requires one).
        name: the ``gen_ai.provider.name`` to report.
        clock: reads "now" for Retry-After dates.

    Raises:
        ConfigError: no API key was given or found in the environment.
    """

    def __init__(
        self,
        *,
        client: anthropic.AsyncAnthropic | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        timeout_s: float = 60.0,
        default_max_tokens: int = 1024,
        name: str = "anthropic",
        clock: Clock | None = None,
    ) -> None:
        if default_max_tokens < 1:
            raise ConfigError(f"default_max_tokens must be >= 1, got {default_max_tokens}")
        owned = client is None and http_client is None
        if client is None:
            try:
                client = anthropic.AsyncAnthropic(
                    api_key=api_key,
                    base_url=base_url,
                    http_client=http_client,
                    timeout=timeout_s,
                    max_retries=0,
                )
            except anthropic.AnthropicError as exc:
                raise ConfigError(
                    f"cannot create the {name} client: {exc}; pass api_key= or set "
                    "ANTHROPIC_API_KEY"
                ) from None
        self._owns_client = owned
        self._client = client
        self._name = name
        self._default_max_tokens = default_max_tokens
        self._clock = clock or SystemClock()

    @property
    def name(self) -> str:
        """The provider's name for ``gen_ai.provider.name``."""
        return self._name

    async def aclose(self) -> None:
        """Close the HTTP connections this provider opened (not a client it was given)."""
        if self._owns_client:
            await self._client.close()

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Send one Messages request.

        Raises:
            ProviderError: the translated failure (429 → `ProviderRateLimitError`,
                529 overloaded and 5xx → `ProviderServerError`, ...).
        """
        kwargs = self.request_body(request)
        try:
            reply = await self._client.messages.create(**kwargs)
        except anthropic.AnthropicError as exc:
            raise translate_sdk_error(
                exc,
                provider=self._name,
                status_error=anthropic.APIStatusError,
                timeout_error=anthropic.APITimeoutError,
                connection_error=anthropic.APIConnectionError,
                clock=self._clock,
            ) from exc
        except (httpx2.TransportError, OSError) as exc:
            raise ProviderConnectionError(
                f"connection to {self._name} failed: {type(exc).__name__}: {exc}; check the "
                "base URL and the network"
            ) from exc
        return self._response(reply)

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The arguments of ``messages.create`` for ``request``."""
        system = "\n\n".join(m.text for m in request.messages if m.role == "system")
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens or self._default_max_tokens,
            "messages": _messages(request.messages),
        }
        if system:
            body["system"] = system
        # Recent SDKs dropped the sampling parameters from their signature; the API still
        # reads them for the models that support them, so they ride in the JSON body.
        sampling = {
            key: value
            for key, value in (("temperature", request.temperature), ("top_p", request.top_p))
            if value is not None
        }
        if sampling:
            body["extra_body"] = sampling
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if request.tools:
            body["tools"] = [
                {
                    "name": spec.name,
                    "description": spec.description,
                    "input_schema": dict(spec.parameters),
                }
                for spec in request.tools
            ]
        if request.tool_choice is not None:
            body["tool_choice"] = _TOOL_CHOICE[request.tool_choice]
        return body

    def _response(self, reply: Any) -> ChatResponse:
        texts: list[str] = []
        calls: list[ToolCallRequest] = []
        for block in reply.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                calls.append(
                    ToolCallRequest(id=block.id, name=block.name, arguments=json.dumps(block.input))
                )
        raw = reply.stop_reason
        return ChatResponse(
            message=Message.assistant("".join(texts) if texts else None, calls),
            finish_reason=_FINISH.get(raw or "", "other"),
            usage=Usage(
                input_tokens=int(reply.usage.input_tokens or 0),
                output_tokens=int(reply.usage.output_tokens or 0),
            ),
            model=str(reply.model or ""),
            provider=self._name,
            raw_finish_reason=raw,
        )


def _messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Anthropic turns: tool results ride in user turns; same-role neighbours merge."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [
            {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.text}
        ]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _arguments(call)}
        )
    return blocks


def _arguments(call: ToolCallRequest) -> dict[str, Any]:
    # Anthropic takes an object; arguments another model wrote as invalid JSON become {}.
    try:
        value = json.loads(call.arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}

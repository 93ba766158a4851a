"""OpenAI-compatible Chat Completions through the official ``openai`` SDK.

One adapter covers OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM and any server that
speaks ``POST /v1/chat/completions``: point ``base_url`` at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

try:
    import openai
except ImportError as exc:
    raise ImportError(
        "tuneloop.runtime.providers.openai needs the openai extra: pip install 'tuneloop[openai]'"
    ) from exc

import httpx

from tuneloop.clock import Clock, SystemClock
from tuneloop.errors import ConfigError, ProviderConnectionError, ProviderServerError
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
        "stop": "stop",
        "length": "length",
        "tool_calls": "tool_calls",
        "function_call": "tool_calls",
        "content_filter": "content_filter",
    }
)


class OpenAIChatProvider:
    """A `Provider` for any OpenAI-compatible Chat Completions endpoint.

    The SDK's own retries are off (``max_retries=0``): the runtime decides on retries
    and failover from the translated errors, and SDK retries would hide them.

    Example:
        ```python
        provider = OpenAIChatProvider(base_url="http://127.0.0.1:11434/v1", api_key="ollama")
        response = await provider.chat(ChatRequest("llama3.1", (Message.user("hi"),)))
        ```

    Args:
        client: an ``openai.AsyncOpenAI`` (or ``AsyncAzureOpenAI``) to use as is.
        api_key: the API key; default ``OPENAI_API_KEY``.
        base_url: the endpoint; default OpenAI's, or ``OPENAI_BASE_URL``.
        http_client: an ``httpx.AsyncClient`` for the SDK (proxies, tests' mock transports).
        timeout_s: longest wait for one response.
        name: the ``gen_ai.provider.name`` to report (``azure.ai.openai``, ``vllm``...).
        max_tokens_param: ``max_completion_tokens`` for OpenAI's reasoning models,
            ``max_tokens`` (the default) for everything else.
        clock: reads "now" for Retry-After dates.

    Raises:
        ConfigError: no API key was given or found in the environment.
    """

    def __init__(
        self,
        *,
        client: openai.AsyncOpenAI | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        timeout_s: float = 60.0,
        name: str = "openai",
        max_tokens_param: str = "max_tokens",
        clock: Clock | None = None,
    ) -> None:
        if max_tokens_param not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(
                f"max_tokens_param must be 'max_tokens' or 'max_completion_tokens', "
                f"got {max_tokens_param!r}"
            )
        owned = client is None and http_client is None
        if client is None:
            try:
                client = openai.AsyncOpenAI(
                    api_key=api_key,
                    base_url=base_url,
                    http_client=http_client,  # type: ignore[arg-type]  # the SDK accepts httpx clients
                    timeout=timeout_s,
                    max_retries=0,
                )
            except openai.OpenAIError as exc:
                raise ConfigError(
                    f"cannot create the {name} client: {exc}; pass api_key= or set OPENAI_API_KEY"
                ) from None
        self._owns_client = owned
        self._client = client
        self._name = name
        self._max_tokens_param = max_tokens_param
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
        """Send one Chat Completions request.

        Raises:
            ProviderError: the translated failure (`ProviderRateLimitError` on 429 with
                the Retry-After, `ProviderServerError` on 5xx, ...).
        """
        kwargs = self.request_body(request)
        try:
            completion = await self._client.chat.completions.create(**kwargs)
        except openai.OpenAIError as exc:
            raise translate_sdk_error(
                exc,
                provider=self._name,
                status_error=openai.APIStatusError,
                timeout_error=openai.APITimeoutError,
                connection_error=openai.APIConnectionError,
                clock=self._clock,
            ) from exc
        except (httpx.TransportError, OSError) as exc:
            # A transport raising outside the SDK's own handling (a reset mid-response).
            raise ProviderConnectionError(
                f"connection to {self._name} failed: {type(exc).__name__}: {exc}; check the "
                "base URL and the network"
            ) from exc
        return self._response(completion)

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Chat Completions request body for ``request`` (without transport options)."""
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_message(message) for message in request.messages],
        }
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": spec.name,
                        "description": spec.description,
                        "parameters": dict(spec.parameters),
                    },
                }
                for spec in request.tools
            ]
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        params = request.params()
        if "max_tokens" in params:
            body[self._max_tokens_param] = params.pop("max_tokens")
        body.update(params)
        return body

    def _response(self, completion: Any) -> ChatResponse:
        if not completion.choices:
            raise ProviderServerError(
                f"{self._name} answered without any choice for model {completion.model!r}"
            )
        choice = completion.choices[0]
        calls = tuple(
            ToolCallRequest(id=call.id, name=call.function.name, arguments=call.function.arguments)
            for call in (choice.message.tool_calls or ())
            if getattr(call, "type", "function") == "function"
        )
        raw = choice.finish_reason
        finish: FinishReason = _FINISH.get(raw or "", "other")
        if calls and finish == "stop":
            finish = "tool_calls"  # some compatible servers say "stop" after tool calls
        usage = completion.usage
        return ChatResponse(
            message=Message.assistant(choice.message.content, calls),
            finish_reason=finish,
            usage=Usage(
                input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            ),
            model=str(completion.model or ""),
            provider=self._name,
            raw_finish_reason=raw,
        )


def _message(message: Message) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        data["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.role == "tool":
        data["tool_call_id"] = message.tool_call_id
        data["content"] = message.text
    elif message.name is not None:
        data["name"] = message.name
    return data

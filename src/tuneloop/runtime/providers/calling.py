"""Call a provider the way the runtime does: through the response cache, as a traced span."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tuneloop import semconv
from tuneloop.runtime.providers.base import ChatRequest, ChatResponse, Provider
from tuneloop.sdk.spans import LlmCall, Run

if TYPE_CHECKING:
    from tuneloop.runtime.cache import ResponseCache


async def chat(
    provider: Provider,
    request: ChatRequest,
    *,
    run: Run | None = None,
    cache: ResponseCache | None = None,
    annotate: Callable[[LlmCall, ChatResponse], None] | None = None,
) -> ChatResponse:
    """Send ``request`` to ``provider``, answering from ``cache`` when it has the exact request.

    With a ``run``, the call is a ``chat {model}`` span with usage, finish reasons and
    ``tuneloop.cache.hit``; a failure is recorded on the span and raised unchanged;
    ``annotate`` may add attributes of its own once the answer is known (the decision
    it made, say). Empty answers (no text, no tool calls) are never cached.

    Raises:
        ProviderError: what the provider raised.
    """
    if run is None:
        return await _cached_chat(provider, request, cache)
    with run.llm_call(
        request.model,
        provider.name,
        temperature=request.temperature,
        input_messages=[message.to_dict() for message in request.messages],
    ) as call:
        if request.max_tokens is not None:
            call.span.set_attribute(semconv.GEN_AI_REQUEST_MAX_TOKENS, request.max_tokens)
        if request.top_p is not None:
            call.span.set_attribute(semconv.GEN_AI_REQUEST_TOP_P, request.top_p)
        response = await _cached_chat(provider, request, cache)
        if cache is not None:
            call.span.set_attribute(semconv.TL_CACHE_HIT, response.cached)
            call.span.set_attribute(semconv.TL_CACHE_KIND, semconv.CACHE_KIND_RESPONSE)
        call.usage(
            input_tokens=response.usage.input_tokens, output_tokens=response.usage.output_tokens
        )
        call.response(
            model=response.model or None,
            finish_reasons=[response.finish_reason],
            output_messages=[response.message.to_dict()],
        )
        if annotate is not None:
            annotate(call, response)
        return response


async def _cached_chat(
    provider: Provider, request: ChatRequest, cache: ResponseCache | None
) -> ChatResponse:
    if cache is not None:
        hit = await cache.get(provider.name, request)
        if hit is not None:
            return hit
    response = await provider.chat(request)
    if cache is not None and (response.message.content or response.message.tool_calls):
        await cache.put(provider.name, request, response)
    return response

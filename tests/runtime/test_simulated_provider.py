"""The simulated provider: scripted and seeded-random policies, latency and failures."""

from __future__ import annotations

import random

import pytest

from tests.runtime.conftest import Sleeps, Traced
from tuneloop import semconv
from tuneloop.clock import FakeClock
from tuneloop.config.model import AgentConfig
from tuneloop.errors import (
    ConfigError,
    InvalidInputError,
    ProviderConnectionError,
    ProviderRateLimitError,
    ProviderServerError,
    ProviderTimeoutError,
)
from tuneloop.runtime.cache import InMemoryCache, ResponseCache
from tuneloop.runtime.providers import (
    ChatRequest,
    FailureModel,
    LatencyModel,
    Message,
    SimulatedProvider,
    chat,
    scripted,
    tool_call,
    weighted,
)

pytestmark = pytest.mark.anyio

CONFIG = AgentConfig.from_data(
    {"model": {"provider": "simulated", "name": "sim-1"}, "params": {"temperature": 0.0}}
)


def ask(text: str = "Where is my order?") -> ChatRequest:
    return ChatRequest.from_config(CONFIG, [Message.user(text)])


def make(
    policy: object, clock: FakeClock, sleeps: Sleeps, seed: int = 1, **kwargs: object
) -> SimulatedProvider:
    return SimulatedProvider(
        policy,  # type: ignore[arg-type]
        rng=random.Random(seed),
        clock=clock,
        sleep=sleeps,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_scripted_policy_answers_by_turn(clock: FakeClock, sleeps: Sleeps) -> None:
    call = tool_call("lookup_order", {"order_id": "A-1"}, call_id="call_1")
    provider = make(
        scripted(
            [
                Message.assistant(None, [call]),
                lambda req: Message.assistant(f"{len(req.messages)} msgs"),
            ]
        ),
        clock,
        sleeps,
    )
    first = await provider.chat(ask())
    assert first.finish_reason == "tool_calls"
    assert first.message.tool_calls == (call,)
    follow_up = ChatRequest(
        "sim-1",
        (Message.user("Where?"), first.message, Message.tool("call_1", '{"status": "shipped"}')),
    )
    second = await provider.chat(follow_up)
    assert second.message.content == "3 msgs"
    assert second.finish_reason == "stop"
    assert second.model == "sim-1"
    assert second.provider == "simulated"
    with pytest.raises(InvalidInputError, match="has 2 replies"):
        await provider.chat(
            ChatRequest("sim-1", (*follow_up.messages, second.message, Message.user("and?")))
        )


async def test_latency_spends_simulated_time_and_tokens_are_estimated(
    clock: FakeClock, sleeps: Sleeps
) -> None:
    provider = make(
        scripted([Message.assistant("x" * 400)]),
        clock,
        sleeps,
        latency=LatencyModel(
            base_ms=200, per_output_token_ms=10, per_input_token_ms=0, jitter_sigma=0
        ),
    )
    start = clock.now_ms()
    response = await provider.chat(ask("y" * 40))
    assert response.usage.output_tokens == 100  # 400 chars / 4
    assert response.usage.input_tokens == 10
    assert sleeps.waits == [pytest.approx(1.2)]  # 200 ms + 100 tokens x 10 ms
    assert clock.now_ms() - start == 1200


async def test_max_tokens_truncates_with_finish_length(clock: FakeClock, sleeps: Sleeps) -> None:
    provider = make(scripted([Message.assistant("word " * 100)]), clock, sleeps)
    response = await provider.chat(ChatRequest("sim-1", (Message.user("hi"),), max_tokens=5))
    assert response.finish_reason == "length"
    assert response.usage.output_tokens == 5
    assert response.message.content == "word word word word "


async def test_seeded_random_policy_is_reproducible(clock: FakeClock, sleeps: Sleeps) -> None:
    policy = weighted(
        [
            (0.7, lambda req, rng: Message.assistant("yes")),
            (0.3, lambda req, rng: Message.assistant("no")),
        ]
    )

    async def answers(seed: int) -> list[str]:
        provider = make(policy, clock, sleeps, seed=seed)
        return [(await provider.chat(ask())).message.text for _ in range(200)]

    first, again, other = await answers(11), await answers(11), await answers(12)
    assert first == again
    assert first != other
    assert 0.6 < first.count("yes") / 200 < 0.8


async def test_failure_model_raises_the_real_error_tree(clock: FakeClock, sleeps: Sleeps) -> None:
    failures = FailureModel(
        rate_limit=0.2, server_error=0.2, timeout=0.1, connection=0.1, retry_after_s=2.5
    )
    provider = make(
        scripted([Message.assistant("ok")] * 1), clock, sleeps, seed=3, failures=failures
    )
    seen: dict[str, int] = {}
    for _ in range(1000):
        try:
            await provider.chat(ask())
            kind = "ok"
        except ProviderRateLimitError as exc:
            assert exc.retry_after_s == 2.5
            kind = "rate_limit"
        except ProviderServerError:
            kind = "server_error"
        except ProviderTimeoutError:
            kind = "timeout"
        except ProviderConnectionError:
            kind = "connection"
        seen[kind] = seen.get(kind, 0) + 1
    assert provider.calls == 1000
    assert 150 < seen["rate_limit"] < 250
    assert 150 < seen["server_error"] < 250
    assert 60 < seen["timeout"] < 140
    assert 60 < seen["connection"] < 140
    assert 330 < seen["ok"] < 470


async def test_outage_windows_follow_the_clock(clock: FakeClock, sleeps: Sleeps) -> None:
    start = clock.now_ms()
    failures = FailureModel(outages=((start + 10_000, start + 20_000),))
    provider = make(scripted([Message.assistant("ok")]), clock, sleeps, failures=failures)
    assert (await provider.chat(ask())).message.text == "ok"
    clock.advance(10_000)
    with pytest.raises(ProviderServerError, match="503"):
        await provider.chat(ask())
    clock.advance(10_000)
    assert (await provider.chat(ask())).message.text == "ok"


def test_bad_models_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="sum to at most 1"):
        FailureModel(rate_limit=0.6, server_error=0.6)
    with pytest.raises(ConfigError):
        LatencyModel(base_ms=-1)
    with pytest.raises(ConfigError):
        weighted([])


async def test_response_cache_hit_is_traced_and_free(
    clock: FakeClock, sleeps: Sleeps, traced: Traced
) -> None:
    provider = make(scripted([Message.assistant("Shipped yesterday.")]), clock, sleeps)
    cache = ResponseCache(InMemoryCache(clock=clock), ttl_s=60)
    with traced.run() as run:
        first = await chat(provider, ask(), run=run, cache=cache)
        second = await chat(provider, ask(), run=run, cache=cache)
        other = await chat(provider, ask("Another question"), run=run, cache=cache)
    assert provider.calls == 2
    assert (first.cached, second.cached, other.cached) == (False, True, False)
    assert second.message == first.message
    assert second.usage.total_tokens == 0
    spans = traced.named("chat sim-1")
    assert [span.attributes[semconv.TL_CACHE_HIT] for span in spans] == [False, True, False]
    assert spans[0].attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == first.usage.output_tokens
    assert spans[1].attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 0
    assert spans[0].attributes[semconv.GEN_AI_PROVIDER_NAME] == "simulated"
    assert spans[0].attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    clock.advance(61_000)
    assert not (await chat(provider, ask(), cache=cache)).cached


async def test_empty_output_is_never_cached(clock: FakeClock, sleeps: Sleeps) -> None:
    provider = make(scripted([Message.assistant("")]), clock, sleeps)
    cache = ResponseCache(InMemoryCache(clock=clock))
    await chat(provider, ask(), cache=cache)
    again = await chat(provider, ask(), cache=cache)
    assert not again.cached
    assert provider.calls == 2


async def test_provider_failure_is_recorded_on_the_llm_span(
    clock: FakeClock, sleeps: Sleeps, traced: Traced
) -> None:
    provider = make(
        scripted([Message.assistant("ok")]), clock, sleeps, failures=FailureModel(rate_limit=1.0)
    )
    with traced.run() as run, pytest.raises(ProviderRateLimitError):
        await chat(provider, ask(), run=run)
    span = traced.one("chat sim-1")
    assert span.attributes[semconv.ERROR_TYPE] == "ProviderRateLimitError"

"""The ``simulated`` provider: a scripted or seeded-random model for offline use.

It is a normal `Provider`: a policy maps the conversation to the next assistant
message, a latency model spends (simulated) time, and a failure model raises the same
`ProviderError`s a real API would, all drawn from an injected ``random.Random`` so
a seed reproduces a run exactly.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from tuneloop.clock import Clock
from tuneloop.errors import (
    ConfigError,
    InvalidInputError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderServerError,
    ProviderTimeoutError,
)
from tuneloop.runtime.providers.base import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Message,
    ToolCallRequest,
    Usage,
)
from tuneloop.runtime.timing import Sleep

Policy = Callable[[ChatRequest, random.Random], Message]
"""Maps the conversation so far (and the provider's RNG) to the next assistant message."""

SimulatedFailure = Literal["rate_limit", "server_error", "timeout", "connection"]
_FAILURES: tuple[SimulatedFailure, ...] = get_args(SimulatedFailure)
_CHARS_PER_TOKEN = 4
_MS_PER_S = 1000.0


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """How long an answer takes: a base plus per-token costs, times log-normal jitter."""

    base_ms: float = 250.0
    per_input_token_ms: float = 0.05
    per_output_token_ms: float = 12.0
    jitter_sigma: float = 0.3

    def __post_init__(self) -> None:
        values = (self.base_ms, self.per_input_token_ms, self.per_output_token_ms)
        if min(values) < 0 or self.jitter_sigma < 0:
            raise ConfigError(f"latency model values must be >= 0, got {self}")

    def sample_ms(self, rng: random.Random, usage: Usage) -> float:
        """One latency in milliseconds for a call of this ``usage``."""
        mean = (
            self.base_ms
            + self.per_input_token_ms * usage.input_tokens
            + self.per_output_token_ms * usage.output_tokens
        )
        if self.jitter_sigma == 0:
            return mean
        # Median-preserving log-normal noise: the long right tail real APIs have.
        return mean * rng.lognormvariate(0.0, self.jitter_sigma)


@dataclass(frozen=True, slots=True)
class FailureModel:
    """Per-call probabilities of each failure a real API shows.

    Attributes:
        rate_limit: probability of a 429 (`ProviderRateLimitError` with ``retry_after_s``).
        server_error: probability of a 5xx (`ProviderServerError`).
        timeout: probability of no answer within ``timeout_ms`` (`ProviderTimeoutError`).
        connection: probability of a reset connection (`ProviderConnectionError`).
        retry_after_s: the Retry-After a simulated 429 carries.
        timeout_ms: the time a simulated timeout spends before failing.
        outages: ``(start_ms, end_ms)`` windows of the clock during which every call
            fails with a 503, as in a provider incident (failover drills).
    """

    rate_limit: float = 0.0
    server_error: float = 0.0
    timeout: float = 0.0
    connection: float = 0.0
    retry_after_s: float | None = 1.0
    timeout_ms: float = 30_000.0
    outages: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        rates = [getattr(self, kind) for kind in _FAILURES]
        if min(rates) < 0 or sum(rates) > 1:
            raise ConfigError(
                f"failure probabilities must be >= 0 and sum to at most 1, got "
                f"{dict(zip(_FAILURES, rates, strict=True))}"
            )

    def in_outage(self, now_ms: int) -> bool:
        """Whether ``now_ms`` falls in one of the outage windows."""
        return any(start <= now_ms < end for start, end in self.outages)

    def sample(self, rng: random.Random) -> SimulatedFailure | None:
        """The failure this call suffers, or ``None``. Always draws once from ``rng``."""
        draw = rng.random()
        for kind in _FAILURES:
            draw -= getattr(self, kind)
            if draw < 0:
                return kind
        return None


class SimulatedProvider:
    """A `Provider` answering from a policy, with simulated latency and failures.

    Args:
        policy: the model's behaviour; see `scripted` and `weighted`.
        rng: every random draw (failures, latency, the policy's own choices).
        clock: places calls in time, for the failure model's outage windows.
        sleep: how latency is spent; `simulated_sleep(fake_clock)` to skip real waiting.
        latency: the latency model.
        failures: the failure model.
        name: the ``gen_ai.provider.name`` to report.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        rng: random.Random,
        clock: Clock,
        sleep: Sleep,
        latency: LatencyModel | None = None,
        failures: FailureModel | None = None,
        name: str = "simulated",
    ) -> None:
        self._policy = policy
        self._rng = rng
        self._clock = clock
        self._sleep = sleep
        self._latency = latency or LatencyModel()
        self._failures = failures or FailureModel()
        self._name = name
        self.calls = 0

    @property
    def name(self) -> str:
        """The provider's name for ``gen_ai.provider.name``."""
        return self._name

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Answer as the policy says, after the model's latency, unless a failure is drawn.

        Raises:
            ProviderError: a simulated failure, as the real adapters raise it.
        """
        self.calls += 1
        failure = self._failures.sample(self._rng)
        if self._failures.in_outage(self._clock.now_ms()):
            await self._sleep(self._latency.base_ms / _MS_PER_S)
            raise ProviderServerError(
                f"{self._name} (simulated) answered HTTP 503: outage in progress", status_code=503
            )
        if failure is not None:
            await self._fail(failure, request)
        message = self._policy(request, self._rng)
        if message.role != "assistant":
            raise InvalidInputError(
                f"a simulated policy must return an assistant message, got role {message.role!r}"
            )
        finish: FinishReason = "tool_calls" if message.tool_calls else "stop"
        output_tokens = _tokens(_message_chars(message))
        if (
            request.max_tokens is not None
            and output_tokens > request.max_tokens
            and message.content
        ):
            message = Message.assistant(
                message.content[: request.max_tokens * _CHARS_PER_TOKEN], message.tool_calls
            )
            output_tokens, finish = request.max_tokens, "length"
        usage = Usage(input_tokens=_input_tokens(request), output_tokens=output_tokens)
        await self._sleep(self._latency.sample_ms(self._rng, usage) / _MS_PER_S)
        return ChatResponse(
            message=message,
            finish_reason=finish,
            usage=usage,
            model=request.model,
            provider=self._name,
            raw_finish_reason=finish,
        )

    async def _fail(self, kind: SimulatedFailure, request: ChatRequest) -> None:
        error: ProviderError
        where = f"{self._name} (simulated) model {request.model!r}"
        if kind == "timeout":
            await self._sleep(self._failures.timeout_ms / _MS_PER_S)
            error = ProviderTimeoutError(f"{where} did not answer in time")
        elif kind == "rate_limit":
            await self._sleep(self._latency.base_ms / 4 / _MS_PER_S)
            error = ProviderRateLimitError(
                f"{where} answered HTTP 429: rate limited",
                retry_after_s=self._failures.retry_after_s,
                status_code=429,
            )
        elif kind == "server_error":
            await self._sleep(self._latency.base_ms / _MS_PER_S)
            error = ProviderServerError(f"{where} answered HTTP 500", status_code=500)
        else:
            error = ProviderConnectionError(f"connection to {where} was reset")
        raise error


def scripted(replies: Sequence[Message | Callable[[ChatRequest], Message]]) -> Policy:
    """A policy answering the n-th assistant turn of a conversation with ``replies[n]``.

    It counts the assistant messages already in the request, so it holds no state and
    a resumed conversation gets the same reply. A reply may be a callable of the request.

    Raises:
        InvalidInputError: (when called) the conversation asks for more replies than scripted.
    """
    script = tuple(replies)

    def policy(request: ChatRequest, rng: random.Random) -> Message:
        turn = sum(1 for message in request.messages if message.role == "assistant")
        if turn >= len(script):
            raise InvalidInputError(
                f"the scripted policy has {len(script)} replies; the conversation asks for "
                f"reply {turn + 1}: add replies to the script"
            )
        reply = script[turn]
        return reply if isinstance(reply, Message) else reply(request)

    return policy


def weighted(options: Sequence[tuple[float, Policy]]) -> Policy:
    """A seeded-random policy: each call picks one of ``options`` by weight, from the RNG."""
    if not options or any(weight < 0 for weight, _ in options):
        raise ConfigError("weighted() needs at least one option and no negative weights")
    weights = [weight for weight, _ in options]
    if sum(weights) <= 0:
        raise ConfigError("weighted() needs a positive total weight")
    policies = [policy for _, policy in options]

    def policy(request: ChatRequest, rng: random.Random) -> Message:
        chosen = rng.choices(policies, weights=weights)[0]
        return chosen(request, rng)

    return policy


def tool_call(name: str, arguments: Mapping[str, Any] | str, *, call_id: str) -> ToolCallRequest:
    """A tool call for a scripted reply; ``arguments`` may be raw text (even invalid JSON)."""
    text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
    return ToolCallRequest(id=call_id, name=name, arguments=text)


def _message_chars(message: Message) -> int:
    return len(message.text) + sum(len(c.name) + len(c.arguments) for c in message.tool_calls)


def _input_tokens(request: ChatRequest) -> int:
    chars = sum(_message_chars(message) for message in request.messages)
    chars += sum(len(json.dumps(spec.to_dict())) for spec in request.tools)
    return _tokens(chars)


def _tokens(chars: int) -> int:
    return math.ceil(chars / _CHARS_PER_TOKEN)

"""Calling the model: the routed tier first, then the failover chain, each behind a breaker.

Each model in the chain is retried on transient errors (`retry_call`); when it still
fails, or its provider's circuit breaker is open, the next one is tried. Every
attempt is a ``chat`` span of the run; every move down the chain is a
``tuneloop.routing.failover`` event on the run's span.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tuneloop import semconv
from tuneloop.clock import Clock
from tuneloop.config.model import CircuitBreakerSettings
from tuneloop.errors import ConfigError, ProviderError, ProviderServerError
from tuneloop.runtime.cache import ResponseCache
from tuneloop.runtime.providers.base import ChatRequest, ChatResponse, Provider
from tuneloop.runtime.providers.calling import chat
from tuneloop.runtime.routing import Candidate, Route
from tuneloop.runtime.timing import Sleep
from tuneloop.runtime.tools.resilience import BreakerBoard, RetrySchedule, retry_call
from tuneloop.sdk.spans import LlmCall, Run

BREAKER_PREFIX = "provider:"


class ProviderSet:
    """The providers an agent may call, by name.

    One provider given alone serves every model reference, whatever its provider
    name (a simulated model standing in for all tiers offline).

    Raises:
        ConfigError: two providers with the same name, or none at all.
    """

    def __init__(self, providers: Provider | Mapping[str, Provider] | Sequence[Provider]) -> None:
        self._only: Provider | None = None
        self._by_name: dict[str, Provider] = {}
        if isinstance(providers, Mapping):
            self._by_name = dict(providers)
        elif isinstance(providers, Sequence):
            for provider in providers:
                if provider.name in self._by_name:
                    raise ConfigError(f"two providers are named {provider.name!r}")
                self._by_name[provider.name] = provider
        else:
            self._only = providers
        if self._only is None and not self._by_name:
            raise ConfigError("an Agent needs at least one provider")

    def get(self, name: str) -> Provider:
        """The provider for a model reference's ``provider``.

        Raises:
            ConfigError: no provider of that name was given.
        """
        if self._only is not None:
            return self._only
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(
                f"the config routes to provider {name!r}, but the Agent has none by that "
                f"name; providers given: {sorted(self._by_name)}"
            ) from None


@dataclass(frozen=True, slots=True)
class ModelCall:
    """What answered: the response, the model that gave it and the request it got."""

    response: ChatResponse
    candidate: Candidate
    request: ChatRequest
    failovers: int


@dataclass(frozen=True, slots=True)
class Caller:
    """How an agent calls models: providers, breakers, retries, the response cache."""

    providers: ProviderSet
    breakers: BreakerBoard
    breaker_settings: CircuitBreakerSettings
    schedule: RetrySchedule
    sleep: Sleep
    rng: random.Random
    clock: Clock
    cache: ResponseCache | None = None

    async def call(
        self,
        route: Route,
        build: Callable[[Candidate], ChatRequest],
        run: Run | None,
        annotate: Callable[[LlmCall, ChatResponse], None] | None = None,
    ) -> ModelCall:
        """The first answer down ``route``'s chain (``annotate``: see `chat`).

        Raises:
            ProviderError: every model failed; the message lists what each one did.
        """
        problems: list[str] = []
        last: ProviderError | None = None
        for index, candidate in enumerate(route.chain):
            provider = self.providers.get(candidate.model.provider)
            breaker = self.breakers.breaker(BREAKER_PREFIX + provider.name, self.breaker_settings)
            assert breaker is not None  # settings are always given
            label = f"{candidate.tier or 'model'} ({provider.name} {candidate.model.name})"
            permit = breaker.acquire()
            if permit is None:
                problems.append(f"{label}: circuit open")
                self._failover(run, candidate, "circuit_open")
                continue
            request = build(candidate)

            async def attempt(
                _: int, provider: Provider = provider, request: ChatRequest = request
            ) -> ChatResponse:
                return await chat(provider, request, run=run, cache=self.cache, annotate=annotate)

            try:
                response = await retry_call(attempt, self.schedule, sleep=self.sleep, rng=self.rng)
            except ProviderError as exc:
                breaker.record_failure(permit)
                last = exc
                problems.append(f"{label}: {type(exc).__name__}: {exc}")
                self._failover(run, candidate, type(exc).__name__)
                continue
            except BaseException:
                breaker.release(permit)
                raise
            breaker.record_success(permit)
            return ModelCall(response, candidate, request, index)
        message = "every model in the routing chain failed: " + "; ".join(problems)
        if last is not None:
            raise type(last)(message, status_code=last.status_code) from last
        raise ProviderServerError(message)

    def _failover(self, run: Run | None, candidate: Candidate, error: str) -> None:
        if run is None:
            return
        attributes: dict[str, str] = {
            semconv.TL_ROUTING_TIER: candidate.tier or "",
            semconv.GEN_AI_REQUEST_MODEL: candidate.model.name,
            semconv.GEN_AI_PROVIDER_NAME: candidate.model.provider,
            semconv.ERROR_TYPE: error,
        }
        run.span.add_event(
            semconv.TL_ROUTING_FAILOVER_EVENT, attributes, timestamp=self.clock.now_ns()
        )

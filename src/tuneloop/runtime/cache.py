"""Caches behind one `Cache` protocol: provider responses and tool results, with TTLs.

`InMemoryCache` serves one process; a store-backed cache shared by replicas implements
the same protocol. Keys are digests of canonical JSON, so the same request always
maps to the same key whatever the order of its dict keys.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from tuneloop.clock import Clock
from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.runtime.providers.base import ChatRequest, ChatResponse, Usage

_MS_PER_S = 1000


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no whitespace: equal data, equal text.

    Raises:
        InvalidInputError: the value holds something JSON cannot represent.
    """
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"cannot key a cache entry on non-JSON data: {exc}") from None


def digest(value: object) -> str:
    """sha256 hex digest of the value's canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A cached value and when it was stored (epoch ms), so callers can judge its age."""

    value: Any
    stored_at_ms: int

    def age_s(self, now_ms: int) -> float:
        """Seconds since the entry was stored."""
        return max(0, now_ms - self.stored_at_ms) / _MS_PER_S


class Cache(Protocol):
    """A key-value cache of JSON data with per-entry time to live."""

    async def get(self, key: str) -> CacheEntry | None:
        """The live entry under ``key``, or ``None`` (absent or expired)."""
        ...

    async def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> None:
        """Store JSON-able ``value`` under ``key`` for ``ttl_s`` seconds (``None``: no expiry)."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key``; no error if it is absent."""
        ...


class InMemoryCache:
    """A process-local `Cache`: least recently used entries go first beyond ``max_entries``.

    Values are stored as canonical JSON text, so a caller mutating what it got back
    cannot change the cache, and what is cacheable here is cacheable in a shared store.

    Args:
        clock: decides expiry (a `FakeClock` in tests and simulations).
        max_entries: bound on the number of entries.
    """

    def __init__(self, *, clock: Clock, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ConfigError(f"max_entries must be >= 1, got {max_entries}")
        self._clock = clock
        self._max_entries = max_entries
        # key -> (json text, stored_at_ms, expires_at_ms or None)
        self._entries: OrderedDict[str, tuple[str, int, int | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> CacheEntry | None:
        """The live entry under ``key``, or ``None``."""
        item = self._entries.get(key)
        if item is None:
            return None
        text, stored_at, expires_at = item
        if expires_at is not None and self._clock.now_ms() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return CacheEntry(json.loads(text), stored_at)

    async def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> None:
        """Store ``value`` under ``key``; a ``ttl_s`` of 0 stores nothing."""
        if ttl_s is not None and ttl_s <= 0:
            return
        now = self._clock.now_ms()
        expires = None if ttl_s is None else now + round(ttl_s * _MS_PER_S)
        self._entries[key] = (canonical_json(value), now, expires)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        self._entries.pop(key, None)


def response_key(provider: str, request: ChatRequest) -> str:
    """The response cache's key: the provider and the whole canonical request."""
    return "response:" + digest({"provider": provider, "request": request.to_dict()})


def tool_key(tool: str, arguments: Mapping[str, Any]) -> str:
    """The tool-result cache's key: the tool and its validated arguments."""
    return "tool:" + digest({"tool": tool, "arguments": dict(arguments)})


class ResponseCache:
    """Exact-match cache of provider responses keyed by the canonical request.

    A hit comes back with ``cached=True`` and zero usage: it spent no tokens.

    Args:
        cache: where entries live.
        ttl_s: how long a response stays valid (``None``: until evicted).
    """

    def __init__(self, cache: Cache, *, ttl_s: float | None = None) -> None:
        if ttl_s is not None and ttl_s <= 0:
            raise ConfigError(f"response cache ttl_s must be > 0 or None, got {ttl_s}")
        self._cache = cache
        self._ttl_s = ttl_s

    async def get(self, provider: str, request: ChatRequest) -> ChatResponse | None:
        """The cached response to this exact request, or ``None``."""
        entry = await self._cache.get(response_key(provider, request))
        if entry is None:
            return None
        return replace(ChatResponse.from_dict(entry.value, cached=True), usage=Usage())

    async def put(self, provider: str, request: ChatRequest, response: ChatResponse) -> None:
        """Remember ``response`` as the answer to ``request``."""
        await self._cache.set(
            response_key(provider, request), response.to_dict(), ttl_s=self._ttl_s
        )

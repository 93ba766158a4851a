"""The in-process cache: TTLs on the fake clock, LRU bound, canonical keys."""

from __future__ import annotations

import pytest

from tuneloop.clock import FakeClock
from tuneloop.errors import InvalidInputError
from tuneloop.runtime.cache import InMemoryCache, digest, response_key, tool_key
from tuneloop.runtime.providers import ChatRequest, Message

pytestmark = pytest.mark.anyio


async def test_entries_expire_at_their_ttl(clock: FakeClock) -> None:
    cache = InMemoryCache(clock=clock)
    await cache.set("k", {"v": 1}, ttl_s=10)
    await cache.set("forever", [1, 2])
    clock.advance(9_999)
    entry = await cache.get("k")
    assert entry is not None and entry.value == {"v": 1}
    assert entry.age_s(clock.now_ms()) == pytest.approx(9.999)
    clock.advance(1)
    assert await cache.get("k") is None
    clock.advance(10**9)
    assert (await cache.get("forever")).value == [1, 2]  # type: ignore[union-attr]
    await cache.set("zero", 1, ttl_s=0)
    assert await cache.get("zero") is None


async def test_least_recently_used_goes_first(clock: FakeClock) -> None:
    cache = InMemoryCache(clock=clock, max_entries=2)
    await cache.set("a", 1)
    await cache.set("b", 2)
    await cache.get("a")
    await cache.set("c", 3)
    assert await cache.get("b") is None
    assert [(await cache.get(k)).value for k in ("a", "c")] == [1, 3]  # type: ignore[union-attr]
    await cache.delete("a")
    assert len(cache) == 1


async def test_callers_cannot_mutate_what_is_cached(clock: FakeClock) -> None:
    cache = InMemoryCache(clock=clock)
    value = {"items": [1]}
    await cache.set("k", value)
    value["items"].append(2)
    got = await cache.get("k")
    assert got is not None and got.value == {"items": [1]}
    got.value["items"].append(3)
    assert (await cache.get("k")).value == {"items": [1]}  # type: ignore[union-attr]
    with pytest.raises(InvalidInputError, match="non-JSON"):
        await cache.set("bad", {"x": object()})


def test_keys_are_canonical() -> None:
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert tool_key("t", {"x": 1, "y": 2}) == tool_key("t", {"y": 2, "x": 1})
    assert tool_key("t", {"x": 1}) != tool_key("u", {"x": 1})
    request = ChatRequest("m", (Message.user("hi"),), temperature=0.0)
    assert response_key("openai", request) == response_key(
        "openai", ChatRequest("m", (Message.user("hi"),), temperature=0.0)
    )
    assert response_key("openai", request) != response_key("anthropic", request)
    assert response_key("openai", request) != response_key(
        "openai", ChatRequest("m", (Message.user("hi"),), temperature=0.5)
    )

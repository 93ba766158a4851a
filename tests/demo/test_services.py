"""The demo's backends: the faults they are known for, timeouts honoured, simulated time."""

from __future__ import annotations

import asyncio
import math
from statistics import NormalDist

import httpx
import pytest

from tuneloop.clock import FakeClock
from tuneloop.demo.services import (
    ORDERS_UNAVAILABLE,
    SEARCH_LATENCY,
    Services,
    order_record,
)
from tuneloop.runtime import simulated_sleep


def services(seed: int = 1) -> tuple[Services, FakeClock]:
    clock = FakeClock()
    return Services(seed, sleep=simulated_sleep(clock)), clock


def test_the_orders_api_answers_503_on_about_eight_percent_of_calls() -> None:
    api, _ = services()

    async def calls() -> list[str]:
        outcomes = []
        for _ in range(3000):
            try:
                await api.lookup_order("A-10001", timeout_s=5.0)
                outcomes.append("ok")
            except httpx.HTTPStatusError as exc:
                outcomes.append(str(exc.response.status_code))
        return outcomes

    outcomes = asyncio.run(calls())
    assert set(outcomes) == {"ok", "503"}
    assert abs(outcomes.count("503") / len(outcomes) - ORDERS_UNAVAILABLE) < 0.015


def test_a_call_slower_than_the_callers_timeout_gives_up_at_the_timeout() -> None:
    api, clock = services(3)

    async def search() -> tuple[int, float]:
        timeouts, longest = 0, 0.0
        for _ in range(2000):
            before = clock.now_ns()
            try:
                await api.search_policy("Do you ship to Canada?", timeout_s=3.0)
            except httpx.ReadTimeout:
                timeouts += 1
                assert clock.now_ns() - before == 3_000_000_000
            longest = max(longest, (clock.now_ns() - before) / 1e6)
        return timeouts, longest

    timeouts, longest = asyncio.run(search())
    # The search's p95 sits above a 3 s timeout: about 6 % of calls are cut off.
    z = math.log(3000 / SEARCH_LATENCY.median_ms) / SEARCH_LATENCY.sigma
    expected = 1 - NormalDist().cdf(z)
    assert abs(timeouts / 2000 - expected) < 0.015
    assert longest == pytest.approx(3000.0)


def test_search_finds_the_passage_a_question_asks_about() -> None:
    api, _ = services()
    found = asyncio.run(api.search_policy("How long does express shipping take?", timeout_s=60))
    assert found[0]["topic"] == "express"
    assert asyncio.run(api.search_policy("hello there", timeout_s=60)) == []


def test_an_order_always_has_the_same_record() -> None:
    first, again, other = order_record("A-12345"), order_record("A-12345"), order_record("A-54321")
    assert first == again != other
    assert first["order_id"] == "A-12345" and first["total_cents"] >= 500
    assert "@example." in first["email"]


def test_the_refunds_api_refunds_the_orders_total() -> None:
    api, _ = services(5)
    refund = asyncio.run(api.issue_refund("A-12345", timeout_s=10))
    assert refund["amount_cents"] == order_record("A-12345")["total_cents"]
    assert refund["refund_id"].startswith("rf_")

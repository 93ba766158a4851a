"""The server's periodic refresh: off at interval 0, driven directly, and run by the lifespan.

They share the faulty world's store and run in file order: the first one starts with no
recommendations stored.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient

from tests.recommend.conftest import World
from tests.recommend.traffic import AGENT, PROJECT, Traffic
from tuneloop.clock import FakeClock
from tuneloop.server import create_app
from tuneloop.server.routers.recommendations import RecommendationJob
from tuneloop.settings import load_settings
from tuneloop.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture
def filled(faulty_world: World) -> tuple[Store, Traffic]:
    """The faulty world's store, with the config its runs were made with."""
    store, traffic = faulty_world.store, faulty_world.traffic
    store.configs.create_version(PROJECT, AGENT, traffic.config, author="test", now_ms=1)
    return store, traffic


def _app(store: Store, traffic: Traffic, interval_s: float) -> TestClient:
    settings = load_settings(
        ingest_workers=0, recommend_interval_s=interval_s, recommend_window="2d"
    )
    app = create_app(settings, store=store, clock=FakeClock(traffic.end_ms))
    return TestClient(app)


def test_interval_zero_starts_nothing_and_a_tick_refreshes_every_agent(
    filled: tuple[Store, Traffic],
) -> None:
    store, traffic = filled
    with _app(store, traffic, 0) as client:
        job: RecommendationJob = client.app.state.recommend_job  # type: ignore[attr-defined]
        assert job.interval_s == 0 and job.window_ms == 2 * 86_400_000
        time.sleep(0.2)
        assert job.ticks == 0 and store.recommendations.list_for(PROJECT, AGENT) == []
        (result,) = asyncio.run(job.tick())
        assert (result["project_id"], result["agent"]) == (PROJECT, AGENT)
        assert result["saved"]["opened"] == 4
        items = store.recommendations.list_for(PROJECT, AGENT)
        assert {i["version"] for i in items} == {traffic.version}
        assert {i["kind"] for i in items} == {
            "retry",
            "raise_timeout",
            "lower_temperature",
            "cheaper_tier",
        }
        (again,) = asyncio.run(job.tick())
        assert again["saved"]["updated"] == 4 and job.ticks == 2


def test_the_lifespan_runs_the_job_on_its_interval_and_stops_it(
    filled: tuple[Store, Traffic],
) -> None:
    store, traffic = filled
    with _app(store, traffic, 0.05) as client:
        job: RecommendationJob = client.app.state.recommend_job  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while job.ticks < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.ticks >= 2
    ticks = job.ticks
    time.sleep(0.2)
    assert job.ticks == ticks  # cancelled with the app
    assert len(store.recommendations.list_for(PROJECT, AGENT)) == 4


def test_a_configured_optimizer_rewrites_prompts_in_the_refresh(
    filled: tuple[Store, Traffic],
) -> None:
    import random

    from tuneloop.runtime.providers import LatencyModel, Message, SimulatedProvider
    from tuneloop.runtime.timing import simulated_sleep
    from tuneloop.server.routers.recommendations import provider_optimizer

    store, traffic = filled
    revised = "Pick one intent: order_status, refund, shipping_policy or account. Intent only."
    clock = FakeClock(traffic.end_ms)
    provider = SimulatedProvider(
        lambda request, rng: Message.assistant(f"<prompt>{revised}</prompt>"),
        rng=random.Random(0),
        clock=clock,
        sleep=simulated_sleep(clock),
        latency=LatencyModel(0.0, 0.0, 0.0, 0.0),
    )
    client = _app(store, traffic, 0)
    client.app.state.recommend_optimizer = provider_optimizer(provider, "gpt-4o")  # type: ignore[attr-defined]
    with client:
        asyncio.run(client.app.state.recommend_job.tick())  # type: ignore[attr-defined]
    (rewrite,) = [
        i
        for i in store.recommendations.list_for(PROJECT, AGENT)
        if i["kind"].startswith("rewrite:")
    ]
    assert rewrite["change"] == [{"op": "replace", "path": "/prompts/router", "value": revised}]
    assert rewrite["requires_eval_gate"] and provider.calls == 1
    accepted = store.recommendations.accept(PROJECT, AGENT, rewrite["id"], author="k", now_ms=2)
    candidate = store.configs.get_version(PROJECT, AGENT, accepted["version"]["version"])
    assert candidate.config["prompts"]["router"] == revised

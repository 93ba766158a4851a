"""Demo-world traffic with and without the known faults, ingested through the real path.

The support agent of ``tuneloop.demo`` plays the world's runs through the SDK
(`tuneloop.Client`); its OTLP exports go to an httpx transport that decodes,
normalizes and writes them exactly as the server's ingest does (``write_spans``), and
its feedback to ``Store.add_feedback``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import httpx
import orjson

from tuneloop.clock import FakeClock
from tuneloop.config.canonical import content_hash
from tuneloop.config.model import AgentConfig
from tuneloop.demo.agent import AGENT, play, send_feedback
from tuneloop.demo.script import AgentSettings, ToolSettings
from tuneloop.demo.world import DEFAULT_START_MS, World
from tuneloop.sdk import Client
from tuneloop.settings import DEFAULT_PRICES
from tuneloop.store import Store
from tuneloop.store.ingest import write_spans
from tuneloop.telemetry.normalize import Normalizer
from tuneloop.telemetry.otlp import decode_request, decompress
from tuneloop.telemetry.pricing import PriceTable

PROJECT = "acme"
HOUR_MS = 3_600_000
TRIVIAL = ("account", "order_status", "shipping_policy")
ROUTER_PROMPT = (
    "Classify the message into one intent: order_status, refund, shipping_policy, account."
)
SYSTEM_PROMPT = "You are a helpful support agent for {shop}. Answer briefly and cite the policy."


def demo_config(*, faulty: bool) -> AgentConfig:
    """The support agent's config: well tuned, or with the four known faults."""
    data: dict[str, Any] = {
        "model": {"provider": "openai", "name": "gpt-4o"},
        "params": {"temperature": 1.0 if faulty else 0.0},
        "prompts": {"router": ROUTER_PROMPT, "system": SYSTEM_PROMPT},
        "tools": {
            "lookup_order": {
                "timeout_ms": 5000,
                "retry": {"max_attempts": 1 if faulty else 3},
                "cache_ttl_s": 60,
            },
            "issue_refund": {"timeout_ms": 5000, "side_effect": "write"},
            "search_policy": {"timeout_ms": 3000 if faulty else 8000, "cache_ttl_s": 600},
            "get_account": {"timeout_ms": 5000, "cache_ttl_s": 300},
        },
        "guardrails": [{"name": "pii", "kind": "pii", "hops": ["input"], "action": "redact"}],
        "routing": {
            "tiers": {
                "small": {"provider": "openai", "name": "gpt-4o-mini"},
                "large": {"provider": "openai", "name": "gpt-4o"},
            },
            "default_tier": "large",
            "rules": [] if faulty else [{"tier": "small", "intents": list(TRIVIAL)}],
        },
    }
    return AgentConfig.from_data(data)


def demo_settings(config: AgentConfig, *, faulty: bool) -> AgentSettings:
    """How the simulated agent behaves under ``config`` (its version is the config's hash)."""
    tools = {
        name: ToolSettings(
            timeout_ms=float(settings.timeout_ms), max_retries=settings.retry.max_attempts - 1
        )
        for name, settings in config.tools.items()
    }
    return AgentSettings(
        version=content_hash(config.to_data()),
        router_temperature=float(config.params.temperature or 0.0),
        answer_model="gpt-4o",
        tools=MappingProxyType(tools),  # type: ignore[arg-type]
        answer_routes=MappingProxyType({} if faulty else dict.fromkeys(TRIVIAL, "gpt-4o-mini")),  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Traffic:
    """What was sent: the version the runs carry, their time span, and the config."""

    version: str
    config: AgentConfig
    start_ms: int
    end_ms: int
    runs: int


def ingest_transport(store: Store, project: str) -> httpx.MockTransport:
    """An httpx transport that ingests OTLP and feedback into ``store`` like the server."""
    normalizer = Normalizer(prices=PriceTable(DEFAULT_PRICES))
    # One writer at a time, as the server's IngestWriter: spans come from the exporter
    # thread while feedback comes from the agent's.
    writing = threading.Lock()

    def handle(request: httpx.Request) -> httpx.Response:
        with writing:
            return _handle(request)

    def _handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/traces":
            raw = decompress(
                request.content, request.headers.get("content-encoding"), limit=1 << 26
            )
            batch = normalizer.normalize(decode_request(raw, "protobuf"))
            with store.engine.begin() as conn:
                write_spans(conn, project, batch.spans)
            return httpx.Response(200, headers={"content-type": "application/x-protobuf"})
        if request.url.path == "/api/v1/feedback":
            body = orjson.loads(request.content)
            store.add_feedback(
                project,
                trace_id=body["trace_id"],
                name=body["name"],
                value=body["value"],
                comment=body["comment"],
                key_id="test",
                now_ms=0,
            )
            return httpx.Response(201, json={"ok": True})
        return httpx.Response(404, json={"error": {"message": "not here"}})

    return httpx.MockTransport(handle)


def send_demo_traffic(
    store: Store | None,
    *,
    runs: int,
    seed: int,
    faulty: bool,
    state_dir: str,
    sample_rate: float = 1.0,
    project: str = PROJECT,
    start_ms: int = DEFAULT_START_MS,
    server: tuple[str, str] | None = None,
) -> Traffic:
    """Play ``runs`` runs of the demo world through the SDK.

    Into ``store`` through the ingest code, or to a live ``server`` (its URL and an
    ingest key) over HTTP.
    """
    config = demo_config(faulty=faulty)
    settings = demo_settings(config, faulty=faulty)
    world = World(seed, start_ms=start_ms, lookup_unavailable_rate=0.08 if faulty else 0.0)
    clock = FakeClock(start_ms)
    if server is None:
        assert store is not None
        url, key, transport = "http://ingest.test", "tlk_test", ingest_transport(store, project)
    else:
        (url, key), transport = server, None
    with Client(
        url,
        key,
        transport=transport,
        clock=clock,
        sample_rate=sample_rate,
        service_name="support-agent",
        max_queue_spans=200_000,
        state_dir=state_dir,
    ) as client:
        for _ in range(runs):
            script = world.next_run(settings)
            trace_id = play(client, clock, script)
            send_feedback(client, script, trace_id)
        assert client.flush(timeout_s=120.0)
        assert client.stats.spans_dropped == 0 and client.stats.spans_failed == 0
    return Traffic(settings.version, config, start_ms, clock.now_ms() + 1, runs)


__all__ = ["AGENT", "HOUR_MS", "PROJECT", "Traffic", "demo_config", "send_demo_traffic"]

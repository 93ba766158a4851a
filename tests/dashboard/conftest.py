"""Dashboard fixtures: a real server with data sent through the SDK, and signed-in clients."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import start_server
from tests.sdk.sdk_fakes import FAST_RETRY
from tuneloop.config.allocations import AllocationSpec, VariantSpec
from tuneloop.config.loading import load_bundle_file, load_config_file
from tuneloop.sdk import Client

EXAMPLES = Path(__file__).parents[2] / "examples" / "support"
SECRET = "dashboard-tests-secret-key-0123456789abcdef"


@dataclass
class Seeded:
    """What the seed sent, for assertions: trace ids by name and version hashes by label."""

    traces: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class DashServer:
    """A running server (on one engine) with a project, its keys and seeded data."""

    url: str
    project: str
    admin_key: str
    ingest_key: str
    store: Any
    seeded: Seeded

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=10
        )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: httpx.Client, key: str) -> httpx.Response:
    """Sign in through the real login form (GET for its token, POST with it)."""
    form = client.get("/ui/login")
    assert form.status_code == 200
    return client.post("/ui/login", data={"csrf": csrf_of(form.text), "key": key, "next": "/ui/"})


def _wait_for_runs(api: httpx.Client, expected: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if api.get("/api/v1/usage").json()["runs"] >= expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"the server never stored {expected} runs")


SUPPORT_RUNS = 4
BILLING_RUNS = 2


def seed(url: str, ingest_key: str, admin_key: str) -> Seeded:
    """Runs of two agents through the SDK, feedback, and three config versions via the API."""
    seeded = Seeded()
    with Client(url, ingest_key, retry=FAST_RETRY) as client:
        with client.run(
            "support", unit_id="user-1", session_id="sess-42", config_version="1.1.0"
        ) as run:
            run.span.add_event("run.state", {"from": "planning", "to": "acting"})
            with run.guardrail("pii", verdict="allow"):
                pass
            with run.llm_call(
                "gpt-4o-mini",
                "openai",
                input_messages=[{"role": "user", "content": "Where is my order 1234?"}],
                output_messages=[{"role": "assistant", "content": "Order 1234 ships tomorrow."}],
            ) as call:
                call.usage(input_tokens=1200, output_tokens=300, cost_usd=0.004)
            with run.tool_call("lookup_order", {"order_id": "1234"}) as tool:
                tool.result(data={"status": "shipped", "eta": "tomorrow"})
            run.outcome("success")
        seeded.traces["first"] = run.trace_id
        time.sleep(0.005)  # runs are stored to the millisecond: keep the session's order
        with client.run(
            "support", unit_id="user-1", session_id="sess-42", config_version="1.1.0"
        ) as run:
            with run.guardrail("prompt-injection", verdict="block"):
                pass
            with run.llm_call("gpt-4o-mini", "openai") as call:
                call.usage(input_tokens=800, output_tokens=100, cost_usd=0.002)
            with run.tool_call("issue_refund", {"order_id": "1234", "amount": 40}) as tool:
                tool.fail("503", retryable=True, message="refund service unavailable")
                tool.retries(2)
            run.outcome("escalated")
        seeded.traces["escalated"] = run.trace_id
        with client.run("support", unit_id="user-2", config_version="1.0.0") as run:
            with run.llm_call("gpt-4o-mini", "openai") as call:
                call.usage(input_tokens=500, output_tokens=50, cost_usd=0.001)
            run.outcome("failure")
        seeded.traces["failure"] = run.trace_id
        with (
            client.run("support", unit_id="user-3", config_version="1.0.0") as run,
            run.llm_call("gpt-4o-mini", "openai") as call,
        ):
            call.usage(input_tokens=500, output_tokens=50, cost_usd=0.001)
        seeded.traces["plain"] = run.trace_id
        for i in range(BILLING_RUNS):
            with (
                client.run("billing", unit_id=f"acct-{i}") as run,
                run.llm_call("gpt-4o", "openai") as call,
            ):
                call.usage(input_tokens=100, output_tokens=10, cost_usd=0.01)
        assert client.flush(timeout_s=10.0)
        assert client.feedback(seeded.traces["first"], "thumbs", 1.0, "quick answer")
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=10
    ) as api:
        _wait_for_runs(api, SUPPORT_RUNS + BILLING_RUNS)
        base = load_config_file(EXAMPLES / "agent.yaml")
        first = api.post(
            "/api/v1/agents/support/versions",
            json={"config": base.to_data(), "label": "1.0.0", "message": "first version"},
        )
        assert first.status_code == 201, first.text
        bundle = load_bundle_file(EXAMPLES / "bundle.yaml")
        second = api.post(
            "/api/v1/agents/support/bundles",
            json={"bundle": bundle.to_data(), "label": "1.1.0", "message": "quality loop"},
        )
        assert second.status_code == 201, second.text
        moved = api.put(
            "/api/v1/agents/support/channels/production",
            json={"version": "1.1.0", "expected_version": "1.0.0"},
        )
        assert moved.status_code == 200, moved.text
        seeded.versions = {"1.0.0": first.json()["version"], "1.1.0": second.json()["version"]}
    return seeded


def make_server(store: Any, home: Path) -> tuple[Any, Any, DashServer]:
    from tuneloop.server import create_app
    from tuneloop.settings import load_settings

    now = int(time.time() * 1000)
    store.keys.ensure_project("acme", now_ms=now)
    ingest = store.keys.create_key("acme", "ingest", now_ms=now)
    admin = store.keys.create_key("acme", "admin", now_ms=now)
    settings = load_settings(home=home, ingest_workers=0, secret_key=SECRET)
    server, thread, url = start_server(create_app(settings, store=store))
    seeded = seed(url, ingest.secret, admin.secret)
    # Experiments have no API yet: publish a running one's allocation through the store.
    experiment = AllocationSpec(
        kind="experiment",
        key="support-prompt",
        salt="support-prompt",
        variants=[
            VariantSpec(name="control", weight=0.5, version=seeded.versions["1.0.0"]),
            VariantSpec(name="concise", weight=0.5, version=seeded.versions["1.1.0"]),
        ],
    )
    store.agent_state.put_allocation("acme", "support", experiment, author="seed", now_ms=now)
    return server, thread, DashServer(url, "acme", admin.secret, ingest.secret, store, seeded)


@pytest.fixture
def dash(store: Any, tmp_path: Path) -> Iterator[DashServer]:
    """A seeded server of its own on each engine, for tests that change what it holds."""
    server, thread, running = make_server(store, tmp_path)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DashServer]:
    """One seeded server per engine for a module's read-only tests (seeding takes seconds)."""
    from tests.conftest import _wipe
    from tuneloop.store import Store

    home = tmp_path_factory.mktemp("dashboard")
    if request.param == "sqlite":
        store: Any = Store.open(f"sqlite:///{home / 'tuneloop.db'}")
    else:
        store = request.getfixturevalue("_postgres_store")
    server, thread, running = make_server(store, home)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(10)
        if request.param == "sqlite":
            store.close()
        else:
            _wipe(store)


@pytest.fixture
def ui(shared: DashServer) -> Iterator[httpx.Client]:
    """An HTTP client signed in to the shared server (cookies kept, redirects not followed)."""
    with httpx.Client(base_url=shared.url, timeout=10) as client:
        response = sign_in(client, shared.admin_key)
        assert response.status_code == 303, response.text
        yield client

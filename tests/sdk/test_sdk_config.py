"""`Client.config`: resolved locally from a fetched state, a saved one, or a fallback file."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.sdk.sdk_fakes import FAST_RETRY, FakeServer, attrs, by_name
from tests.sdk.state_fakes import (
    CANDIDATE,
    STABLE,
    STATE_PREFIX,
    RealStateServer,
    StateServer,
    allocation,
    config_data,
    state,
)
from tuneloop import semconv
from tuneloop.assign import assign
from tuneloop.config.allocations import AllocationSpec, VariantSpec
from tuneloop.config.model import AgentConfig
from tuneloop.errors import ConfigError
from tuneloop.sdk import Client
from tuneloop.sdk.config import fallback_config

UNITS = [f"user-{i}" for i in range(2000)]


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def backend() -> StateServer:
    return StateServer()


@pytest.fixture
def client_for(backend: StateServer, tmp_path: Path) -> Callable[..., Client]:
    """Clients reading states from ``backend`` (through httpx.MockTransport)."""
    clients: list[Client] = []

    def make(**kwargs: Any) -> Client:
        options: dict[str, Any] = {
            "base_url": "http://tuneloop.test",
            "api_key": "tl-key",
            "transport": backend.transport,
            "agents": ["support"],
            "state_dir": tmp_path / "state",
            "retry": FAST_RETRY,
            "flush_interval_s": 60.0,
        }
        options.update(kwargs)
        client = Client(**options)
        clients.append(client)
        return client

    yield make  # type: ignore[misc]
    for client in clients:
        client.shutdown(timeout_s=2.0)


def test_config_is_typed_and_carries_its_version_and_variant(
    backend: StateServer, client_for: Callable[..., Client]
) -> None:
    backend.put(state(allocations=[allocation((0.5, 0.5), coverage=0.5)]))
    client = client_for()
    assert client.wait_for_state(5.0)
    seen: dict[str | None, Any] = {}
    for unit in UNITS[:400]:
        cfg = client.config("support", unit_id=unit)
        seen[cfg.variant] = cfg
    control, treatment, production = seen["control"], seen["treatment"], seen[None]
    assert (control.version, control.label, control.key, control.kind) == (
        STABLE.version,
        "1.0.0",
        "exp-router",
        "experiment",
    )
    assert (treatment.version, treatment.label) == (CANDIDATE.version, "1.1.0")
    assert treatment.params.temperature == 0.7
    assert treatment.prompt("router") == "Route, then check policy."
    assert treatment.tool("data_fetch").timeout_ms == 2000
    assert treatment.model.name == "gpt-4o"
    assert (production.version, production.key, production.source) == (
        STABLE.version,
        None,
        "server",
    )
    with pytest.raises(ConfigError, match="known tools: data_fetch, issue_refund"):
        treatment.tool("nope")
    with pytest.raises(TypeError):
        treatment.prompts["router"] = "changed for everyone"  # type: ignore[index]
    with pytest.raises(AttributeError):
        treatment.version = "other"  # type: ignore[misc]


def test_every_unit_gets_the_documented_assignment(
    backend: StateServer, client_for: Callable[..., Client]
) -> None:
    backend.put(state(allocations=[allocation((0.3, 0.7), salt="s-42", coverage=0.8)]))
    client = client_for()
    assert client.wait_for_state(5.0)
    names = ["control", "treatment"]
    for unit in UNITS:
        index = assign("s-42", unit, [0.3, 0.7], coverage=0.8)
        assert client.config("support", unit_id=unit).variant == (
            None if index is None else names[index]
        )


def test_session_allocations_bucket_on_the_session(
    backend: StateServer, client_for: Callable[..., Client]
) -> None:
    backend.put(state(allocations=[allocation((0.5, 0.5), unit_type="session")]))
    client = client_for()
    assert client.wait_for_state(5.0)
    for i in range(200):
        session = f"session-{i}"
        variants = {
            client.config("support", unit_id=f"user-{j}", session_id=session).variant
            for j in range(5)
        }
        assert len(variants) == 1  # the users don't matter, the session does
        assert variants == {client.config("support", unit_id=session).variant}
    assert {client.config("support", session_id=f"s{i}").variant for i in range(50)} == {
        "control",
        "treatment",
    }


def test_a_user_allocation_needs_a_user(
    backend: StateServer, client_for: Callable[..., Client]
) -> None:
    backend.put(state(allocations=[allocation((0.0, 1.0))]))
    client = client_for()
    assert client.wait_for_state(5.0)
    assert client.config("support", unit_id="u1").variant == "treatment"
    anonymous = client.config("support", session_id="s1")
    assert (anonymous.variant, anonymous.version) == (None, STABLE.version)


def test_the_run_span_records_the_config_version_and_variant(
    backend: StateServer, tmp_path: Path
) -> None:
    backend.put(state(allocations=[allocation((0.0, 1.0), key="exp-7")]))
    traces = FakeServer()

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith(STATE_PREFIX):
            return backend.handler(request)
        return traces(request)

    with Client(
        "http://t.test",
        transport=httpx.MockTransport(route),
        agents=["support"],
        state_dir=tmp_path,
        retry=FAST_RETRY,
        flush_interval_s=60.0,
    ) as client:
        assert client.wait_for_state(5.0)
        with client.run("support", unit_id="u1"):
            client.config("support", unit_id="u1")
        with client.run("support", unit_id="u2") as run, run.tool_call("lookup"):
            client.config("support", unit_id="u2")  # inside a child: the run is not tagged
        cfg = client.config("support", unit_id="u3")  # outside any run: nothing to tag
        with client.run("support", unit_id="u3", config=cfg):
            pass
        assert client.flush(5.0)
    runs = [attrs(s.attributes) for s in traces.spans() if s.name == "invoke_agent support"]
    tagged = {
        semconv.TL_CONFIG_VERSION: CANDIDATE.version,
        semconv.FEATURE_FLAG_KEY: "exp-7",
        semconv.FEATURE_FLAG_RESULT_VARIANT: "treatment",
    }
    assert [{k: r.get(k) for k in tagged} for r in runs] == [
        tagged,
        dict.fromkeys(tagged),
        tagged,
    ]
    assert semconv.TL_CONFIG_VERSION not in attrs(
        by_name(traces.spans())["execute_tool lookup"].attributes
    )


def test_production_configs_tag_the_version_only(
    backend: StateServer, client_for: Callable[..., Client]
) -> None:
    backend.put(state())
    client = client_for()
    assert client.wait_for_state(5.0)
    with client.run("support", unit_id="u1") as run:
        cfg = client.config("support", unit_id="u1")
        recorded = dict(run.span.attributes or {})  # type: ignore[attr-defined]
    assert (cfg.variant, cfg.key) == (None, None)
    assert recorded[semconv.TL_CONFIG_VERSION] == STABLE.version
    assert semconv.FEATURE_FLAG_KEY not in recorded


def test_the_state_is_refreshed_with_etags(
    backend: StateServer, client_for: Callable[..., Client]
) -> None:
    backend.put(state())
    client = client_for(state_refresh_s=0.02)
    eventually(lambda: client.config_stats.state_unchanged >= 2)
    requests = backend.state_requests()
    assert requests[0] == ("/api/v1/agents/support/state", None)
    assert {etag for _, etag in requests[1:]} == {f'"{state().etag}"'}
    assert client.config_stats.state_fetched == 1


def test_the_refresh_interval_is_the_one_given(
    backend: StateServer, client_for: Callable[..., Client]
) -> None:
    backend.put(state())
    slow = client_for(state_refresh_s=60.0)
    assert slow.wait_for_state(5.0)
    time.sleep(0.3)
    assert len(backend.state_requests()) == 1


def test_a_ramp_keeps_every_unit_on_the_candidate_across_refreshes(
    backend: StateServer, client_for: Callable[..., Client]
) -> None:
    client = client_for(state_refresh_s=0.02)
    shares = [0.05, 0.25, 0.5, 1.0]
    on_candidate: set[str] = set()
    for step, share in enumerate(shares, start=1):
        backend.put(state(allocations=[allocation((1 - share, share), kind="rollout")]))
        eventually(lambda step=step: client.config_stats.state_fetched == step)  # type: ignore[misc]
        now = {u for u in UNITS if client.config("support", unit_id=u).variant == "treatment"}
        assert on_candidate <= now
        assert len(now) == pytest.approx(share * len(UNITS), abs=120)
        on_candidate = now
    assert on_candidate == set(UNITS)


def test_the_last_config_is_served_while_the_server_is_down_and_after_a_restart(
    tmp_path: Path,
) -> None:
    backend = StateServer()
    backend.put(state(allocations=[allocation((0.5, 0.5))]))
    server = RealStateServer(backend)
    options: dict[str, Any] = {
        "agents": ["support"],
        "state_dir": tmp_path,
        "state_refresh_s": 0.02,
        "retry": FAST_RETRY,
    }
    try:
        with Client(server.url, **options) as first:
            assert first.wait_for_state(5.0)
            before = {u: first.config("support", unit_id=u) for u in UNITS[:200]}
            server.stop()
            eventually(lambda: first.config_stats.state_errors >= 2)
            for unit, cfg in before.items():
                assert first.config("support", unit_id=unit) is cfg
    finally:
        server.stop()

    # A new process, the server still down: the state file has the last state.
    with Client(server.url, **options) as restarted:
        for unit, cfg in before.items():
            again = restarted.config("support", unit_id=unit)
            assert (again.version, again.variant, again.key) == (cfg.version, cfg.variant, cfg.key)
            assert again.source == "state_file"
        assert again.params.temperature in (0.2, 0.7)
        eventually(lambda: restarted.config_stats.state_errors >= 1)
        assert restarted.wait_for_state(0.05) is False


def test_a_saved_state_is_confirmed_by_a_304(
    backend: StateServer, client_for: Callable[..., Client], tmp_path: Path
) -> None:
    backend.put(state(allocations=[allocation((0.5, 0.5))]))
    assert client_for().wait_for_state(5.0)
    release = threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        release.wait(5.0)
        return backend.handler(request)

    restarted = client_for(transport=httpx.MockTransport(slow))
    assert restarted.config("support", unit_id="u1").source == "state_file"
    release.set()
    assert restarted.wait_for_state(5.0)
    assert restarted.config("support", unit_id="u1").source == "server"
    assert backend.state_requests()[-1][1] == f'"{backend.states["support"].etag}"'
    stats = restarted.config_stats
    assert (stats.state_fetched, stats.state_unchanged) == (0, 1)


def test_the_fallback_file_serves_until_a_state_is_known(
    backend: StateServer, client_for: Callable[..., Client], tmp_path: Path
) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "router.txt").write_text("Route from the file.")
    config_file = tmp_path / "support.yaml"
    config_file.write_text(
        "model: {provider: openai, name: gpt-4o-mini}\n"
        "params: {temperature: 0.1}\n"
        "prompts:\n  router: {file: prompts/router.txt}\n"
    )
    client = client_for(config_files={"support": config_file}, agents=[])
    fallback = client.config("support", unit_id="u1")  # the server has no state yet: 404
    assert (fallback.source, fallback.variant, fallback.prompt("router")) == (
        "fallback",
        None,
        "Route from the file.",
    )
    assert len(fallback.version) == 64
    assert fallback.model.name == "gpt-4o-mini"
    eventually(lambda: client.config_stats.state_errors >= 1)
    assert client.config_stats.fallback_resolves == 1

    backend.put(state())
    assert client.wait_for_state(5.0)
    served = client.config("support", unit_id="u1")
    assert (served.source, served.version) == ("server", STABLE.version)


def test_nothing_to_serve_is_a_config_error_that_names_the_fix(
    tmp_path: Path, closed_port: int, backend: StateServer, client_for: Callable[..., Client]
) -> None:
    with Client(f"http://127.0.0.1:{closed_port}", state_dir=tmp_path, retry=FAST_RETRY) as down:
        with pytest.raises(ConfigError, match=r"config_files=\{'support': PATH\}"):
            down.config("support", unit_id="u1")
        assert down.config_stats.unresolved == 1
        assert down.stats.last_error is None or "support" in down.stats.last_error

    backend.put(state(production=None))
    client = client_for()
    assert client.wait_for_state(5.0)
    with pytest.raises(ConfigError, match="no production version yet"):
        client.config("support", unit_id="u1")


def test_config_never_waits_for_the_network(tmp_path: Path) -> None:
    release = threading.Event()

    def hang(request: httpx.Request) -> httpx.Response:
        release.wait(10.0)
        return httpx.Response(503)

    config_file = tmp_path / "support.yaml"
    config_file.write_text("model: {provider: openai, name: gpt-4o}\n")
    client = Client(
        "http://t.test",
        transport=httpx.MockTransport(hang),
        config_files={"support": config_file},
        state_dir=tmp_path,
        retry=FAST_RETRY,
    )
    try:
        started = time.perf_counter()
        for i in range(100):
            assert client.config("support", unit_id=f"u{i}").source == "fallback"
        assert time.perf_counter() - started < 0.5
    finally:
        release.set()
        client.shutdown(timeout_s=2.0)


def test_an_unusable_state_is_refused_and_the_last_one_kept(
    backend: StateServer,
    client_for: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend.put(state())
    client = client_for(state_refresh_s=0.02)
    assert client.wait_for_state(5.0)
    bad = state().model_dump(mode="json")
    # A new version whose config this SDK cannot accept (a value out of bounds).
    bad["production"]["version"] = "f" * 64
    bad["production"]["config"]["params"]["temperature"] = 9.0
    backend.raw["support"] = json.dumps(bad).encode()
    with caplog.at_level(logging.DEBUG, logger="tuneloop.sdk"):
        eventually(lambda: client.config_stats.state_rejected >= 2)
    assert client.config("support", unit_id="u1").version == STABLE.version
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "params.temperature" in warnings[0].getMessage()


def test_the_state_file_is_written_atomically(
    backend: StateServer, client_for: Callable[..., Client], tmp_path: Path
) -> None:
    backend.put(state("team/support"))
    client = client_for(agents=["team/support"])
    assert client.wait_for_state(5.0)
    files = sorted(p.name for p in (tmp_path / "state").iterdir())
    assert files == ["team%2Fsupport.json"]
    saved = json.loads((tmp_path / "state" / "team%2Fsupport.json").read_text())
    assert (saved["format"], saved["base_url"], saved["agent"]) == (
        1,
        "http://tuneloop.test",
        "team/support",
    )
    assert saved["etag"] == f'"{state("team/support").etag}"'
    assert saved["state"]["production"]["version"] == STABLE.version


def test_an_unwritable_state_dir_is_counted_and_the_state_still_served(
    backend: StateServer, client_for: Callable[..., Client], tmp_path: Path
) -> None:
    backend.put(state())
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    client = client_for(state_dir=not_a_dir)
    assert client.wait_for_state(5.0)
    assert client.config_stats.state_file_errors == 1
    assert client.config("support", unit_id="u1").version == STABLE.version
    assert "TUNELOOP_STATE_DIR" in (client.stats.last_error or "")


def test_the_state_dir_comes_from_the_environment_then_the_default(
    backend: StateServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend.put(state())
    monkeypatch.setenv("TUNELOOP_STATE_DIR", str(tmp_path / "from-env"))
    with Client("http://t.test", transport=backend.transport, agents=["support"]) as client:
        assert client.wait_for_state(5.0)
    assert (tmp_path / "from-env" / "support.json").is_file()

    monkeypatch.delenv("TUNELOOP_STATE_DIR")
    monkeypatch.chdir(tmp_path)
    with Client("http://t.test", transport=backend.transport, agents=["support"]) as client:
        assert client.wait_for_state(5.0)
    assert (tmp_path / ".tuneloop" / "state" / "support.json").is_file()


def test_a_state_file_of_another_server_is_not_used(
    backend: StateServer, client_for: Callable[..., Client], tmp_path: Path, closed_port: int
) -> None:
    backend.put(state())
    assert client_for().wait_for_state(5.0)
    with Client(
        f"http://127.0.0.1:{closed_port}",
        agents=["support"],
        state_dir=tmp_path / "state",
        retry=FAST_RETRY,
    ) as other:
        with pytest.raises(ConfigError, match="has not been fetched"):
            other.config("support", unit_id="u1")
        assert other.config_stats.state_rejected == 1


def test_an_agent_is_fetched_from_its_first_config_call(
    backend: StateServer, client_for: Callable[..., Client]
) -> None:
    backend.put(state("billing"))
    client = client_for(agents=[])
    with pytest.raises(ConfigError):
        client.config("billing", unit_id="u1")
    assert client.wait_for_state(5.0, agent="billing")
    assert client.config("billing", unit_id="u1").version == STABLE.version


def test_shutdown_stops_the_refresher(
    backend: StateServer, client_for: Callable[..., Client]
) -> None:
    def refreshers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "tuneloop-state" and t.is_alive()}

    backend.put(state())
    others = refreshers()
    client = client_for(state_refresh_s=0.01)
    assert client.wait_for_state(5.0)
    assert len(refreshers() - others) == 1
    client.shutdown()
    assert refreshers() - others == set()
    count = len(backend.state_requests())
    time.sleep(0.1)
    assert len(backend.state_requests()) == count
    assert client.config("support", unit_id="u1").version == STABLE.version


def test_bad_arguments_are_refused_at_construction(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {provider: openai, name: gpt-4o}\nparams: {temprature: 0.3}\n")
    with pytest.raises(ConfigError, match=r"params\.temprature"):
        Client("http://t.test", config_files={"support": bad}, state_dir=tmp_path)
    with pytest.raises(ConfigError, match="state_refresh_s"):
        Client("http://t.test", state_refresh_s=0.0, state_dir=tmp_path)
    with (
        Client("http://t.test", state_dir=tmp_path) as client,
        pytest.raises(ConfigError, match="no agent to wait for"),
    ):
        client.wait_for_state(0.1)


def test_end_to_end_against_the_tuneloop_server(live_server: LiveServer, tmp_path: Path) -> None:
    """Versions and a flag pushed over HTTP, a rollout published in the store, resolved."""
    flag = {"percentage": 0.0, "rules": [{"attribute": "plan", "op": "eq", "values": ["pro"]}]}
    with httpx.Client(
        base_url=live_server.url, headers=live_server.headers(), timeout=10.0
    ) as admin:
        versions = []
        for label, temperature in (("1.0.0", 0.2), ("1.1.0", 0.7)):
            response = admin.post(
                "/api/v1/agents/support/versions",
                json={"config": config_data(temperature=temperature), "label": label},
            )
            assert response.status_code == 201, response.text
            versions.append(response.json()["version"])
        stable, candidate = versions
        # A fallback file holding the same config is attributed to the same version.
        same = AgentConfig.from_data(config_data(temperature=0.2))
        assert fallback_config("support", same).version == stable
        spec = AllocationSpec(
            kind="rollout",
            key="ramp-1",
            salt="ramp-salt",
            variants=[
                VariantSpec(name="stable", weight=0.75, version=stable),
                VariantSpec(name="candidate", weight=0.25, version=candidate),
            ],
        )
        live_server.store.agent_state.put_allocation(  # type: ignore[attr-defined]
            live_server.project, "support", spec, author="test", now_ms=int(time.time() * 1000)
        )
        created = admin.put("/api/v1/agents/support/flags/new_refund_flow", json=flag)
        assert created.status_code == 201, created.text

    with Client(
        live_server.url,
        live_server.ingest_key,
        agents=["support"],
        state_dir=tmp_path,
        retry=FAST_RETRY,
    ) as client:
        assert client.wait_for_state(10.0)
        for unit in UNITS[:500]:
            cfg = client.config("support", unit_id=unit)
            index = assign("ramp-salt", unit, [0.75, 0.25])
            assert (cfg.variant, cfg.version) == [("stable", stable), ("candidate", candidate)][
                index or 0
            ]
            assert cfg.params.temperature == (0.7 if cfg.variant == "candidate" else 0.2)
        assert client.flag("new_refund_flow", unit_id="u1", attributes={"plan": "pro"})
        assert not client.flag("new_refund_flow", unit_id="u1", attributes={"plan": "free"})
        unit = next(u for u in UNITS if assign("ramp-salt", u, [0.75, 0.25]) == 1)
        with client.run("support", unit_id=unit) as run:
            client.config("support", unit_id=unit)
        assert client.flush(10.0)

    response = httpx.get(
        f"{live_server.url}/api/v1/traces/{run.trace_id}", headers=live_server.headers()
    )
    facts = response.json()["run"]
    assert (facts["version"], facts["experiment"], facts["variant"]) == (
        candidate,
        "ramp-1",
        "candidate",
    )
    saved = json.loads((tmp_path / "support.json").read_text())
    assert saved["state"]["allocations"][0]["key"] == "ramp-1"

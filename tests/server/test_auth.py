"""API keys: hashed at rest, scoped, revocable, and never a way into another project."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from google.rpc.status_pb2 import Status

from tests.conftest import LiveServer
from tests.otlp_factory import PROTOBUF, Api, agent_run, request, stored_counts
from tuneloop.errors import AuthError, InvalidInputError, NotFoundError
from tuneloop.server.auth import Authenticator
from tuneloop.store.keys import validate_project_id
from tuneloop.store.schema import api_keys

READ_PATHS = ["/api/v1/traces", "/api/v1/metrics", "/api/v1/usage", "/api/v1/agents"]


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[Api]:
    with Api(live_server) as client:
        yield client


def now_ms() -> int:
    return int(time.time() * 1000)


def test_requests_without_a_valid_key_are_401_and_store_nothing(api: Api) -> None:
    server = api.server
    real = server.ingest_key
    key_id = real.split("_")[1]
    forged = f"tlk_{key_id}_{'A' * 43}"  # right id, wrong secret
    before = stored_counts(server.store, server.project)
    body = request(*agent_run().spans)
    cases: dict[str, dict[str, str]] = {
        "missing": {},
        "bearer without key": {"Authorization": "Bearer"},
        "basic auth": {"Authorization": "Basic dXNlcjpwYXNz"},
        "malformed": {"Authorization": "Bearer not-a-key"},
        "too long": {"Authorization": "Bearer tlk_" + "x" * 4000},
        "unknown id": {"Authorization": f"Bearer tlk_000000000000_{'A' * 43}"},
        "wrong secret": {"Authorization": f"Bearer {forged}"},
        "x-api-key wrong": {"X-API-Key": forged},
    }
    for name, headers in cases.items():
        response = api.client.post(
            f"{server.url}/v1/traces",
            content=body.SerializeToString(),
            headers={"Content-Type": PROTOBUF, **headers},
        )
        assert response.status_code == 401, name
        assert response.headers["www-authenticate"] == "Bearer", name
        # OTLP clients get the OTLP error body, a google.rpc.Status, in their encoding.
        assert response.headers["content-type"] == PROTOBUF, name
        assert Status.FromString(response.content).message, name
        for path in READ_PATHS:
            read = api.client.get(f"{server.url}{path}", headers=headers)
            assert read.status_code == 401, (name, path)
            assert read.json()["error"]["type"] == "AuthError", (name, path)
    assert stored_counts(server.store, server.project) == before


def test_error_messages_say_what_is_wrong_with_the_key(api: Api) -> None:
    def message(key: str | None) -> str:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        response = api.client.get(f"{api.server.url}/api/v1/usage", headers=headers)
        assert response.status_code == 401
        return str(response.json()["error"]["message"])

    assert "missing API key" in message(None)
    assert "malformed API key" in message("hunter2")
    assert message(f"tlk_000000000000_{'A' * 43}") == "invalid API key"


def test_x_api_key_header_is_accepted(api: Api) -> None:
    response = api.client.get(
        f"{api.server.url}/api/v1/usage", headers={"X-API-Key": api.server.admin_key}
    )
    assert response.status_code == 200


def test_ingest_key_cannot_read_but_admin_key_can_ingest(api: Api) -> None:
    server = api.server
    run = agent_run()
    assert api.export(request(*run.spans), key=server.admin_key).status_code == 200
    for path in [*READ_PATHS, f"/api/v1/traces/{run.hex}"]:
        response = api.get(path, key=server.ingest_key)
        assert response.status_code == 403, path
        assert "needs a key with scope 'admin'" in response.json()["error"]["message"], path
    assert api.usage()["runs"] == 1


def test_a_revoked_key_is_refused(api: Api) -> None:
    store = api.server.store
    key = store.keys.create_key("acme", "ingest", name="to revoke", now_ms=now_ms())
    store.keys.revoke_key(key.info.key_id, now_ms=now_ms())
    response = api.export(request(*agent_run().spans), key=key.secret)
    assert response.status_code == 401
    assert "was revoked" in Status.FromString(response.content).message
    assert api.usage()["runs"] == 0


def test_a_key_revoked_while_cached_is_refused_once_forgotten(sqlite_store: Any) -> None:
    keys = sqlite_store.keys
    keys.ensure_project("acme", now_ms=now_ms())
    key = keys.create_key("acme", "ingest", now_ms=now_ms())
    cached = Authenticator(keys.authenticate)
    uncached = Authenticator(keys.authenticate, ttl_s=0)
    assert cached.principal(key.secret).project_id == "acme"
    assert uncached.principal(key.secret).scope == "ingest"

    keys.revoke_key(key.info.key_id, now_ms=now_ms())
    with pytest.raises(AuthError, match="revoked"):
        uncached.principal(key.secret)
    cached.forget()  # what a revocation must trigger on a running server
    with pytest.raises(AuthError, match="revoked"):
        cached.principal(key.secret)


def test_keys_are_stored_hashed_never_in_the_clear(api: Api) -> None:
    server = api.server
    with server.store.engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(sa.select(api_keys)).mappings()]
    assert len(rows) >= 2
    stored_text = repr(rows)
    for key in (server.ingest_key, server.admin_key):
        secret = key.split("_", 2)[2]
        assert len(secret) == 43
        assert secret not in stored_text
        assert key not in stored_text
    assert all(len(row["secret_sha256"]) == 64 for row in rows)
    listed = server.store.keys.list_keys("acme")
    assert {info.scope for info in listed} == {"ingest", "admin"}
    assert not any(hasattr(info, "secret") for info in listed)


def test_key_repository_refuses_bad_requests(sqlite_store: Any) -> None:
    keys = sqlite_store.keys
    assert keys.ensure_project("acme", now_ms=1) is True
    assert keys.ensure_project("acme", now_ms=2) is False
    with pytest.raises(InvalidInputError, match="unknown key scope 'root'"):
        keys.create_key("acme", "root", now_ms=1)
    with pytest.raises(NotFoundError, match="no project 'nope'"):
        keys.create_key("nope", "admin", now_ms=1)
    key = keys.create_key("acme", "admin", now_ms=1)
    keys.revoke_key(key.info.key_id, now_ms=2)
    with pytest.raises(NotFoundError, match="no active key"):
        keys.revoke_key(key.info.key_id, now_ms=3)
    for bad in ("", "Acme", "-acme", "a" * 65, "acme/../x", "acme beta"):
        with pytest.raises(InvalidInputError, match="invalid project id"):
            validate_project_id(bad)


# -- one project's key never reaches another project's data -------------------------------


def test_project_keys_never_read_or_write_another_projects_data(api: Api) -> None:
    server = api.server
    beta_ingest, beta_admin = server.new_project("beta")
    run = agent_run("acme-bot", llm=[("gpt-4o", 100, 10)], tools=["search"])
    assert api.export(request(*run.spans)).status_code == 200
    acme_trace = api.json(f"traces/{run.hex}")
    acme_usage = api.usage()

    # Beta sees none of acme's data.
    def beta(path: str, **params: Any) -> Any:
        return api.get(path, key=beta_admin, **params)

    assert beta(f"/api/v1/traces/{run.hex}").status_code == 404
    assert beta("/api/v1/traces").json()["items"] == []
    assert beta("/api/v1/traces", agent="acme-bot").json()["items"] == []
    assert beta("/api/v1/metrics").json()["groups"] == []
    assert beta("/api/v1/usage").json() == {"spans": 0, "runs": 0, "tool_calls": 0}
    assert beta("/api/v1/agents").json() == {"agents": []}

    # Beta writing the very same trace and span ids, and feedback on acme's trace id,
    # lands in beta only: acme's run is neither changed nor treated as a duplicate.
    replayed = agent_run("beta-bot")
    for span in replayed.spans:
        span.trace_id = run.trace_id
    replayed.root.span_id = run.root.span_id
    assert api.export(request(*replayed.spans), key=beta_ingest).status_code == 200
    feedback = api.client.post(
        f"{server.url}/api/v1/feedback",
        json={"trace_id": run.hex, "name": "sabotage", "value": -100},
        headers=server.headers(beta_ingest),
    )
    assert feedback.status_code == 201
    assert api.json(f"traces/{run.hex}") == acme_trace
    assert api.usage() == acme_usage
    assert beta(f"/api/v1/traces/{run.hex}").json()["run"]["agent"] == "beta-bot"
    assert beta("/api/v1/traces/" + run.hex).json()["feedback"][0]["name"] == "sabotage"

"""Agent state documents for SDK config tests, and servers that serve them with ETags."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tuneloop.config.canonical import content_hash
from tuneloop.config.model import AgentConfig
from tuneloop.config.state import (
    AgentState,
    Allocation,
    Flag,
    UnitType,
    VariantAllocation,
    VersionRef,
)

STATE_PREFIX = "/api/v1/agents/"


def config_data(*, temperature: float = 0.2, router: str = "Route the question.") -> dict[str, Any]:
    return {
        "model": {"provider": "openai", "name": "gpt-4o"},
        "params": {"temperature": temperature},
        "prompts": {"system": "You are a support agent.", "router": router},
        "tools": {"data_fetch": {"timeout_ms": 2000}, "issue_refund": {"timeout_ms": 8000}},
    }


def version(data: Mapping[str, Any], label: str | None = None) -> VersionRef:
    """A version the way the server embeds it: the effective config and its content hash."""
    effective = AgentConfig.from_data(data).to_data()
    return VersionRef(version=content_hash(effective), label=label, config=effective)


STABLE = version(config_data(temperature=0.2), "1.0.0")
CANDIDATE = version(config_data(temperature=0.7, router="Route, then check policy."), "1.1.0")


def allocation(
    weights: tuple[float, float],
    *,
    key: str = "exp-router",
    salt: str = "salt-1",
    coverage: float = 1.0,
    unit_type: UnitType = "user",
    kind: str = "experiment",
) -> Allocation:
    return Allocation.model_validate(
        {
            "kind": kind,
            "key": key,
            "salt": salt,
            "unit_type": unit_type,
            "coverage": coverage,
            "variants": [
                VariantAllocation(name="control", weight=weights[0], version=STABLE),
                VariantAllocation(name="treatment", weight=weights[1], version=CANDIDATE),
            ],
        }
    )


def state(
    agent: str = "support",
    *,
    production: VersionRef | None = STABLE,
    allocations: list[Allocation] | None = None,
    flags: list[Flag] | None = None,
) -> AgentState:
    body = {
        "agent": agent,
        "production": production.model_dump(mode="json") if production else None,
        "allocations": [a.model_dump(mode="json") for a in allocations or []],
        "flags": [f.model_dump(mode="json") for f in flags or []],
    }
    return AgentState.model_validate({**body, "etag": content_hash(body), "generated_ms": 1})


@dataclass
class StateServer:
    """Serves the current state of each agent with its ETag; 304 when it matches."""

    states: dict[str, AgentState] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, doc: AgentState) -> None:
        with self._lock:
            self.states[doc.agent] = doc

    def answer(self, path: str, if_none_match: str | None) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append((path, if_none_match))
            agent = path.removeprefix(STATE_PREFIX).removesuffix("/state")
            if agent in self.raw:
                return 200, {"ETag": '"raw"'}, self.raw[agent]
            doc = self.states.get(agent)
        if not path.startswith(STATE_PREFIX) or doc is None:
            return 404, {}, b'{"detail": "no such agent"}'
        etag = f'"{doc.etag}"'
        if if_none_match == etag:
            return 304, {"ETag": etag}, b""
        return 200, {"ETag": etag}, doc.model_dump_json().encode()

    def handler(self, request: httpx.Request) -> httpx.Response:
        status, headers, body = self.answer(request.url.path, request.headers.get("If-None-Match"))
        return httpx.Response(status, headers=headers, content=body)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def state_requests(self) -> list[tuple[str, str | None]]:
        with self._lock:
            return list(self.requests)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpStateServer

    def do_GET(self) -> None:
        status, headers, body = self.server.backend.answer(
            self.path, self.headers.get("If-None-Match")
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _HttpStateServer(ThreadingHTTPServer):
    daemon_threads = True
    backend: StateServer


class RealStateServer:
    """A real loopback HTTP server around a `StateServer`; `stop` closes its port."""

    def __init__(self, backend: StateServer) -> None:
        self.backend = backend
        self._server = _HttpStateServer(("127.0.0.1", 0), _Handler)
        self._server.backend = backend
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._stopped = False

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5.0)

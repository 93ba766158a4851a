"""Fixtures for SDK tests: clients wired to a recording fake server."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.sdk.sdk_fakes import API_KEY, BASE_URL, FAST_RETRY, FakeServer
from tuneloop.sdk import Client


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def make_client(server: FakeServer) -> Iterator[Callable[..., Client]]:
    """Clients on the fake server that export only on flush unless told otherwise."""
    clients: list[Client] = []

    def make(**kwargs: Any) -> Client:
        options: dict[str, Any] = {
            "base_url": BASE_URL,
            "api_key": API_KEY,
            "transport": server.transport,
            "flush_interval_s": 60.0,
            "retry": FAST_RETRY,
        }
        options.update(kwargs)
        client = Client(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.shutdown(timeout_s=2.0)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

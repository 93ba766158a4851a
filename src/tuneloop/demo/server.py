"""The real tuneloop server, run by uvicorn on a background thread for the demo."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn
from fastapi import FastAPI

from tuneloop.errors import ConfigError, RuntimeFailure

_START_TIMEOUT_S = 30.0


class EmbeddedServer:
    """Serves ``app`` on ``host:port`` from a daemon thread; a context manager.

    Port 0 picks a free port; `url` says which. The socket is bound before the thread
    starts, so the port is known and no other process can take it in between.
    """

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port "
                "or 0 for any free port"
            ) from exc
        self._host = host
        self._port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        """Where the server listens, such as ``http://127.0.0.1:4318``."""
        return f"http://{self._host}:{self._port}"

    def start(self) -> None:
        """Start serving; returns once the server accepts requests.

        Raises:
            RuntimeFailure: the server did not come up in time.
        """
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeFailure(f"the embedded tuneloop server did not start on {self.url}")
            time.sleep(0.02)

    def wait(self) -> None:
        """Block until the server stops or the user presses Ctrl-C."""
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass

    def stop(self) -> None:
        """Stop accepting requests, finish those in flight, run the app's shutdown."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(30)
        self._socket.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

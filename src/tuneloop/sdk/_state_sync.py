"""Keeping agent state current: a background refresher with ETags, and a file per agent.

The refresher is a daemon thread. It fetches ``GET /api/v1/agents/{agent}/state`` for
every agent the client knows, sending the last ETag so an unchanged state costs a 304,
then sleeps for the refresh interval (less while an agent has no state yet). Each new
state is compiled once (`compile_state`) and swapped in whole, so readers never lock;
it is also written to ``STATE_DIR/{agent}.json`` (a temporary file renamed over the old
one), which is where a client restarted while the server is down finds its last state.
Nothing here raises into the host: failures are counted, logged once per kind, and the
last known state stays in use.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from tuneloop._version import __version__
from tuneloop.clock import Clock
from tuneloop.config.flags import FlagResult
from tuneloop.config.state import AgentState
from tuneloop.errors import ConfigError
from tuneloop.sdk._stats import Recorder, shielded
from tuneloop.sdk.config import AgentSnapshot, ConfigCounters, ResolvedConfig, compile_state

STATE_PATH = "/api/v1/agents/{agent}/state"
FILE_FORMAT = 1
_FIRST_RETRY_S = 0.5
_HINTS = {
    401: "the server rejected the API key; set TUNELOOP_API_KEY or pass api_key=",
    403: "the API key may not read this agent's state; use a key of the agent's project",
    404: "the server knows no such agent (push a config first) or has no state endpoint",
}


class StateFile:
    """The last state of each agent on disk, one JSON file per agent, written atomically."""

    def __init__(self, directory: Path, base_url: str) -> None:
        self.directory = directory
        self.base_url = base_url

    def path(self, agent: str) -> Path:
        """The agent's file (the name is URL-quoted, so any agent name is one safe file)."""
        return self.directory / f"{quote(agent, safe='')}.json"

    def load(self, agent: str) -> tuple[AgentState, str | None] | None:
        """The saved state and its ETag, or None when there is no file.

        Raises:
            ConfigError: the file cannot be read, is not a state file, or was saved for
                another server or agent.
        """
        path = self.path(agent)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read state file {str(path)!r}: {exc}") from None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
                raise ValueError(f"not a format-{FILE_FORMAT} tuneloop state file")
            state = AgentState.model_validate(data["state"])
        except (ValueError, KeyError, ValidationError) as exc:
            raise ConfigError(
                f"state file {str(path)!r} is unusable ({exc}); delete it, the next fetch "
                "writes a new one"
            ) from None
        if data.get("base_url") != self.base_url or state.agent != agent:
            raise ConfigError(
                f"state file {str(path)!r} holds agent {state.agent!r} of server "
                f"{data.get('base_url')!r}, not {agent!r} of {self.base_url!r}; ignoring it "
                "(give each server its own state_dir)"
            )
        etag = data.get("etag")
        return state, etag if isinstance(etag, str) else None

    def save(self, state: AgentState, etag: str | None, *, saved_ms: int) -> None:
        """Write the state: to a temporary file in the same directory, then rename it.

        Raises:
            OSError: the directory or file cannot be written.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        body = {
            "format": FILE_FORMAT,
            "base_url": self.base_url,
            "agent": state.agent,
            "etag": etag,
            "saved_ms": saved_ms,
            "state": state.model_dump(mode="json"),
        }
        target = self.path(state.agent)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(json.dumps(body, separators=(",", ":")).encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class StateSync:
    """The agents' compiled states, kept current by a daemon thread.

    Reads (`snapshot`) take no lock: a state is replaced whole, never modified.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        transport: httpx.BaseTransport | None,
        state_file: StateFile,
        interval_s: float,
        request_timeout_s: float,
        recorder: Recorder,
        counters: ConfigCounters,
        clock: Clock,
        fallbacks: Mapping[str, ResolvedConfig] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._fallbacks = dict(fallbacks or {})
        self._file = state_file
        self._interval_s = interval_s
        self._recorder = recorder
        self._counters = counters
        self._clock = clock
        headers = {"User-Agent": f"tuneloop-sdk/{__version__}", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(transport=transport, headers=headers, timeout=request_timeout_s)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._agents: tuple[str, ...] = ()
        self._snapshots: dict[str, AgentSnapshot] = {}
        self._etags: dict[str, str] = {}
        self._fresh: set[str] = set()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def recorder(self) -> Recorder:
        """Where failures are counted and logged."""
        return self._recorder

    @property
    def agents(self) -> tuple[str, ...]:
        """The agents kept current, in the order they became known."""
        return self._agents

    def resolve(self, agent: str, unit_id: str | None, session_id: str | None) -> ResolvedConfig:
        """The agent's config for a unit: from the last known state, else the fallback.

        Raises:
            ConfigError: neither a state with a production version nor a fallback is known.
        """
        snapshot = self._snapshots.get(agent)
        if snapshot is None and agent not in self._agents:
            self.register(agent)
            snapshot = self._snapshots.get(agent)
        if snapshot is not None:
            resolved = snapshot.resolve(unit_id, session_id)
            if resolved is not None:
                return resolved
        fallback = self._fallbacks.get(agent)
        if fallback is not None:
            self._counters.add(fallback_resolves=1)
            return fallback
        self._counters.add(unresolved=1)
        if snapshot is None:
            problem = (
                f"its state has not been fetched from {self.base_url} yet (see "
                "client.stats.last_error)"
            )
        else:
            problem = (
                "it has no production version yet (push one: tuneloop config push FILE "
                f"--agent {agent})"
            )
        raise ConfigError(
            f"no config for agent {agent!r}: {problem}, and the client has no fallback for "
            f"it; pass Client(config_files={{{agent!r}: PATH}}) or call "
            "client.wait_for_state() before resolving"
        )

    def flag(
        self,
        key: str,
        unit_id: str | None,
        attributes: Mapping[str, object] | None,
        agent: str | None,
    ) -> FlagResult | None:
        """Evaluate the flag in ``agent``'s state, or in the first known state defining it.

        Returns:
            None (counted and logged once per key) when no known state defines it.
        """
        if agent is not None and agent not in self._agents:
            self.register(agent)
        for name in (agent,) if agent is not None else self._agents:
            snapshot = self._snapshots.get(name)
            result = None if snapshot is None else snapshot.flag(key, unit_id, attributes)
            if result is not None:
                return result
        self._counters.add(unknown_flags=1)
        self._recorder.error(
            f"unknown flag {key}",
            f"tuneloop SDK: no known agent state defines flag {key!r}, so it is off; create "
            "it on the server, or list its agent in Client(agents=...)",
            attempt=False,
        )
        return None

    def register(self, agent: str) -> None:
        """Keep ``agent`` current from now on: load its state file, wake the refresher."""
        with self._lock:
            if agent in self._agents or self._closed:
                return
            self._agents = (*self._agents, agent)
        self._load_file(agent)
        with self._lock:
            running = self._thread is not None
            if not running:
                self._thread = threading.Thread(
                    target=self._run, name="tuneloop-state", daemon=True
                )
                self._thread.start()
        if running:  # a new thread fetches every agent first thing
            self._wake.set()

    def wait(self, timeout_s: float, agent: str | None) -> bool:
        """Block until ``agent`` (default: every known agent) has a state from the server.

        Raises:
            ConfigError: there is no agent to wait for.
        """
        if agent is not None:
            self.register(agent)
        agents = (agent,) if agent is not None else self._agents
        if not agents:
            raise ConfigError(
                "wait_for_state has no agent to wait for: pass Client(agents=[...]) or agent="
            )
        with self._changed:
            return self._changed.wait_for(lambda: self._fresh.issuperset(agents), timeout_s)

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the refresher and release the connection pool; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout_s)
        self._http.close()

    def _run(self) -> None:
        failures = 0
        while not self._closed:
            self._wake.clear()
            ok = True
            for agent in self._agents:
                if self._closed:
                    return
                ok = self._refresh(agent) and ok
            failures = 0 if ok else failures + 1
            # Until every agent has a state, retry sooner than the interval.
            waiting = any(agent not in self._snapshots for agent in self._agents)
            delay = self._interval_s
            if not ok and waiting:
                delay = min(delay, _FIRST_RETRY_S * 2 ** min(failures - 1, 16))
            self._wake.wait(delay)

    def _install(
        self, agent: str, snapshot: AgentSnapshot, etag: str | None, *, fresh: bool
    ) -> None:
        with self._changed:
            if not fresh and agent in self._snapshots:
                return  # the server answered before the state file was read
            self._snapshots = {**self._snapshots, agent: snapshot}
            if etag is not None:
                self._etags[agent] = etag
            if fresh:
                self._fresh.add(agent)
            self._changed.notify_all()

    def _load_file(self, agent: str) -> None:
        try:
            loaded = self._file.load(agent)
            if loaded is None:
                return
            state, etag = loaded
            snapshot = compile_state(state, source="state_file")
        except ConfigError as exc:
            self._counters.add(state_rejected=1)
            self._recorder.error(f"state file {agent}", f"tuneloop SDK: {exc}", attempt=False)
            return
        self._install(agent, snapshot, etag, fresh=False)

    def _failed(self, kind: str, message: str) -> bool:
        if not self._closed:
            self._counters.add(state_errors=1)
            self._recorder.error(f"state {kind}", f"tuneloop SDK: {message}", attempt=False)
        return False

    @shielded(default=False)
    def _refresh(self, agent: str) -> bool:
        """Fetch one agent's state; True if the server answered with a usable state."""
        if self._closed:
            return False
        url = f"{self.base_url}{STATE_PATH.format(agent=quote(agent, safe=''))}"
        etag = self._etags.get(agent)
        try:
            response = self._http.get(url, headers={"If-None-Match": etag} if etag else None)
        except httpx.TimeoutException as exc:
            return self._failed("timeout", f"timed out fetching the state of {agent!r}: {exc!r}")
        except httpx.UnsupportedProtocol as exc:
            return self._failed("url", f"cannot fetch {url}: {exc}; check TUNELOOP_URL")
        except httpx.TransportError as exc:
            return self._failed(
                "connect",
                f"cannot reach the tuneloop server at {url}: {exc!r}; serving the last "
                "known config",
            )
        current = self._snapshots.get(agent)
        if response.status_code == 304 and current is not None:
            self._install(agent, current.with_source("server"), None, fresh=True)
            self._counters.add(state_unchanged=1)
            return True
        if not response.is_success:
            hint = _HINTS.get(response.status_code, "the server is busy or failing")
            return self._failed(
                f"http {response.status_code}",
                f"the server answered {response.status_code} for the state of {agent!r} at "
                f"{url}: {hint}; serving the last known config",
            )
        try:
            state = AgentState.model_validate_json(response.content)
            if state.agent != agent:
                raise ConfigError(f"the server sent the state of agent {state.agent!r}")
            snapshot = compile_state(
                state, source="server", known=current.configs if current else None
            )
        except (ValidationError, ConfigError) as exc:
            self._counters.add(state_rejected=1)
            self._recorder.error(
                f"state invalid {agent}",
                f"tuneloop SDK: cannot use the state of agent {agent!r} from {url} (is the "
                f"SDK older than the server?); keeping the last known one: {exc}",
                attempt=False,
            )
            return False
        new_etag = response.headers.get("ETag") or f'"{state.etag}"'
        # Saved before it is served, so a script that waited for it can exit at once.
        try:
            self._file.save(state, new_etag, saved_ms=self._clock.now_ms())
        except OSError as exc:
            self._counters.add(state_file_errors=1)
            self._recorder.error(
                "state file write",
                f"tuneloop SDK: cannot save the state of {agent!r} to "
                f"{str(self._file.path(agent))!r}: {exc}; a restart while the server is down "
                "will not find it (set state_dir= or TUNELOOP_STATE_DIR)",
                attempt=False,
            )
        self._install(agent, snapshot, new_etag, fresh=True)
        self._counters.add(state_fetched=1)
        return True

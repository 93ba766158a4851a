"""Where an agent reads its config: the SDK's local resolution, or a static config for offline use.

Through a `tuneloop.Client`, each run asks ``client.config(agent, unit_id=...,
session_id=...)``: the unit lands in its experiment's or rollout's variant, so a
bundle promoted on the server changes the agent's next run. A static `AgentConfig`
(or a config file) serves every run the same version, with no server at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tuneloop.config.loading import load_config_file
from tuneloop.config.model import AgentConfig
from tuneloop.errors import ConfigError
from tuneloop.sdk.client import Client
from tuneloop.sdk.config import ResolvedConfig, fallback_config


@runtime_checkable
class ConfigSource(Protocol):
    """Resolves an agent's config for one run."""

    @property
    def agent(self) -> str:
        """The agent's name."""
        ...

    @property
    def client(self) -> Client | None:
        """The SDK client the runs are traced through, if any."""
        ...

    def resolve(self, *, unit_id: str | None, session_id: str | None) -> ResolvedConfig:
        """The config this unit gets now."""
        ...


class ClientSource:
    """An agent's config as a `tuneloop.Client` resolves it (experiments and rollouts apply).

    Args:
        client: the SDK client; its runs carry the version and variant.
        agent: the agent's name on the server.
    """

    def __init__(self, client: Client, agent: str) -> None:
        if not agent:
            raise ConfigError("a ClientSource needs the agent's name")
        self._client = client
        self._agent = agent

    @property
    def agent(self) -> str:
        """The agent's name."""
        return self._agent

    @property
    def client(self) -> Client:
        """The SDK client."""
        return self._client

    def resolve(self, *, unit_id: str | None, session_id: str | None) -> ResolvedConfig:
        """``client.config(agent, unit_id=..., session_id=...)``.

        Raises:
            ConfigError: the client has no state for the agent yet and no fallback file.
        """
        return self._client.config(self._agent, unit_id=unit_id, session_id=session_id)


class StaticSource:
    """One config for every run, versioned by its content hash as the server would.

    Args:
        config: the config.
        agent: the agent's name.
    """

    def __init__(self, config: AgentConfig, agent: str) -> None:
        if not agent:
            raise ConfigError("a static config needs the agent's name: pass name=")
        self._resolved = fallback_config(agent, config)

    @property
    def agent(self) -> str:
        """The agent's name."""
        return self._resolved.agent

    @property
    def client(self) -> None:
        """No SDK client."""
        return None

    def resolve(self, *, unit_id: str | None, session_id: str | None) -> ResolvedConfig:
        """The same config for every unit."""
        return self._resolved


def config_source(value: Any, *, name: str | None = None) -> ConfigSource:
    """A `ConfigSource` from what an `Agent` was given.

    Args:
        value: a `ConfigSource`; a ``(Client, agent name)`` pair; an `AgentConfig`; or
            the path of a config file (YAML or JSON, prompt files resolved).
        name: the agent's name, required for a config or a file.

    Raises:
        ConfigError: anything else, a missing name, or an invalid config file.
    """
    if isinstance(value, ConfigSource):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], Client):
        return ClientSource(value[0], str(value[1]))
    if isinstance(value, Client):
        if not name:
            raise ConfigError("an Agent reading its config through a Client needs name=")
        return ClientSource(value, name)
    if isinstance(value, AgentConfig):
        return StaticSource(value, name or "")
    if isinstance(value, str | os.PathLike):
        return StaticSource(load_config_file(Path(value)), name or "")
    raise ConfigError(
        "an Agent's config source must be (client, agent name), an AgentConfig, a config "
        f"file path or a ConfigSource, not {type(value).__name__}"
    )

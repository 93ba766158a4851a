"""The agent configuration an eval runs under: loaded from a file, identified by its hash.

The runner passes it to the target untouched, so a caller may hand over an
`AgentConfig`, a plain dict, or whatever its target reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneloop.config.canonical import content_hash
from tuneloop.config.loading import load_config_file
from tuneloop.config.model import AgentConfig


def load_config(path: Path) -> AgentConfig:
    """An `AgentConfig` from a YAML or JSON file (prompt files resolved).

    Raises:
        ConfigError: the file is unreadable or not a valid AgentConfig (paths named).
    """
    return load_config_file(path)


def config_data(config: Any) -> Any:
    """Plain JSON data of a config: an `AgentConfig`, a pydantic model, or data as is."""
    if isinstance(config, AgentConfig):
        return config.to_data()
    dump = getattr(config, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return config


def config_hash(config: Any) -> str | None:
    """The content hash (sha256 of canonical JSON) a version of this config would have."""
    if config is None:
        return None
    return content_hash(config_data(config))

"""What every analyzer gets: the window, the version's config (if known) and the options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tuneloop.analysis.recommend.common import Options
from tuneloop.analysis.recommend.findings import Finding, fingerprint
from tuneloop.analysis.recommend.window import TraceWindow
from tuneloop.config.model import AgentConfig, ModelRef, ToolSettings


def _default_doc() -> dict[str, Any]:
    # What an effective config holds when none is known: every default, no model.
    data = AgentConfig(model=ModelRef(provider="unknown", name="unknown")).to_data()
    del data["model"]
    return data


@dataclass(frozen=True, slots=True)
class Context:
    """One analysis: the facts, the config they were produced with, and the thresholds.

    Attributes:
        config: the version's config, or None when the store does not have it (patches
            then assume every default, and say so).
        doc: the effective config as data: what patches are computed against.
    """

    window: TraceWindow
    config: AgentConfig | None
    options: Options = field(default_factory=Options)
    doc: Mapping[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        doc = self.config.to_data() if self.config is not None else _default_doc()
        object.__setattr__(self, "doc", doc)

    @property
    def agent(self) -> str:
        """The agent analyzed."""
        return self.window.agent

    def tool(self, name: str) -> ToolSettings | None:
        """The config's settings of tool ``name``, or None if the config does not list it."""
        if self.config is None:
            return None
        return self.config.tools.get(name)

    def tool_or_default(self, name: str) -> ToolSettings:
        """The settings the runtime uses for ``name``: the config's, else the defaults."""
        return self.tool(name) or ToolSettings()

    def fingerprint(self, type_: str, target: str, kind: str, change: list[dict[str, Any]]) -> str:
        """The finding's fingerprint from its identity and the paths it changes."""
        return fingerprint(self.agent, type_, target, kind, [op["path"] for op in change])

    def keep(self, finding: Finding) -> bool:
        """Whether a finding is confident enough to propose."""
        return finding.confidence >= self.options.min_confidence

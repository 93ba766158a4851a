"""What a tool runs with: its code's declarations merged with the config's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tuneloop.config.model import SideEffect, ToolSettings
from tuneloop.errors import ConfigError
from tuneloop.runtime.tools.contract import SIDE_EFFECT_RANK, Tool


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """One tool with its settings as they stand for a call.

    Attributes:
        tool: the tool.
        settings: its ``tools.<name>`` settings.
        side_effect: the stricter of the code's and the config's.
        requires_approval: true if either the code or the config asks for it.
    """

    tool: Tool
    settings: ToolSettings
    side_effect: SideEffect
    requires_approval: bool

    @property
    def name(self) -> str:
        """The tool's name."""
        return self.tool.name


def plan_for(tool: Tool, settings: ToolSettings) -> ToolPlan | None:
    """The tool's plan, or ``None`` when the config disables it.

    Safety settings merge to the stricter side: a bundle may tighten what the code
    declares, never loosen it.
    """
    if not settings.enabled:
        return None
    side_effect = max(tool.side_effect, settings.side_effect, key=SIDE_EFFECT_RANK.__getitem__)
    return ToolPlan(
        tool, settings, side_effect, tool.requires_approval or settings.requires_approval
    )


def check_settings(tools: Mapping[str, Tool], settings: Mapping[str, ToolSettings]) -> None:
    """Refuse settings no tool can honour.

    Raises:
        ConfigError: settings for a tool the code does not provide, or a cache (TTL or
            cache fallback) on a tool that writes: a cached write would claim to have
            done what it did not.
    """
    unknown = sorted(set(settings) - set(tools))
    if unknown:
        raise ConfigError(
            f"the config has settings for tools no Tool provides: {unknown}; tools given: "
            f"{sorted(tools)}"
        )
    for name, tool_settings in settings.items():
        plan = plan_for(tools[name], tool_settings)
        if plan is None or plan.side_effect == "read":
            continue
        fallback = tool_settings.fallback
        if tool_settings.cache_ttl_s or (fallback is not None and fallback.kind == "cache"):
            raise ConfigError(
                f"tools.{name}: a {plan.side_effect} tool cannot be cached or fall back to a "
                "cached result; remove cache_ttl_s / the cache fallback"
            )

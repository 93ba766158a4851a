"""An agent's config made ready to run: tool runner, guardrails, timeouts and tool specs.

Building these costs more than a step (tool schemas, guardrail regexes), so an
`Agent` builds them once per config version and reuses them for every run on it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tuneloop.config.model import AgentConfig
from tuneloop.runtime.failover import Caller
from tuneloop.runtime.guardrails.base import GuardrailPipeline
from tuneloop.runtime.handoff import Handoff
from tuneloop.runtime.machine import RunState
from tuneloop.runtime.providers.base import Message, ToolSpec
from tuneloop.runtime.tools.runner import ToolRunner
from tuneloop.sdk.config import ResolvedConfig

DEFAULT_REFUSAL = "I'm sorry, but I can't help with that request."
DEFAULT_ESCALATION = "A member of our team will look into this and get back to you."


@dataclass(frozen=True, slots=True)
class Prepared:
    """One agent on one config version, ready for runs.

    Attributes:
        agent: the agent's name.
        resolved: the config as resolved (version, variant).
        config: the typed config.
        data: the config as JSON data (what a checkpoint pins).
        runner: executes the agent's tools under ``config.tools``.
        guardrails: the ``input`` and ``output`` guardrails (the runner has the tool hops).
        timeouts: per-state timeouts (``limits.state_timeouts_ms``).
        specs: the tools the model is offered, handoffs included.
        handoffs: the specialists, by their handoff tool's name.
        system_prompt: the system prompt's text, if the config has one.
        caller: calls the agent's models (its providers, breakers and response cache).
        prompt_name: the name of the system prompt, for ``tuneloop.prompt.name``.
    """

    agent: str
    resolved: ResolvedConfig
    config: AgentConfig
    data: Mapping[str, Any]
    runner: ToolRunner
    guardrails: GuardrailPipeline
    timeouts: Mapping[RunState, int]
    specs: tuple[ToolSpec, ...]
    handoffs: Mapping[str, Handoff]
    system_prompt: str | None
    caller: Caller
    prompt_name: str | None = None

    def opening(self, user_text: str) -> list[Message]:
        """The conversation a run of this agent starts with."""
        messages = [] if self.system_prompt is None else [Message.system(self.system_prompt)]
        return [*messages, Message.user(user_text)]

    def text(self, prompt: str, default: str, **values: str) -> str:
        """The config's prompt ``prompt`` filled with ``values``, or ``default``."""
        template = self.config.prompts.get(prompt)
        if template is None:
            return default
        try:
            return template.format(**values)
        except (KeyError, IndexError, ValueError):
            # A prompt with braces of its own is used as written.
            return template


class PreparedCache:
    """The last few prepared configs, by agent and version."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str], Prepared] = OrderedDict()

    def get(self, agent: str, version: str, build: Callable[[], Prepared]) -> Prepared:
        """The prepared config of ``agent`` at ``version``, built on first use."""
        key = (agent, version)
        found = self._items.get(key)
        if found is None:
            found = self._items[key] = build()
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return found

"""Structural guardrails: the tool allowlist and length limits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tuneloop.config.model import GuardrailAction, Hop
from tuneloop.errors import ConfigError
from tuneloop.runtime.cache import canonical_json
from tuneloop.runtime.guardrails.base import GuardrailResult, Subject

TRUNCATION_MARKER = "…[truncated]"


class ToolAllowlist:
    """Refuse any tool call to a tool not on the list (it runs at ``tool_args``).

    A model asking for an unlisted tool is refused with a reason naming the tool and
    the list; the pipeline traces the refusal as a guardrail span.
    """

    def __init__(
        self, name: str, tools: Iterable[str], *, action: GuardrailAction = "block"
    ) -> None:
        if action == "redact":
            raise ConfigError(
                f"guardrail {name!r}: a tool allowlist cannot redact; use action block "
                "or require_approval"
            )
        self._name = name
        self._allowed = frozenset(tools)
        self._action = action

    @property
    def name(self) -> str:
        """The guardrail's name."""
        return self._name

    @property
    def hops(self) -> frozenset[Hop]:
        """Only ``tool_args``: the moment a tool is about to be called."""
        return frozenset({"tool_args"})

    async def check(self, subject: Subject) -> GuardrailResult:
        """Allow listed tools; refuse the rest."""
        if subject.tool is None or subject.tool in self._allowed:
            return GuardrailResult.allow()
        allowed = ", ".join(sorted(self._allowed)) or "none"
        return GuardrailResult(
            self._action, f"tool {subject.tool!r} is not on the allowlist ({allowed})"
        )


class LengthLimit:
    """Bound the size of content: at most ``max_chars``, at least ``min_chars``.

    Text is measured in characters; structured content by its JSON text. Too long and
    ``redact`` truncates text (structured content over the limit is blocked: cutting
    JSON would corrupt it). Too short (an empty answer) cannot be redacted: it is
    blocked, or sent for approval when that is the action.
    """

    def __init__(
        self,
        name: str,
        hops: Iterable[Hop],
        *,
        action: GuardrailAction = "block",
        max_chars: int | None = None,
        min_chars: int = 0,
    ) -> None:
        if max_chars is None and min_chars <= 0:
            raise ConfigError(f"length guardrail {name!r} needs max_chars or min_chars > 0")
        if max_chars is not None and max_chars < max(min_chars, 1):
            raise ConfigError(
                f"length guardrail {name!r}: max_chars ({max_chars}) must be >= 1 and >= "
                f"min_chars ({min_chars})"
            )
        self._name = name
        self._hops = frozenset(hops)
        self._action = action
        self._max = max_chars
        self._min = min_chars

    @property
    def name(self) -> str:
        """The guardrail's name."""
        return self._name

    @property
    def hops(self) -> frozenset[Hop]:
        """Where it runs."""
        return self._hops

    async def check(self, subject: Subject) -> GuardrailResult:
        """Allow content within the bounds; otherwise act as configured."""
        content: Any = subject.content
        size = _size(content)
        if size < self._min:
            action = "block" if self._action == "redact" else self._action
            what = "empty" if size == 0 else f"{size} characters"
            return GuardrailResult(
                action, f"{subject.hop} is {what}; at least {self._min} expected"
            )
        if self._max is None or size <= self._max:
            return GuardrailResult.allow()
        reason = f"{subject.hop} is {size} characters; the limit is {self._max}"
        if self._action == "redact" and isinstance(content, str):
            keep = max(0, self._max - len(TRUNCATION_MARKER))
            return GuardrailResult(
                "redact", f"truncated: {reason}", content[:keep] + TRUNCATION_MARKER
            )
        action = "block" if self._action == "redact" else self._action
        return GuardrailResult(action, reason)


def _size(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content) if content.strip() else 0
    return len(canonical_json(content))

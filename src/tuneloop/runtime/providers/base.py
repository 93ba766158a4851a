"""The provider contract: message types, a chat request and response, and `Provider`.

Every adapter (OpenAI-compatible, Anthropic, simulated) speaks these types, so the
rest of the runtime never sees a vendor's SDK. Values are frozen; they convert to and
from plain dicts for caching, checkpoints and span attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from tuneloop.errors import InvalidInputError

if TYPE_CHECKING:
    from tuneloop.config.model import AgentConfig

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "other"]
ToolChoice = Literal["auto", "none", "required"]

ROLES: tuple[Role, ...] = get_args(Role)
FINISH_REASONS: tuple[FinishReason, ...] = get_args(FinishReason)


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """A tool call the model asked for.

    ``arguments`` is the JSON text exactly as the model wrote it: it may be invalid,
    and the tool runner answers that with a structured error rather than raising.
    """

    id: str
    name: str
    arguments: str = "{}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for caches, checkpoints and spans."""
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCallRequest:
        """The inverse of `to_dict`."""
        return cls(id=str(data["id"]), name=str(data["name"]), arguments=str(data["arguments"]))


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation.

    Build them with `system`, `user`, `assistant` and `tool`; a tool message answers
    the call whose id is ``tool_call_id``.
    """

    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCallRequest, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidInputError(f"unknown message role {self.role!r}; use one of {ROLES}")
        if self.role == "tool" and not self.tool_call_id:
            raise InvalidInputError("a tool message needs the tool_call_id of the call it answers")
        if self.tool_calls and self.role != "assistant":
            raise InvalidInputError(f"only assistant messages carry tool calls, not {self.role!r}")
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))

    @classmethod
    def system(cls, text: str) -> Message:
        """A system prompt."""
        return cls("system", text)

    @classmethod
    def user(cls, text: str) -> Message:
        """What the user said."""
        return cls("user", text)

    @classmethod
    def assistant(
        cls, text: str | None = None, tool_calls: Sequence[ToolCallRequest] = ()
    ) -> Message:
        """What the model said: text, tool calls, or both."""
        return cls("assistant", text, tuple(tool_calls))

    @classmethod
    def tool(cls, call_id: str, content: str, *, name: str | None = None) -> Message:
        """A tool's answer to the call ``call_id``."""
        return cls("tool", content, tool_call_id=call_id, name=name)

    @property
    def text(self) -> str:
        """The content, or ``""`` when there is none."""
        return self.content or ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data; empty fields are left out."""
        data: dict[str, Any] = {"role": self.role}
        if self.content is not None:
            data["content"] = self.content
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            data["name"] = self.name
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """The inverse of `to_dict`."""
        return cls(
            role=data["role"],
            content=data.get("content"),
            tool_calls=tuple(ToolCallRequest.from_dict(c) for c in data.get("tool_calls", ())),
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
        )


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it: name, description, JSON schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call consumed; usages add up with ``+``."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat call: the model, the conversation, the tools offered and sampling params.

    ``None`` leaves a parameter at the provider's default. `from_config` fills the
    parameters from an `AgentConfig` so a bundle that changes them changes the call.
    """

    model: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    def __post_init__(self) -> None:
        if not self.messages:
            raise InvalidInputError(f"a chat request to {self.model!r} needs at least one message")
        object.__setattr__(self, "messages", tuple(self.messages))
        object.__setattr__(self, "tools", tuple(self.tools))
        if self.stop is not None:
            object.__setattr__(self, "stop", tuple(self.stop))

    @classmethod
    def from_config(
        cls,
        config: AgentConfig,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        *,
        model: str | None = None,
        tool_choice: ToolChoice | None = None,
    ) -> ChatRequest:
        """A request with the config's model (unless ``model`` is given) and params."""
        params = config.params
        return cls(
            model=model or config.model.name,
            messages=tuple(messages),
            tools=tuple(tools),
            tool_choice=tool_choice,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stop=None if params.stop is None else tuple(params.stop),
            seed=params.seed,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
        )

    def params(self) -> dict[str, Any]:
        """The sampling parameters that are set, by their tuneloop names."""
        values = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": None if self.stop is None else list(self.stop),
            "seed": self.seed,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
        }
        return {key: value for key, value in values.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        """Plain data: what makes two requests the same (the response cache's key)."""
        data: dict[str, Any] = {
            "model": self.model,
            "messages": [message.to_dict() for message in self.messages],
            "tools": [spec.to_dict() for spec in self.tools],
            **self.params(),
        }
        if self.tool_choice is not None:
            data["tool_choice"] = self.tool_choice
        return data


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """What the model answered.

    Attributes:
        message: the assistant message (text and/or tool calls).
        finish_reason: why generation stopped, normalized across providers.
        usage: tokens consumed; zero for an answer served from the response cache.
        model: the model that answered, as the provider names it.
        provider: the provider's name (``gen_ai.provider.name``).
        raw_finish_reason: the finish reason as the provider spelled it.
        cached: served from the response cache instead of the provider.
    """

    message: Message
    finish_reason: FinishReason
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    provider: str = ""
    raw_finish_reason: str | None = None
    cached: bool = False

    def __post_init__(self) -> None:
        if self.finish_reason not in FINISH_REASONS:
            raise InvalidInputError(
                f"unknown finish reason {self.finish_reason!r}; use one of {FINISH_REASONS}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the response cache and checkpoints)."""
        return {
            "message": self.message.to_dict(),
            "finish_reason": self.finish_reason,
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            },
            "model": self.model,
            "provider": self.provider,
            "raw_finish_reason": self.raw_finish_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, cached: bool = False) -> ChatResponse:
        """The inverse of `to_dict`."""
        usage = data.get("usage") or {}
        return cls(
            message=Message.from_dict(data["message"]),
            finish_reason=data["finish_reason"],
            usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
            model=str(data.get("model", "")),
            provider=str(data.get("provider", "")),
            raw_finish_reason=data.get("raw_finish_reason"),
            cached=cached,
        )


class Provider(Protocol):
    """A chat model behind one API: OpenAI-compatible, Anthropic, simulated, or yours.

    Implementations translate every failure into the `ProviderError` tree
    (`ProviderRateLimitError`, `ProviderTimeoutError`, ... from `tuneloop.errors`), so
    callers decide on retries and failover from ``retryable`` and ``retry_after_s``
    without knowing the vendor.
    """

    @property
    def name(self) -> str:
        """The provider's name for ``gen_ai.provider.name`` (``openai``, ``anthropic``...)."""
        ...

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Send one chat request and return the model's answer.

        Raises:
            ProviderError: a subclass saying what failed and whether to retry.
        """
        ...

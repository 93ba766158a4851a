"""AgentConfig: an agent's whole behaviour surface as one validated, immutable value.

Every model forbids unknown keys, so a typo in a config file is an error naming its
path instead of a setting that silently does nothing. ``AgentConfig.from_data`` turns
pydantic's errors into one :class:`~tuneloop.errors.ConfigError` whose lines read
``tools.data_fetch.retry.max_attempts: Input should be greater than or equal to 1``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuneloop.errors import ConfigError

RetryOn = Literal["timeout", "rate_limit", "server_error", "connection"]
FallbackKind = Literal["cache", "static", "tool"]
SideEffect = Literal["read", "write", "external"]
GuardrailKind = Literal["pii", "injection", "denied_topics", "tool_allowlist", "length", "custom"]
Hop = Literal["input", "tool_args", "tool_output", "output"]
GuardrailAction = Literal["redact", "block", "require_approval"]

ALL_RETRY_ON: tuple[RetryOn, ...] = ("timeout", "rate_limit", "server_error", "connection")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelRef(_Model):
    """Which LLM to call: a provider name and the provider's model name."""

    provider: str = Field(min_length=1)
    name: str = Field(min_length=1)


class Params(_Model):
    """Sampling parameters; ``None`` leaves the provider's default."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, gt=0)
    stop: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)


class ToolRetry(_Model):
    """Retry policy of one tool: the wait doubles from ``backoff_ms`` up to ``max_backoff_ms``."""

    max_attempts: int = Field(default=1, ge=1)
    backoff_ms: int = Field(default=200, ge=0)
    max_backoff_ms: int = Field(default=5000, ge=0)
    retry_on: list[RetryOn] = Field(default_factory=lambda: list(ALL_RETRY_ON))

    @model_validator(mode="after")
    def _check(self) -> ToolRetry:
        if self.max_backoff_ms < self.backoff_ms:
            raise ValueError(
                f"max_backoff_ms ({self.max_backoff_ms}) is below backoff_ms "
                f"({self.backoff_ms}); raise max_backoff_ms or lower backoff_ms"
            )
        if len(set(self.retry_on)) != len(self.retry_on):
            raise ValueError(f"retry_on lists a failure kind twice: {self.retry_on}")
        return self


class ToolFallback(_Model):
    """What a tool returns when it fails after its retries.

    ``cache``: the last good result (no older than ``max_age_s`` when set); ``static``:
    ``value``; ``tool``: the result of calling the tool named ``tool``.
    """

    kind: FallbackKind
    value: Any = None
    tool: str | None = None
    max_age_s: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> ToolFallback:
        if self.kind == "tool" and not self.tool:
            raise ValueError("a fallback of kind 'tool' needs `tool:` naming the tool to call")
        if self.kind != "tool" and self.tool is not None:
            raise ValueError(f"`tool:` is only read by kind 'tool', not {self.kind!r}")
        if self.kind != "cache" and self.max_age_s is not None:
            raise ValueError(f"`max_age_s:` is only read by kind 'cache', not {self.kind!r}")
        if self.kind != "static" and self.value is not None:
            raise ValueError(f"`value:` is only read by kind 'static', not {self.kind!r}")
        return self


class CircuitBreakerSettings(_Model):
    """Open after ``failure_threshold`` failures in ``window_s``; probe after ``reset_after_s``."""

    failure_threshold: int = Field(default=5, ge=1)
    window_s: float = Field(default=60.0, gt=0.0)
    reset_after_s: float = Field(default=30.0, gt=0.0)


class ToolSettings(_Model):
    """Per-tool contract: enablement, timeout, retries, fallback, caching, approval."""

    enabled: bool = True
    description: str | None = None
    timeout_ms: int = Field(default=30_000, gt=0)
    retry: ToolRetry = Field(default_factory=ToolRetry)
    fallback: ToolFallback | None = None
    cache_ttl_s: int | None = Field(default=None, ge=0)
    requires_approval: bool = False
    side_effect: SideEffect = "read"
    circuit_breaker: CircuitBreakerSettings | None = None


class GuardrailSpec(_Model):
    """A guardrail applied at the listed hops of a run."""

    name: str = Field(min_length=1)
    kind: GuardrailKind
    hops: list[Hop] = Field(min_length=1)
    action: GuardrailAction = "block"
    params: dict[str, Any] = Field(default_factory=dict)


class Budget(_Model):
    """Spending limits; ``None`` means no limit."""

    run_tokens: int | None = Field(default=None, gt=0)
    run_usd: float | None = Field(default=None, gt=0.0)
    session_tokens: int | None = Field(default=None, gt=0)
    session_usd: float | None = Field(default=None, gt=0.0)


class RoutingRule(_Model):
    """Send a request to ``tier`` when its intent and input length match."""

    tier: str
    intents: list[str] | None = None
    min_input_chars: int | None = Field(default=None, ge=0)
    max_input_chars: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> RoutingRule:
        low, high = self.min_input_chars, self.max_input_chars
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_input_chars ({low}) is above max_input_chars ({high})")
        return self


class Routing(_Model):
    """Model tiers, the rules that pick one, and the order to fail over in."""

    tiers: dict[str, ModelRef] = Field(default_factory=dict)
    default_tier: str | None = None
    rules: list[RoutingRule] = Field(default_factory=list)
    failover: list[str] = Field(default_factory=list)


class ReviewSettings(_Model):
    """Human review: the share of runs sampled, and the confidence under which a run is queued."""

    sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)


class Limits(_Model):
    """Run limits: steps per run and per-state timeouts of the run state machine."""

    max_steps: int = Field(default=10, gt=0)
    state_timeouts_ms: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Limits:
        bad = sorted(state for state, ms in self.state_timeouts_ms.items() if ms <= 0)
        if bad:
            raise ValueError(f"state_timeouts_ms must be positive; check {bad}")
        return self


class AgentConfig(_Model):
    """The whole behaviour surface of an agent.

    Build one from untrusted data with :meth:`from_data` (errors name their path);
    read prompts and tools with :meth:`prompt` and :meth:`tool`, which name what
    exists when asked for something that does not.
    """

    model: ModelRef
    params: Params = Field(default_factory=Params)
    prompts: dict[str, str] = Field(default_factory=dict)
    tools: dict[str, ToolSettings] = Field(default_factory=dict)
    guardrails: list[GuardrailSpec] = Field(default_factory=list)
    budget: Budget = Field(default_factory=Budget)
    routing: Routing = Field(default_factory=Routing)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    limits: Limits = Field(default_factory=Limits)
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_references(self) -> AgentConfig:
        problems = [*_tool_problems(self.tools), *_routing_problems(self.routing)]
        names = [g.name for g in self.guardrails]
        problems += [
            f"guardrails.{i}.name: {name!r} is already the name of guardrail "
            f"{names.index(name)}; names must be unique"
            for i, name in enumerate(names)
            if names.index(name) != i
        ]
        if problems:
            # One line per problem; format_validation_error keeps them apart.
            raise ValueError("\n".join(problems))
        return self

    @classmethod
    def from_data(cls, data: Any, *, source: str = "agent config") -> AgentConfig:
        """Validate plain data (parsed YAML or JSON) into a config.

        Raises:
            ConfigError: one line per problem, each naming its path and what was wrong.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source=source)) from None

    def to_data(self) -> dict[str, Any]:
        """The config as JSON-ready data, every default filled in (the effective config)."""
        return self.model_dump(mode="json")

    def prompt(self, name: str) -> str:
        """The text of the prompt ``name``.

        Raises:
            ConfigError: no prompt has that name; the message lists the names that exist.
        """
        try:
            return self.prompts[name]
        except KeyError:
            known = ", ".join(sorted(self.prompts)) or "none"
            raise ConfigError(
                f"no prompt named {name!r} in the agent config; known prompts: {known}"
            ) from None

    def tool(self, name: str) -> ToolSettings:
        """The settings of the tool ``name``.

        Raises:
            ConfigError: the config has no such tool; the message lists the tools it has.
        """
        try:
            return self.tools[name]
        except KeyError:
            known = ", ".join(sorted(self.tools)) or "none"
            raise ConfigError(
                f"no tool named {name!r} in the agent config; known tools: {known}"
            ) from None

    def tool_or_default(self, name: str) -> ToolSettings:
        """The settings of ``name``, or the defaults when the config does not mention it."""
        return self.tools.get(name) or ToolSettings()


def _tool_problems(tools: dict[str, ToolSettings]) -> list[str]:
    problems = []
    for name, settings in sorted(tools.items()):
        fallback = settings.fallback
        if fallback is None or fallback.kind != "tool":
            continue
        if fallback.tool not in tools:
            problems.append(
                f"tools.{name}.fallback.tool: names unknown tool {fallback.tool!r}; "
                f"known tools: {', '.join(sorted(tools))}"
            )
        elif fallback.tool == name:
            problems.append(f"tools.{name}.fallback.tool: a tool cannot fall back to itself")
    return problems


def _routing_problems(routing: Routing) -> list[str]:
    known = ", ".join(sorted(routing.tiers)) or "none (add routing.tiers)"

    def unknown(path: str, tier: str) -> str:
        return f"{path}: names unknown tier {tier!r}; known tiers: {known}"

    problems = []
    if routing.default_tier is not None and routing.default_tier not in routing.tiers:
        problems.append(unknown("routing.default_tier", routing.default_tier))
    problems += [
        unknown(f"routing.rules.{i}.tier", rule.tier)
        for i, rule in enumerate(routing.rules)
        if rule.tier not in routing.tiers
    ]
    problems += [
        unknown(f"routing.failover.{i}", tier)
        for i, tier in enumerate(routing.failover)
        if tier not in routing.tiers
    ]
    return problems


def validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """``(dotted path, message)`` per problem; cross-field problems carry their own path."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling"
        for line in message.split("\n"):
            inner, sep, rest = line.partition(": ")
            # AgentConfig's reference checks name a path below the model they run on.
            if sep and " " not in inner and "." in inner:
                problems.append((f"{path}.{inner}" if path else inner, rest))
            else:
                problems.append((path, line))
    return problems


def format_validation_error(exc: ValidationError, *, source: str) -> str:
    """One line per pydantic error: ``path: message``, the path dotted (``tools.x.retry``)."""
    lines = [
        f"{path}: {message}" if path else message for path, message in validation_problems(exc)
    ]
    count = len(lines)
    head = f"{source} is invalid ({count} problem{'s' if count != 1 else ''}):"
    return "\n".join([head, *(f"  {line}" for line in lines)])

"""Resolved configs: an agent state document compiled once, then resolved per unit locally.

`compile_state` turns an `AgentState` into an `AgentSnapshot` when the state changes:
every version's config is parsed into an `AgentConfig` once, every allocation's salt
and weights are prepared for hashing, every flag's rules are compiled, and one
`ResolvedConfig` is built per variant. Resolving a unit is then a hash and a lookup
that returns one of those prebuilt objects.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from tuneloop import semconv
from tuneloop.assign import Assigner, Split
from tuneloop.config.canonical import content_hash
from tuneloop.config.flags import CompiledFlag, FlagResult
from tuneloop.config.model import AgentConfig, ModelRef, Params, ToolSettings
from tuneloop.config.state import AgentState, AllocationKind, UnitType, VersionRef
from tuneloop.errors import ConfigError

ConfigSource = Literal["server", "state_file", "fallback"]


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """The config a unit gets, with the version and variant it came from.

    Shared between calls: treat it, and the `AgentConfig` inside, as read-only.

    Attributes:
        agent: the agent's name.
        config: the whole typed config.
        version: the version's content hash (``tuneloop.config.version`` on the run).
        label: the version's semver label, if it has one.
        variant: the variant the unit was assigned, or None for production.
        key: the experiment or rollout that assigned it (``feature_flag.key``), or None.
        kind: ``experiment`` or ``rollout`` when ``key`` is set.
        source: where it came from: ``server`` (a state fetched from the server),
            ``state_file`` (the last state saved on disk, the server not reached since
            the client started) or ``fallback`` (the config file given to the client,
            before any state was known).
    """

    agent: str
    config: AgentConfig
    version: str
    label: str | None = None
    variant: str | None = None
    key: str | None = None
    kind: AllocationKind | None = None
    source: ConfigSource = "server"
    span_attributes: Mapping[str, AttributeValue] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        # What a run's span records, built once: tagging a run is then one call.
        attributes: dict[str, AttributeValue] = {semconv.TL_CONFIG_VERSION: self.version}
        if self.key is not None and self.variant is not None:
            attributes[semconv.FEATURE_FLAG_KEY] = self.key
            attributes[semconv.FEATURE_FLAG_RESULT_VARIANT] = self.variant
        object.__setattr__(self, "span_attributes", attributes)

    @property
    def model(self) -> ModelRef:
        """The model to call."""
        return self.config.model

    @property
    def params(self) -> Params:
        """Sampling parameters (``cfg.params.temperature``)."""
        return self.config.params

    @property
    def prompts(self) -> Mapping[str, str]:
        """Every prompt by name (a read-only view)."""
        return MappingProxyType(self.config.prompts)

    @property
    def tools(self) -> Mapping[str, ToolSettings]:
        """Every tool's settings by name (a read-only view)."""
        return MappingProxyType(self.config.tools)

    def prompt(self, name: str) -> str:
        """The text of the prompt ``name``.

        Raises:
            ConfigError: no such prompt; the message lists the prompts there are.
        """
        return self.config.prompt(name)

    def tool(self, name: str) -> ToolSettings:
        """The settings of the tool ``name`` (``cfg.tool("data_fetch").timeout_ms``).

        Raises:
            ConfigError: no such tool; the message lists the tools there are.
        """
        return self.config.tool(name)


def fallback_config(agent: str, config: AgentConfig) -> ResolvedConfig:
    """A config given to the client, as used before any state is known.

    Its version is the content hash a server gives the same config, so runs made with
    it are attributed to the matching version once it has been pushed.
    """
    return ResolvedConfig(agent, config, content_hash(config.to_data()), source="fallback")


@dataclass(frozen=True, slots=True)
class _Allocation:
    """One allocation compiled for resolving: the assigner and a prebuilt config per arm."""

    unit_type: UnitType
    assigner: Assigner
    arms: tuple[ResolvedConfig, ...]


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """An agent's state compiled for local resolution; replaced whole on every change.

    Attributes:
        state: the document it was compiled from.
        source: ``server`` or ``state_file``.
        production: the production config, or None before a version was pushed.
        configs: every version's parsed config by hash, reused by the next compile.
    """

    state: AgentState
    source: ConfigSource
    production: ResolvedConfig | None
    allocations: tuple[_Allocation, ...]
    flags: Mapping[str, CompiledFlag]
    configs: Mapping[str, AgentConfig]

    def resolve(self, unit_id: str | None, session_id: str | None) -> ResolvedConfig | None:
        """The config for a unit: the first allocation that covers it, else production.

        User allocations bucket on ``unit_id``; session allocations on ``session_id``,
        or on ``unit_id`` when no session id is given. A unit without the id an
        allocation needs is not in it.
        """
        for allocation in self.allocations:
            unit = unit_id
            if allocation.unit_type == "session" and session_id is not None:
                unit = session_id
            if unit is None:
                continue
            index = allocation.assigner.assign(unit)
            if index is not None:
                return allocation.arms[index]
        return self.production

    def flag(
        self, key: str, unit_id: str | None, attributes: Mapping[str, object] | None
    ) -> FlagResult | None:
        """Evaluate the flag ``key``, or None when this state has no such flag."""
        flag = self.flags.get(key)
        return None if flag is None else flag.evaluate(unit_id, attributes)

    def with_source(self, source: ConfigSource) -> AgentSnapshot:
        """The same snapshot, its configs marked as coming from ``source``."""
        if source == self.source:
            return self
        return compile_state(self.state, source=source, known=self.configs)


def parse_version(agent: str, ref: VersionRef) -> AgentConfig:
    """Parse one version's config from a state document.

    Raises:
        ConfigError: the config does not validate, naming the agent and version.
    """
    return AgentConfig.from_data(ref.config, source=f"agent {agent!r} version {ref.version[:12]}")


def compile_state(
    state: AgentState,
    *,
    source: ConfigSource,
    known: Mapping[str, AgentConfig] | None = None,
) -> AgentSnapshot:
    """Compile a state document for resolving; each distinct version is parsed once.

    Args:
        state: the document.
        source: where it came from (``server`` or ``state_file``).
        known: configs parsed by an earlier compile, by version hash; versions found
            there are not parsed again.

    Raises:
        ConfigError: a config, an allocation's weights or its coverage is invalid.
    """
    configs: dict[str, AgentConfig] = {}

    def config_of(ref: VersionRef) -> AgentConfig:
        if ref.version not in configs:
            cached = known.get(ref.version) if known is not None else None
            configs[ref.version] = cached or parse_version(state.agent, ref)
        return configs[ref.version]

    production = None
    if state.production is not None:
        ref = state.production
        production = ResolvedConfig(
            state.agent, config_of(ref), ref.version, ref.label, source=source
        )
    allocations = []
    for allocation in state.allocations:
        try:
            split = Split.from_weights([variant.weight for variant in allocation.variants])
            assigner = Assigner(allocation.salt, split, coverage=allocation.coverage)
        except ConfigError as exc:
            raise ConfigError(f"allocation {allocation.key!r}: {exc}") from None
        arms = tuple(
            ResolvedConfig(
                state.agent,
                config_of(variant.version),
                variant.version.version,
                variant.version.label,
                variant=variant.name,
                key=allocation.key,
                kind=allocation.kind,
                source=source,
            )
            for variant in allocation.variants
        )
        allocations.append(_Allocation(allocation.unit_type, assigner, arms))
    flags = {flag.key: CompiledFlag(flag) for flag in state.flags}
    return AgentSnapshot(state, source, production, tuple(allocations), flags, configs)


def tag_run(resolved: ResolvedConfig) -> None:
    """Record the version and variant on the current span if it is a recording run span."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    attributes = getattr(span, "attributes", None)
    if attributes is None or attributes.get(semconv.GEN_AI_OPERATION_NAME) != (
        semconv.OP_INVOKE_AGENT
    ):
        return
    span.set_attributes(resolved.span_attributes)


def record_flag(result: FlagResult) -> None:
    """Add a ``feature_flag.evaluation`` event to the current span, if it is recording."""
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(
            semconv.FEATURE_FLAG_EVALUATION_EVENT,
            {
                semconv.FEATURE_FLAG_KEY: result.key,
                semconv.FEATURE_FLAG_RESULT_VARIANT: result.variant,
                semconv.FEATURE_FLAG_RESULT_REASON: result.reason,
            },
        )


@dataclass(frozen=True, slots=True)
class ConfigStats:
    """What the config side of a `Client` fetched, failed and fell back on.

    Attributes:
        state_fetched: state documents received from the server (HTTP 200).
        state_unchanged: checks the server answered 304 Not Modified.
        state_errors: fetches that failed (unreachable, timeout, an error status).
        state_rejected: documents or state files that could not be used (invalid).
        state_file_errors: state files that could not be written.
        fallback_resolves: configs served from a fallback config file.
        unresolved: `Client.config` calls with nothing to serve (ConfigError raised).
        unknown_flags: `Client.flag` calls for a flag no known state defines.
    """

    state_fetched: int = 0
    state_unchanged: int = 0
    state_errors: int = 0
    state_rejected: int = 0
    state_file_errors: int = 0
    fallback_resolves: int = 0
    unresolved: int = 0
    unknown_flags: int = 0


class ConfigCounters:
    """Thread-safe counters behind `ConfigStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = ConfigStats()

    def snapshot(self) -> ConfigStats:
        """The counters as they are now."""
        with self._lock:
            return self._stats

    def add(self, **counts: int) -> None:
        """Add to the named counters (``state_errors=1``)."""
        with self._lock:
            s = self._stats
            self._stats = replace(s, **{name: getattr(s, name) + n for name, n in counts.items()})

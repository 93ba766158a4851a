"""Build a `GuardrailPipeline` from the ``guardrails`` section of an `AgentConfig`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar, assert_never

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuneloop.config.model import AgentConfig, GuardrailSpec, format_validation_error
from tuneloop.errors import ConfigError
from tuneloop.runtime.guardrails.base import GuardrailCheck, GuardrailPipeline
from tuneloop.runtime.guardrails.injection import (
    INJECTION_KINDS,
    InjectionKind,
    injection_detector,
    removal_token,
)
from tuneloop.runtime.guardrails.limits import LengthLimit, ToolAllowlist
from tuneloop.runtime.guardrails.pii import PII_KINDS, PiiKind, pii_detector
from tuneloop.runtime.guardrails.text import DetectorGuardrail
from tuneloop.runtime.guardrails.topics import topic_detector

GuardrailFactory = Callable[[GuardrailSpec], GuardrailCheck]
"""Builds a team's own guardrail from its spec (``kind: custom``)."""

_P = TypeVar("_P", bound=BaseModel)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PiiParams(_Params):
    """``pii`` params: which kinds of personal data to look for (default: all)."""

    kinds: list[PiiKind] = Field(default_factory=lambda: list(PII_KINDS), min_length=1)


class InjectionParams(_Params):
    """``injection`` params: which heuristics, and extra regexes of your own."""

    kinds: list[InjectionKind] = Field(default_factory=lambda: list(INJECTION_KINDS))
    patterns: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> InjectionParams:
        if not self.kinds and not self.patterns:
            raise ValueError("give at least one of kinds or patterns")
        return self


class TopicParams(_Params):
    """``denied_topics`` params: each topic's keywords."""

    topics: dict[str, list[str]] = Field(min_length=1)


class AllowlistParams(_Params):
    """``tool_allowlist`` params: the tools a model may call."""

    tools: list[str]


class LengthParams(_Params):
    """``length`` params: bounds in characters."""

    max_chars: int | None = Field(default=None, gt=0)
    min_chars: int = Field(default=0, ge=0)


def _params(spec: GuardrailSpec, model: type[_P]) -> _P:
    try:
        return model.model_validate(spec.params)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, source=f"guardrails.{spec.name}.params ({spec.kind})")
        ) from None


def build_guardrail(
    spec: GuardrailSpec, *, custom: Mapping[str, GuardrailFactory] | None = None
) -> GuardrailCheck:
    """The guardrail a spec describes.

    Args:
        spec: one entry of the config's ``guardrails`` list.
        custom: factories for ``kind: custom`` specs, by the spec's ``name``.

    Raises:
        ConfigError: bad params, or a custom guardrail with no factory of that name.
    """
    hops = spec.hops
    match spec.kind:
        case "pii":
            pii = _params(spec, PiiParams)
            return DetectorGuardrail(
                spec.name, hops, spec.action, pii_detector(pii.kinds), what="personal data"
            )
        case "injection":
            inj = _params(spec, InjectionParams)
            return DetectorGuardrail(
                spec.name,
                hops,
                spec.action,
                injection_detector(inj.kinds, inj.patterns),
                what="possible prompt injection",
                token=removal_token,
            )
        case "denied_topics":
            topics = _params(spec, TopicParams)
            return DetectorGuardrail(
                spec.name, hops, spec.action, topic_detector(topics.topics), what="denied topic"
            )
        case "tool_allowlist":
            if set(hops) != {"tool_args"}:
                raise ConfigError(
                    f"guardrails.{spec.name}.hops: a tool allowlist runs at tool_args only, "
                    f"got {hops}"
                )
            return ToolAllowlist(
                spec.name, _params(spec, AllowlistParams).tools, action=spec.action
            )
        case "length":
            length = _params(spec, LengthParams)
            return LengthLimit(
                spec.name,
                hops,
                action=spec.action,
                max_chars=length.max_chars,
                min_chars=length.min_chars,
            )
        case "custom":
            factories = custom or {}
            if spec.name not in factories:
                known = ", ".join(sorted(factories)) or "none"
                raise ConfigError(
                    f"guardrails.{spec.name}: a custom guardrail needs a factory named "
                    f"{spec.name!r} in custom=...; factories given: {known}"
                )
            return factories[spec.name](spec)
    assert_never(spec.kind)


def build_pipeline(
    specs: Sequence[GuardrailSpec] | AgentConfig,
    *,
    custom: Mapping[str, GuardrailFactory] | None = None,
) -> GuardrailPipeline:
    """The pipeline of a config's guardrails (or of a list of specs), in config order.

    Raises:
        ConfigError: any spec is invalid; the message names it.
    """
    items: Sequence[GuardrailSpec] = specs.guardrails if isinstance(specs, AgentConfig) else specs
    return GuardrailPipeline([build_guardrail(spec, custom=custom) for spec in items])

"""Model routing: pick a model tier for a request by the config's rules, and the failover chain.

Rules are tried in order; the first whose intents and input-length bounds match the
request names the tier. A request may name its tier outright. Without a match the
``default_tier`` is used, and without tiers the config's ``model``. The chain to try
is the chosen tier, then the ``failover`` tiers in order (each once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tuneloop.config.model import ModelRef, Routing, RoutingRule
from tuneloop.errors import ConfigError

RouteReason = Literal["explicit", "rule", "default_tier", "model"]


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """What routing looks at.

    Attributes:
        input_chars: the length of the user's input.
        intent: the request's intent, if the caller (or a classifier) knows it.
        tier: a tier the caller asks for, which wins over the rules.
    """

    input_chars: int
    intent: str | None = None
    tier: str | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One model to try: its tier (``None`` for the config's plain ``model``) and reference."""

    tier: str | None
    model: ModelRef


@dataclass(frozen=True, slots=True)
class Route:
    """A routing decision.

    Attributes:
        chain: the models to try in order; the first is the routed one.
        reason: why the first was chosen: ``explicit``, ``rule``, ``default_tier``, ``model``.
        rule: the index of the matching rule, for ``rule``.
        intent: the intent routing saw.
    """

    chain: tuple[Candidate, ...]
    reason: RouteReason
    rule: int | None = None
    intent: str | None = None

    @property
    def tier(self) -> str | None:
        """The routed tier."""
        return self.chain[0].tier

    def to_data(self) -> dict[str, Any]:
        """Plain data for a checkpoint."""
        return {
            "chain": [
                [candidate.tier, candidate.model.provider, candidate.model.name]
                for candidate in self.chain
            ],
            "reason": self.reason,
            "rule": self.rule,
            "intent": self.intent,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Route:
        """The inverse of `to_data`."""
        chain = tuple(
            Candidate(tier, ModelRef(provider=provider, name=name))
            for tier, provider, name in data["chain"]
        )
        return cls(chain, data["reason"], data.get("rule"), data.get("intent"))


def _matches(rule: RoutingRule, request: RouteRequest) -> bool:
    if rule.intents is not None and request.intent not in rule.intents:
        return False
    if rule.min_input_chars is not None and request.input_chars < rule.min_input_chars:
        return False
    return rule.max_input_chars is None or request.input_chars <= rule.max_input_chars


def route(routing: Routing, model: ModelRef, request: RouteRequest) -> Route:
    """The routing decision for ``request`` under ``routing`` (``model``: the config's model).

    Raises:
        ConfigError: the request asks for a tier the config does not define.
    """
    tiers = routing.tiers
    reason: RouteReason
    rule_index: int | None = None
    if request.tier is not None:
        if request.tier not in tiers:
            known = ", ".join(sorted(tiers)) or "none (add routing.tiers)"
            raise ConfigError(f"no routing tier named {request.tier!r}; known tiers: {known}")
        first: str | None = request.tier
        reason = "explicit"
    else:
        first, reason = None, "model"
        for index, rule in enumerate(routing.rules):
            if _matches(rule, request):
                first, reason, rule_index = rule.tier, "rule", index
                break
        if first is None and routing.default_tier is not None:
            first, reason = routing.default_tier, "default_tier"
    chain = [Candidate(first, tiers[first] if first is not None else model)]
    for tier in routing.failover:
        if tier != first and all(candidate.tier != tier for candidate in chain):
            chain.append(Candidate(tier, tiers[tier]))
    return Route(tuple(chain), reason, rule_index, request.intent)

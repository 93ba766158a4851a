"""The agent state document: everything an SDK needs to resolve configs without a server call.

``GET /api/v1/agents/{agent}/state`` serves it (with an ETag); the SDK keeps the last one
in memory and on disk. Experiments (issue 4) and rollouts (issue 8) add allocations;
feature flags are evaluated from ``flags``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

UnitType = Literal["user", "session"]
AllocationKind = Literal["experiment", "rollout"]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VersionRef(_Doc):
    """A version and its effective config, embedded so the SDK never fetches it separately."""

    version: str = Field(description="content hash of the version (sha256 hex)")
    label: str | None = Field(default=None, description="semver label, if any")
    config: dict[str, Any] = Field(description="the effective AgentConfig as JSON")


class VariantAllocation(_Doc):
    """One arm of an allocation: a variant name pinned to a version, with its traffic weight."""

    name: str
    weight: float = Field(ge=0.0, le=1.0)
    version: VersionRef


class Allocation(_Doc):
    """A running experiment or rollout splitting an agent's units across versions.

    Units outside ``coverage`` (a fraction of all units, by a second hash) get production.
    Weights sum to 1 across ``variants``.
    """

    kind: AllocationKind
    key: str = Field(description="experiment or rollout id; reported as feature_flag.key")
    salt: str
    unit_type: UnitType = "user"
    coverage: float = Field(default=1.0, ge=0.0, le=1.0)
    variants: list[VariantAllocation] = Field(min_length=1)


class FlagRule(_Doc):
    """Serve ``value`` to units whose attribute matches; rules are tried in order."""

    attribute: str
    op: Literal["eq", "neq", "in", "not_in", "contains", "gt", "gte", "lt", "lte"]
    values: list[str | int | float | bool] = Field(min_length=1)
    value: bool = True


class Flag(_Doc):
    """A feature flag: targeting rules first, then a percentage of units, else off."""

    key: str
    enabled: bool = True
    salt: str
    percentage: float = Field(default=0.0, ge=0.0, le=100.0)
    rules: list[FlagRule] = Field(default_factory=list)


class AgentState(_Doc):
    """The document itself. ``etag`` is a hash of everything else in it."""

    agent: str
    etag: str
    generated_ms: int
    production: VersionRef | None = Field(
        default=None, description="None until the agent's first version is pushed"
    )
    allocations: list[Allocation] = Field(default_factory=list)
    flags: list[Flag] = Field(default_factory=list)

"""Allocations as stored, and the agent state document assembled from the stored parts.

Experiments (issue 4) and rollouts (issue 8) put an :class:`AllocationSpec` per running
experiment or rollout with ``Store.configs.put_allocation`` and remove it with
``Store.configs.delete_allocation``; :func:`build_state` embeds each variant's config
into the state document, so the SDK never fetches a version separately.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tuneloop.config.canonical import content_hash
from tuneloop.config.state import (
    AgentState,
    Allocation,
    AllocationKind,
    Flag,
    UnitType,
    VariantAllocation,
    VersionRef,
)
from tuneloop.config.versions import VersionInfo

_WEIGHT_TOLERANCE = 1e-9


class VariantSpec(BaseModel):
    """One arm as stored: a variant name, its traffic weight, and the version it serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    weight: float = Field(ge=0.0, le=1.0)
    version: str = Field(pattern=r"^[0-9a-f]{64}$", description="full version hash")


class AllocationSpec(BaseModel):
    """A running experiment or rollout as the store keeps it (versions by hash)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AllocationKind
    key: str = Field(min_length=1, max_length=256)
    salt: str = Field(min_length=1, max_length=256)
    unit_type: UnitType = "user"
    coverage: float = Field(default=1.0, ge=0.0, le=1.0)
    variants: list[VariantSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> AllocationSpec:
        total = math.fsum(v.weight for v in self.variants)
        if abs(total - 1.0) > _WEIGHT_TOLERANCE:
            raise ValueError(f"variant weights must sum to 1, not {total}")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique: {names}")
        return self


def version_ref(version: VersionInfo) -> VersionRef:
    """A version as the state document embeds it."""
    return VersionRef(version=version.hash, label=version.label, config=version.config)


def resolve_allocation(spec: AllocationSpec, versions: Mapping[str, VersionInfo]) -> Allocation:
    """``spec`` with each variant's version looked up in ``versions`` (by hash)."""
    return Allocation(
        kind=spec.kind,
        key=spec.key,
        salt=spec.salt,
        unit_type=spec.unit_type,
        coverage=spec.coverage,
        variants=[
            VariantAllocation(
                name=v.name, weight=v.weight, version=version_ref(versions[v.version])
            )
            for v in spec.variants
        ],
    )


def build_state(
    agent: str,
    *,
    production: VersionInfo | None,
    allocations: Sequence[Allocation],
    flags: Sequence[Flag],
    now_ms: int,
) -> AgentState:
    """The state document, its ``etag`` a hash of everything in it but ``generated_ms``.

    So the ETag changes exactly when what an SDK would resolve changes.
    """
    body: dict[str, Any] = {
        "agent": agent,
        "production": version_ref(production).model_dump(mode="json") if production else None,
        "allocations": [a.model_dump(mode="json") for a in allocations],
        "flags": [f.model_dump(mode="json") for f in flags],
    }
    return AgentState.model_validate({**body, "etag": content_hash(body), "generated_ms": now_ms})

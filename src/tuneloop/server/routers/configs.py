"""Agent configs over HTTP: versions, bundles, diffs, channels, audit, flags, state.

Writes need an admin key. The state document is readable with an ingest key too, since
agents hold ingest keys. A channel move is a compare-and-set: the body names the
version the caller last saw (``expected_version``); if the channel moved since, 409.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tuneloop.config.bundle import Bundle, apply_bundle
from tuneloop.config.diff import diff_configs
from tuneloop.config.model import AgentConfig
from tuneloop.config.state import Flag, FlagRule
from tuneloop.config.versions import PRODUCTION, validate_agent, validate_flag_key
from tuneloop.errors import NotFoundError
from tuneloop.server.auth import AdminPrincipal, IngestPrincipal
from tuneloop.store import Store

router = APIRouter(prefix="/api/v1", tags=["configs"])
Message = Annotated[str, Field(max_length=4096)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionIn(_Body):
    """A config to store as a version."""

    config: dict[str, Any]
    label: str | None = None
    message: Message = ""
    parents: list[str] | None = Field(default=None, description="default: production's version")
    hash: str | None = Field(default=None, description="if given, must equal the content hash")


class BundleIn(_Body):
    """A bundle to apply to ``base`` (default: production's version)."""

    bundle: dict[str, Any]
    base: str | None = None
    label: str | None = None
    message: Message = ""
    dry_run: bool = False


class MoveIn(_Body):
    """Point a channel at ``version`` if it still points at ``expected_version``."""

    version: str
    expected_version: str | None = Field(description="what you last saw; null: a new channel")


class RollbackIn(_Body):
    """Move a channel back: to ``version``, or to where it was before its last move."""

    version: str | None = None
    expected_version: str | None = Field(description="the version the channel is on now")


class ApproveIn(_Body):
    """A review sign-off on a version."""

    message: Message = ""


class FlagIn(_Body):
    """A flag's definition (its key is in the URL); ``salt`` defaults to the key."""

    enabled: bool = True
    salt: str | None = Field(default=None, min_length=1, max_length=256)
    percentage: float = Field(default=0.0, ge=0.0, le=100.0)
    rules: list[FlagRule] = Field(default_factory=list)


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _now(request: Request) -> int:
    now: int = request.app.state.clock.now_ms()
    return now


@router.get("/agents/{agent}/state")
def get_state(
    request: Request,
    principal: IngestPrincipal,
    agent: str,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Everything an SDK needs to resolve configs locally; 304 when its ETag still matches."""
    state = _store(request).agent_state.state(principal.project_id, agent, now_ms=_now(request))
    etag = f'"{state.etag}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    seen = {tag.strip().removeprefix("W/") for tag in (if_none_match or "").split(",")}
    if etag in seen or "*" in seen:
        return Response(status_code=304, headers=headers)
    return JSONResponse(state.model_dump(mode="json"), headers=headers)


@router.get("/configs")
def list_configs(request: Request, principal: AdminPrincipal) -> dict[str, Any]:
    """Agents that have configs, with their version counts and channels."""
    return {"agents": _store(request).configs.list_agents(principal.project_id)}


@router.get("/agents/{agent}/config")
def get_config(
    request: Request, principal: AdminPrincipal, agent: str, version: str = PRODUCTION
) -> dict[str, Any]:
    """One version's effective config (default: production's)."""
    found = _store(request).configs.get_version(principal.project_id, agent, version)
    return {"version": found.hash, "label": found.label, "config": found.config}


@router.get("/agents/{agent}/versions")
def list_versions(
    request: Request,
    principal: AdminPrincipal,
    agent: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """An agent's versions, newest first (without configs)."""
    configs = _store(request).configs
    versions = configs.list_versions(principal.project_id, validate_agent(agent), limit=limit)
    channels = configs.list_channels(principal.project_id, agent)
    return {
        "items": [v.summary() for v in versions],
        "channels": {c.channel: c.version for c in channels},
    }


@router.get("/agents/{agent}/versions/{ref}")
def get_version(request: Request, principal: AdminPrincipal, agent: str, ref: str) -> Any:
    """A version by full hash, unique prefix (8+), semver label or channel name."""
    return _store(request).configs.get_version(principal.project_id, agent, ref).to_data()


@router.post("/agents/{agent}/versions", status_code=201)
def create_version(
    request: Request, response: Response, principal: AdminPrincipal, agent: str, body: VersionIn
) -> Any:
    """Store a config as a version (200 and the existing version if the content is known)."""
    config = AgentConfig.from_data(body.config)
    version, created = _store(request).configs.create_version(
        principal.project_id,
        agent,
        config,
        author=principal.key_id,
        now_ms=_now(request),
        label=body.label,
        message=body.message,
        parents=body.parents,
        expected_hash=body.hash,
    )
    if not created:
        response.status_code = 200
    return {**version.to_data(), "created": created}


@router.post("/agents/{agent}/bundles", status_code=201)
def apply_bundle_endpoint(
    request: Request, response: Response, principal: AdminPrincipal, agent: str, body: BundleIn
) -> Any:
    """Apply a bundle to a base version and store the result as a new version."""
    bundle = Bundle.from_data(body.bundle)
    configs = _store(request).configs
    base = configs.get_version(principal.project_id, agent, body.base or PRODUCTION)
    result = apply_bundle(AgentConfig.model_validate(base.config), bundle)
    if body.dry_run:
        diff = diff_configs(base.config, result.to_data(), old=base.label, new="bundle")
        response.status_code = 200
        return {"created": False, "dry_run": True, "base": base.summary(), **diff.to_data()}
    version, created = configs.create_version(
        principal.project_id,
        agent,
        result,
        author=principal.key_id,
        now_ms=_now(request),
        label=body.label,
        message=body.message or bundle.description or f"bundle {bundle.bundle_id}",
        parents=[base.hash],
        bundle=bundle,
    )
    if not created:
        response.status_code = 200
    diff = diff_configs(base.config, version.config, old=base.label, new=version.label)
    return {**version.to_data(), "created": created, "base": base.summary(), **diff.to_data()}


@router.get("/agents/{agent}/diff")
def diff_versions(
    request: Request,
    principal: AdminPrincipal,
    agent: str,
    old: Annotated[str, Query(alias="from")],
    new: Annotated[str, Query(alias="to")],
) -> dict[str, Any]:
    """Path-by-path changes from one version to another, and unified diffs of prompts."""
    configs = _store(request).configs
    a = configs.get_version(principal.project_id, agent, old)
    b = configs.get_version(principal.project_id, agent, new)
    diff = diff_configs(a.config, b.config, old=a.label, new=b.label)
    return {"from": a.summary(), "to": b.summary(), **diff.to_data(), "patch": diff.patch()}


@router.post("/agents/{agent}/versions/{ref}/approve", status_code=201)
def approve_version(
    request: Request, principal: AdminPrincipal, agent: str, ref: str, body: ApproveIn
) -> dict[str, Any]:
    """Record a review sign-off on a version in the audit log."""
    entry = _store(request).configs.approve_version(
        principal.project_id, agent, ref, author=principal.key_id, now_ms=_now(request),
        message=body.message,
    )  # fmt: skip
    return entry.to_data()


@router.get("/agents/{agent}/channels")
def list_channels(request: Request, principal: AdminPrincipal, agent: str) -> dict[str, Any]:
    """An agent's channels and the versions they point at."""
    channels = _store(request).configs.list_channels(principal.project_id, validate_agent(agent))
    return {"items": [c.to_data() for c in channels]}


@router.put("/agents/{agent}/channels/{channel}")
def move_channel(
    request: Request, principal: AdminPrincipal, agent: str, channel: str, body: MoveIn
) -> Any:
    """Point a channel at a version (creating the channel if ``expected_version`` is null)."""
    moved, changed = _store(request).configs.move_channel(
        principal.project_id, agent, channel, body.version, expected=body.expected_version,
        author=principal.key_id, now_ms=_now(request),
    )  # fmt: skip
    return {**moved.to_data(), "moved": changed}


@router.post("/agents/{agent}/channels/{channel}/rollback")
def rollback_channel(
    request: Request, principal: AdminPrincipal, agent: str, channel: str, body: RollbackIn
) -> Any:
    """Move a channel back to an earlier version, recorded as a rollback."""
    configs = _store(request).configs
    target = body.version or configs.previous_version(principal.project_id, agent, channel)
    if target is None:
        raise NotFoundError(
            f"channel {channel!r} of {agent!r} has no earlier version to roll back to; "
            "name one: tuneloop channel rollback AGENT CHANNEL VERSION"
        )
    moved, changed = configs.move_channel(
        principal.project_id, agent, channel, target, expected=body.expected_version,
        author=principal.key_id, now_ms=_now(request), rollback=True,
    )  # fmt: skip
    return {**moved.to_data(), "moved": changed}


@router.get("/audit")
def list_audit(
    request: Request,
    principal: AdminPrincipal,
    agent: str | None = None,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Audit rows in order; pass ``next_after_seq`` back as ``after_seq`` for more."""
    rows = _store(request).configs.audit(
        principal.project_id, agent=agent, after_seq=after_seq, limit=limit
    )
    return {
        "items": [row.to_data() for row in rows],
        "next_after_seq": rows[-1].seq if len(rows) == limit else None,
    }


@router.get("/audit/verify")
def verify_audit(request: Request, principal: AdminPrincipal) -> dict[str, Any]:
    """Recompute this project's audit chain and version hashes; ``ok`` False names problems."""
    (report,) = _store(request).configs.verify(principal.project_id)
    return report.to_data()


@router.get("/agents/{agent}/flags")
def list_flags(request: Request, principal: AdminPrincipal, agent: str) -> dict[str, Any]:
    """An agent's feature flags."""
    flags = _store(request).agent_state.list_flags(principal.project_id, validate_agent(agent))
    return {"items": [flag.model_dump(mode="json") for flag in flags]}


@router.get("/agents/{agent}/flags/{key}")
def get_flag(request: Request, principal: AdminPrincipal, agent: str, key: str) -> Any:
    """One feature flag."""
    flag = _store(request).agent_state.get_flag(principal.project_id, agent, key)
    return flag.model_dump(mode="json")


@router.put("/agents/{agent}/flags/{key}")
def put_flag(
    request: Request, response: Response, principal: AdminPrincipal, agent: str, key: str,
    body: FlagIn,
) -> Any:  # fmt: skip
    """Create (201) or replace (200) a feature flag."""
    flag = Flag(
        key=validate_flag_key(key), salt=body.salt or key, **body.model_dump(exclude={"salt"})
    )
    stored, created = _store(request).agent_state.put_flag(
        principal.project_id, agent, flag, author=principal.key_id, now_ms=_now(request)
    )
    response.status_code = 201 if created else 200
    return stored.model_dump(mode="json")


@router.delete("/agents/{agent}/flags/{key}", status_code=204)
def delete_flag(request: Request, principal: AdminPrincipal, agent: str, key: str) -> Response:
    """Delete a feature flag."""
    _store(request).agent_state.delete_flag(
        principal.project_id, agent, key, author=principal.key_id, now_ms=_now(request)
    )
    return Response(status_code=204)

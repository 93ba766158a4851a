"""Versions and channels as values, and the names that identify them.

A version is named by its full hash, a unique hash prefix of at least 8 characters, or
its semver label; :func:`classify_ref` tells which a user meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from tuneloop.errors import ConflictError, InvalidInputError

PRODUCTION = "production"
MIN_PREFIX = 8
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_HASH_PREFIX = re.compile(r"^[0-9a-f]{8,64}$")
_AGENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_CHANNEL = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_FLAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")

RefKind = Literal["hash", "prefix", "label"]


def is_semver(text: str) -> bool:
    """True if ``text`` is a semantic version such as ``1.4.0`` or ``2.0.0-rc.1``."""
    return _SEMVER.match(text) is not None


def semver_key(label: str) -> tuple[int, int, int, int, str]:
    """A sort key: releases after their pre-releases, then by pre-release text."""
    match = _SEMVER.match(label)
    if match is None:
        raise InvalidInputError(f"{label!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    major, minor, patch, pre = match.groups()
    return int(major), int(minor), int(patch), 0 if pre else 1, pre or ""


def next_label(labels: list[str]) -> str:
    """The label a version gets when none is given: the next minor after the highest."""
    if not labels:
        return "1.0.0"
    major, minor, *_ = semver_key(max(labels, key=semver_key))
    return f"{major}.{minor + 1}.0"


def validate_label(label: str) -> str:
    """``label`` if it is a semantic version, else InvalidInputError naming the format."""
    if not is_semver(label):
        raise InvalidInputError(
            f"invalid version label {label[:80]!r}: use a semantic version such as 1.2.0"
        )
    return label


def classify_ref(ref: str) -> RefKind:
    """Whether ``ref`` is a full hash, a hash prefix or a semver label.

    Raises:
        InvalidInputError: it is none of these.
    """
    if is_semver(ref):
        return "label"
    if _HASH_PREFIX.match(ref):
        return "hash" if len(ref) == 64 else "prefix"
    raise InvalidInputError(
        f"cannot name a version by {ref[:80]!r}: use its hash, a unique hash prefix of at "
        f"least {MIN_PREFIX} hex characters, or its semver label (1.2.0)"
    )


def validate_agent(agent: str) -> str:
    """Agent names go in URLs and file names: letters, digits, ``_ . : -``, up to 128."""
    if not _AGENT.match(agent):
        raise InvalidInputError(
            f"invalid agent name {agent[:80]!r}: use 1-128 letters, digits, '_', '.', ':' or "
            "'-', starting with a letter or digit"
        )
    return agent


def is_channel_name(text: str) -> bool:
    """True if ``text`` is a valid channel name."""
    return _CHANNEL.match(text) is not None


def validate_channel(channel: str) -> str:
    """Channel names are lower-case slugs such as ``production`` or ``staging``."""
    if not _CHANNEL.match(channel):
        raise InvalidInputError(
            f"invalid channel name {channel[:80]!r}: use 1-64 lower-case letters, digits, "
            "'-' or '_', starting with a letter"
        )
    return channel


def validate_flag_key(key: str) -> str:
    """Flag keys: letters, digits, ``_ . : -``, up to 128."""
    if not _FLAG.match(key):
        raise InvalidInputError(
            f"invalid flag key {key[:80]!r}: use 1-128 letters, digits, '_', '.', ':' or '-'"
        )
    return key


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One immutable version of an agent's config."""

    agent: str
    hash: str
    label: str
    parents: tuple[str, ...]
    bundle_id: str | None
    bundle_version: str | None
    author: str
    created_ms: int
    message: str
    config: dict[str, Any] = field(repr=False)
    bundle: dict[str, Any] | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        """Everything but the config and bundle, as JSON-ready data."""
        return {
            "agent": self.agent,
            "version": self.hash,
            "label": self.label,
            "parents": list(self.parents),
            "bundle_id": self.bundle_id,
            "bundle_version": self.bundle_version,
            "author": self.author,
            "created_ms": self.created_ms,
            "message": self.message,
        }

    def to_data(self) -> dict[str, Any]:
        """The summary with the config and the bundle that produced it."""
        return {**self.summary(), "config": self.config, "bundle": self.bundle}


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel and the version it points at."""

    agent: str
    channel: str
    version: str
    label: str
    updated_ms: int
    updated_by: str

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "agent": self.agent,
            "channel": self.channel,
            "version": self.version,
            "label": self.label,
            "updated_ms": self.updated_ms,
            "updated_by": self.updated_by,
        }


def check_expected(
    agent: str, channel: str, current: ChannelInfo | None, expected: str | None, wanted: str | None
) -> None:
    """The compare-and-set check of a channel move.

    ``expected`` is what the caller said the channel points at (None: it must not exist);
    ``wanted`` is that resolved to a full hash (None when it names no version).

    Raises:
        ConflictError: the channel is not where the caller last saw it.
    """
    if expected is None:
        if current is not None:
            raise ConflictError(
                f"channel {channel!r} of {agent!r} already points at {current.label} "
                f"({current.version[:12]}); pass that as expected_version to move it"
            )
        return
    if current is None:
        raise ConflictError(
            f"agent {agent!r} has no channel {channel!r} yet; create it with expected_version null"
        )
    if wanted != current.version:
        raise ConflictError(
            f"channel {channel!r} of {agent!r} now points at {current.label} "
            f"({current.version[:12]}), not {expected!r}: it moved since you read it; "
            "re-read and retry"
        )


def check_rollback(
    channel: str, current: ChannelInfo, current_ms: int, target: VersionInfo
) -> None:
    """A rollback goes back: the target must be older than the channel's version.

    Raises:
        InvalidInputError: the target is newer (use a move instead).
    """
    if (target.created_ms, semver_key(target.label)) > (current_ms, semver_key(current.label)):
        raise InvalidInputError(
            f"{target.label} is newer than {current.label}, the version {channel!r} is on; "
            "a rollback goes back: use `tuneloop channel set` to move forward"
        )

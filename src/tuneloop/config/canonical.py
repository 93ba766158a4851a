"""Canonical JSON and content hashes: the same data always gives the same bytes and hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tuneloop.errors import ConfigError


def canonical_json(data: Any) -> str:
    """Serialize ``data`` deterministically: sorted keys, no spaces, UTF-8 text, no NaN.

    Python's float repr is the shortest string that reads back as the same float, so
    equal values give equal text whatever order their keys were written in.

    Raises:
        ConfigError: the data holds NaN or infinity, which JSON cannot represent.
    """
    try:
        return json.dumps(
            data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except ValueError as exc:
        raise ConfigError(f"cannot hash a config holding NaN or infinity: {exc}") from None


def sha256_hex(text: str) -> str:
    """The sha256 of ``text`` (UTF-8) as 64 lower-case hex characters."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(data: Any) -> str:
    """The sha256 of ``data``'s canonical JSON: a version's identity."""
    return sha256_hex(canonical_json(data))

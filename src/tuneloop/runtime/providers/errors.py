"""Translate what a provider's SDK raises into tuneloop's `ProviderError` tree.

The OpenAI and Anthropic SDKs share one exception shape (a status error carrying the
HTTP response, a timeout error, a connection error), so one translation serves both.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping

from tuneloop.clock import Clock
from tuneloop.errors import (
    ProviderAuthError,
    ProviderBadRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderServerError,
    ProviderTimeoutError,
)

_MS_PER_S = 1000.0


def parse_retry_after(headers: Mapping[str, str], *, now_ms: int) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``retry-after`` (seconds or an HTTP date).

    Returns ``None`` when neither header is present or readable; never negative.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / _MS_PER_S
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - now_ms / _MS_PER_S)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def error_for_status(
    provider: str,
    status: int,
    detail: str,
    *,
    retry_after_s: float | None = None,
) -> ProviderError:
    """The `ProviderError` subclass for an HTTP status, with a message naming the fix."""
    where = f"{provider} answered HTTP {status}: {detail}"
    if status == 429:
        wait = f"; retry after {retry_after_s:g} s" if retry_after_s is not None else ""
        return ProviderRateLimitError(
            f"{where}{wait} (rate limited: slow down or raise the quota)",
            retry_after_s=retry_after_s,
            status_code=status,
        )
    if status in (401, 403):
        return ProviderAuthError(
            f"{where}; check the API key and that it may use this model", status_code=status
        )
    if status == 408:
        return ProviderTimeoutError(where, retry_after_s=retry_after_s, status_code=status)
    if status >= 500 or status == 409:
        # 409 (a conflicting concurrent request) and 5xx clear up on their own.
        return ProviderServerError(where, retry_after_s=retry_after_s, status_code=status)
    return ProviderBadRequestError(
        f"{where}; the request itself was rejected: check the model name, the messages "
        "and the parameters",
        status_code=status,
    )


def translate_sdk_error(
    exc: Exception,
    *,
    provider: str,
    status_error: type[Exception],
    timeout_error: type[Exception],
    connection_error: type[Exception],
    clock: Clock,
) -> ProviderError:
    """Map an official SDK's exception to the `ProviderError` tree.

    Args:
        exc: what the SDK raised.
        provider: the provider's name, for the message.
        status_error: the SDK's HTTP status error class (has ``status_code`` and ``response``).
        timeout_error: the SDK's timeout class (checked before ``connection_error``,
            which it subclasses in both SDKs).
        connection_error: the SDK's connection error class.
        clock: reads "now" for a Retry-After given as an HTTP date.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, timeout_error):
        return ProviderTimeoutError(f"{provider} did not answer in time: {exc}")
    if isinstance(exc, connection_error):
        cause = exc.__cause__ or exc
        return ProviderConnectionError(
            f"could not reach {provider}: {type(cause).__name__}: {cause}; check the base URL "
            "and the network"
        )
    if isinstance(exc, status_error):
        status = int(getattr(exc, "status_code", 0) or 0)
        response = getattr(exc, "response", None)
        headers: Mapping[str, str] = getattr(response, "headers", None) or {}
        retry_after = parse_retry_after(headers, now_ms=clock.now_ms())
        detail = getattr(exc, "message", None) or str(exc)
        return error_for_status(provider, status, str(detail), retry_after_s=retry_after)
    return ProviderServerError(f"{provider} failed unexpectedly: {type(exc).__name__}: {exc}")

"""Query-parameter parsing shared by the read endpoints."""

from __future__ import annotations

from datetime import datetime

from tuneloop.analysis.metrics import parse_duration_ms
from tuneloop.errors import InvalidInputError
from tuneloop.store.queries import RunFilter


def parse_time_ms(
    text: str | None, *, now_ms: int, name: str, align_ms: int | None = None
) -> int | None:
    """A time given as epoch milliseconds, ISO 8601, or a span back from now (``24h``).

    With ``align_ms``, a span back from now starts at the beginning of its ``align_ms``
    period (``14d`` at 15:42 means 14 days before 15:00); explicit times stay exact.
    """
    if text is None or text == "":
        return None
    cleaned = text.strip()
    if cleaned.isdigit():
        return int(cleaned)
    if (cleaned[-1:].isalpha() and cleaned[:-1].isdigit()) or cleaned.endswith("ms"):
        try:
            back = now_ms - parse_duration_ms(cleaned)
        except InvalidInputError:
            pass
        else:
            return back if align_ms is None else back // align_ms * align_ms
    try:
        moment = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"invalid {name} {cleaned[:60]!r}: use epoch milliseconds, ISO 8601 "
            "(2026-01-31T12:00:00Z) or a span back from now (30m, 24h, 7d)"
        ) from None
    if moment.tzinfo is None:
        raise InvalidInputError(f"{name} {cleaned[:60]!r} needs a time zone (e.g. Z or +00:00)")
    return int(moment.timestamp() * 1000)


def _without_nul(name: str, value: str | None) -> str | None:
    # Stored text never holds NUL (ingest replaces it), and PostgreSQL refuses it in a query.
    if value is not None and "\x00" in value:
        raise InvalidInputError(f"{name} must not contain NUL characters")
    return value


def parse_attribute_filters(values: list[str]) -> tuple[tuple[str, str], ...]:
    """``attr=key=value`` pairs; the first '=' separates key from value."""
    pairs = []
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"invalid attribute filter {value[:80]!r}: use attr=KEY=VALUE")
        _without_nul("attr", value)
        pairs.append((key, wanted))
    return tuple(pairs)


def run_filter(
    *,
    now_ms: int,
    agent: str | None = None,
    version: str | None = None,
    variant: str | None = None,
    experiment: str | None = None,
    outcome: str | None = None,
    unit_id: str | None = None,
    session_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
    attr: list[str] | None = None,
    align_ms: int | None = None,
) -> RunFilter:
    """A RunFilter from query parameters (``align_ms``: see ``parse_time_ms``)."""
    return RunFilter(
        agent=_without_nul("agent", agent),
        version=_without_nul("version", version),
        variant=_without_nul("variant", variant),
        experiment=_without_nul("experiment", experiment),
        outcome=_without_nul("outcome", outcome),
        unit_id=_without_nul("unit_id", unit_id),
        session_id=_without_nul("session_id", session_id),
        since_ms=parse_time_ms(since, now_ms=now_ms, name="since", align_ms=align_ms),
        until_ms=parse_time_ms(until, now_ms=now_ms, name="until", align_ms=align_ms),
        attributes=parse_attribute_filters(attr or []),
    )

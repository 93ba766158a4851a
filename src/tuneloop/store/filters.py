"""Which runs a read selects: the filter and its SQL conditions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tuneloop.store.schema import runs


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs to read; every field narrows the selection."""

    agent: str | None = None
    version: str | None = None
    variant: str | None = None
    experiment: str | None = None
    outcome: str | None = None
    unit_id: str | None = None
    session_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    attributes: tuple[tuple[str, str], ...] = ()


def run_conditions(
    project_id: str, where: RunFilter, table: sa.Table = runs, *, dialect: str
) -> list[Any]:
    """WHERE terms selecting the runs ``where`` asks for (rooted runs only)."""
    conds: list[Any] = [table.c.project_id == project_id, table.c.has_root.is_(True)]
    for column, value in (
        ("agent", where.agent),
        ("config_version", where.version),
        ("variant", where.variant),
        ("experiment", where.experiment),
        ("outcome", where.outcome),
        ("unit_id", where.unit_id),
        ("session_id", where.session_id),
    ):
        if value is not None:
            conds.append(table.c[column] == value)
    if where.since_ms is not None:
        conds.append(table.c.started_ms >= where.since_ms)
    if where.until_ms is not None:
        conds.append(table.c.started_ms < where.until_ms)
    for key, value in where.attributes:
        conds.append(attribute_equals(table, key, value, dialect))
    return conds


def attribute_equals(table: sa.Table, key: str, value: str, dialect: str) -> Any:
    """A run attribute equal to ``value``, compared as text."""
    if dialect != "sqlite":
        return table.c.attributes[key].as_string() == value
    # A SQLite JSON path cannot spell every key (one holding '"'), and json_extract reads
    # true as 1: match decoded keys instead, with booleans spelled as PostgreSQL's ->> does.
    each = sa.func.json_each(table.c.attributes).table_valued("key", "value", "type")
    text = sa.case(
        (each.c.type == "true", "true"),
        (each.c.type == "false", "false"),
        else_=sa.cast(each.c.value, sa.String),
    )
    return sa.exists().where(each.c.key == key, text == value)

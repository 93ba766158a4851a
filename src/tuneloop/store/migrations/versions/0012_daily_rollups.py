"""daily metric rollups next to the hourly ones, backfilled from them

Hourly rollups barely compress at production traffic: ~130 tool calls per identity,
tool and hour spread over ~100 one-percent latency buckets. A day holds ~250 buckets
for 24 times the calls, so whole days read ten times fewer rows from the daily tables.

Revision ID: 0012
Revises: 0011
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_RUN_SUMS = (
    "runs", "successes", "failures", "escalations", "errors", "input_tokens",
    "output_tokens", "cost_usd", "tool_calls", "tool_errors", "tool_errors_retryable",
)  # fmt: skip
_TOOL_SUMS = ("calls", "errors", "errors_retryable", "retries")
_DAY_MS = 86_400_000
_IDENTITY = ("project_id", "agent", "config_version", "experiment", "variant")
# Clustered by agent, then day: one agent's window is one range of the key.
_PRIMARY_KEY = (
    "project_id", "agent", "day_ms", "config_version", "experiment", "variant", "latency_bucket",
)  # fmt: skip


def _key_columns(*, tool: bool) -> list[sa.Column[Any]]:
    return [
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=256), nullable=False),
        sa.Column("config_version", sa.String(length=128), nullable=False),
        sa.Column("experiment", sa.String(length=256), nullable=False),
        sa.Column("variant", sa.String(length=256), nullable=False),
        *([sa.Column("tool", sa.String(length=256), nullable=False)] if tool else []),
        sa.Column("day_ms", sa.BigInteger(), nullable=False),
        sa.Column("latency_bucket", sa.Integer(), nullable=False),
    ]


def _create(table: str, sums: tuple[str, ...], *, tool: bool) -> None:
    tool_key = ["tool"] if tool else []
    op.create_table(
        table,
        *_key_columns(tool=tool),
        *[
            sa.Column(name, sa.Float() if name == "cost_usd" else sa.BigInteger(), nullable=False)
            for name in sums
        ],
        sa.PrimaryKeyConstraint(*_PRIMARY_KEY[:-1], *tool_key, "latency_bucket"),
        sqlite_with_rowid=False,
    )
    # Sum what the hourly tier already holds: the same rows ingest adds from now on.
    keys = ", ".join((*_IDENTITY, *tool_key))
    day = f"(hour_ms / {_DAY_MS}) * {_DAY_MS}"
    op.execute(
        f"""
        INSERT INTO {table} ({keys}, day_ms, latency_bucket, {", ".join(sums)})
        SELECT {keys}, {day}, latency_bucket, {", ".join(f"SUM({name})" for name in sums)}
        FROM {table.removesuffix("_daily")}
        GROUP BY {keys}, {day}, latency_bucket
        """
    )


def upgrade() -> None:
    _create("run_rollups_daily", _RUN_SUMS, tool=False)
    _create("tool_rollups_daily", _TOOL_SUMS, tool=True)


def downgrade() -> None:
    op.drop_table("tool_rollups_daily")
    op.drop_table("run_rollups_daily")

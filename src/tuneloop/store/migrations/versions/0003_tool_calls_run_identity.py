"""run identity on tool calls, and a covering index for tool metrics

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_IDENTITY = (
    ("agent", sa.String(length=256)),
    ("config_version", sa.String(length=128)),
    ("experiment", sa.String(length=256)),
    ("variant", sa.String(length=256)),
)
_INDEX_COLUMNS = [
    "project_id", "agent", "tool", "latency_bucket", "config_version", "experiment", "variant",
    "status", "retryable", "retries", "started_ms",
]  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("tool_calls", schema=None) as batch_op:
        for name, type_ in _IDENTITY:
            batch_op.add_column(sa.Column(name, type_, nullable=True))

    # Copy each run's identity onto its stored tool calls; runs without a root keep NULL,
    # as ingest leaves them until the root arrives. Scalar subqueries run on both engines.
    runs = sa.table(
        "runs",
        sa.column("project_id"),
        sa.column("trace_id"),
        sa.column("has_root", sa.Boolean),
        *(sa.column(name) for name, _ in _IDENTITY),
    )
    tool_calls = sa.table(
        "tool_calls",
        sa.column("project_id"),
        sa.column("trace_id"),
        *(sa.column(name) for name, _ in _IDENTITY),
    )
    same_run = sa.and_(
        runs.c.project_id == tool_calls.c.project_id,
        runs.c.trace_id == tool_calls.c.trace_id,
        runs.c.has_root.is_(True),
    )
    op.execute(
        sa.update(tool_calls)
        .values(
            {
                name: sa.select(runs.c[name]).where(same_run).scalar_subquery()
                for name, _ in _IDENTITY
            }
        )
        .where(sa.exists().where(same_run))
    )

    with op.batch_alter_table("tool_calls", schema=None) as batch_op:
        batch_op.create_index("ix_tool_calls_metrics", _INDEX_COLUMNS, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tool_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_tool_calls_metrics")
        for name, _ in reversed(_IDENTITY):
            batch_op.drop_column(name)

"""agent runtime: run checkpoints, idempotency ledger, shared cache, review items, session usage

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runtime_checkpoints",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=256), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "run_id"),
    )
    with op.batch_alter_table("runtime_checkpoints", schema=None) as batch_op:
        batch_op.create_index(
            "ix_runtime_checkpoints_state", ["project_id", "agent", "state"], unique=False
        )

    op.create_table(
        "runtime_ledger",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("idem_key", sa.String(length=128), nullable=False),
        sa.Column("tool", sa.String(length=128), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "idem_key"),
    )

    op.create_table(
        "runtime_cache",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("cache_key", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("stored_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "cache_key"),
    )
    with op.batch_alter_table("runtime_cache", schema=None) as batch_op:
        batch_op.create_index(
            "ix_runtime_cache_expires", ["project_id", "expires_ms"], unique=False
        )

    op.create_table(
        "review_items",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("review_id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("tool", sa.String(length=128), nullable=True),
        sa.Column("call_id", sa.String(length=128), nullable=True),
        sa.Column("hop", sa.String(length=16), nullable=True),
        sa.Column("arguments", sa.Text(), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("trace_id", sa.String(length=32), nullable=True),
        sa.Column("session_id", sa.String(length=256), nullable=True),
        sa.Column("reviewer", sa.String(length=256), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("decided_ms", sa.BigInteger(), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "review_id"),
    )
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_review_items_status", ["project_id", "status", "created_ms"], unique=False
        )
        batch_op.create_index("ix_review_items_run", ["project_id", "run_id"], unique=False)

    op.create_table(
        "session_usage",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("session_id", sa.String(length=256), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "agent", "session_id"),
    )


def downgrade() -> None:
    op.drop_table("session_usage")
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_index("ix_review_items_run")
        batch_op.drop_index("ix_review_items_status")
    op.drop_table("review_items")
    with op.batch_alter_table("runtime_cache", schema=None) as batch_op:
        batch_op.drop_index("ix_runtime_cache_expires")
    op.drop_table("runtime_cache")
    op.drop_table("runtime_ledger")
    with op.batch_alter_table("runtime_checkpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_runtime_checkpoints_state")
    op.drop_table("runtime_checkpoints")

"""recommendations: analyzer findings per agent and version, with their status and links

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recommendations",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("rec_id", sa.String(length=32), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("config_version", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("headline", sa.Float(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("bundle_id", sa.String(length=128), nullable=True),
        sa.Column("version_hash", sa.String(length=64), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("decided_ms", sa.BigInteger(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "rec_id"),
        sa.UniqueConstraint(
            "project_id",
            "agent",
            "config_version",
            "fingerprint",
            name="uq_recommendations_finding",
        ),
    )
    with op.batch_alter_table("recommendations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recommendations_agent",
            ["project_id", "agent", "status", "updated_ms"],
            unique=False,
        )
        batch_op.create_index(
            "ix_recommendations_fingerprint", ["project_id", "agent", "fingerprint"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("recommendations", schema=None) as batch_op:
        batch_op.drop_index("ix_recommendations_fingerprint")
        batch_op.drop_index("ix_recommendations_agent")
    op.drop_table("recommendations")

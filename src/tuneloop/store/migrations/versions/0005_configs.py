"""agent configuration: versions, channels, audit chain, feature flags, state allocations

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "config_versions",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("version_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("parents", sa.Text(), nullable=False),
        sa.Column("bundle_id", sa.String(length=128), nullable=True),
        sa.Column("bundle_version", sa.String(length=64), nullable=True),
        sa.Column("bundle", sa.Text(), nullable=True),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "agent", "version_hash"),
        sa.UniqueConstraint("project_id", "agent", "label", name="uq_config_versions_label"),
    )
    with op.batch_alter_table("config_versions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_config_versions_created", ["project_id", "agent", "created_ms"], unique=False
        )

    op.create_table(
        "config_channels",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("version_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id", "agent", "version_hash"],
            ["config_versions.project_id", "config_versions.agent", "config_versions.version_hash"],
            name="fk_config_channels_version",
        ),
        sa.PrimaryKeyConstraint("project_id", "agent", "channel"),
    )

    op.create_table(
        "config_audit",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("before_hash", sa.String(length=64), nullable=True),
        sa.Column("after_hash", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "seq"),
    )
    with op.batch_alter_table("config_audit", schema=None) as batch_op:
        batch_op.create_index("ix_config_audit_agent", ["project_id", "agent", "seq"], unique=False)

    op.create_table(
        "config_audit_heads",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("project_id"),
    )

    op.create_table(
        "feature_flags",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("flag_key", sa.String(length=128), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "agent", "flag_key"),
    )

    op.create_table(
        "state_allocations",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("alloc_key", sa.String(length=256), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "agent", "kind", "alloc_key"),
    )


def downgrade() -> None:
    op.drop_table("state_allocations")
    op.drop_table("feature_flags")
    op.drop_table("config_audit_heads")
    with op.batch_alter_table("config_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_config_audit_agent")
    op.drop_table("config_audit")
    op.drop_table("config_channels")
    with op.batch_alter_table("config_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_config_versions_created")
    op.drop_table("config_versions")

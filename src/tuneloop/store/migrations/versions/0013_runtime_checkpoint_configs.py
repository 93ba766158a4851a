"""agent runtime: a checkpoint's pinned configs in their own column, written when they change

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runtime_checkpoints", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("configs", sa.Text(), nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("runtime_checkpoints", schema=None) as batch_op:
        batch_op.drop_column("configs")

"""eval runs and per-version gate verdicts

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("suite", sa.String(length=256), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("version_label", sa.String(length=128), nullable=True),
        sa.Column("version_hash", sa.String(length=64), nullable=True),
        sa.Column("config_hash", sa.String(length=64), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("pass_rate", sa.Float(), nullable=False),
        sa.Column("case_count", sa.Integer(), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id", "agent", "version_hash"],
            ["config_versions.project_id", "config_versions.agent", "config_versions.version_hash"],
            name="fk_eval_runs_version",
        ),
        sa.PrimaryKeyConstraint("project_id", "run_id"),
    )
    with op.batch_alter_table("eval_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_eval_runs_version",
            ["project_id", "agent", "version_hash", "created_ms"],
            unique=False,
        )
        batch_op.create_index(
            "ix_eval_runs_suite", ["project_id", "suite", "created_ms"], unique=False
        )
        batch_op.create_index("ix_eval_runs_created", ["project_id", "created_ms"], unique=False)

    op.create_table(
        "eval_gate_verdicts",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("version_hash", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("suite", sa.String(length=256), nullable=False),
        sa.Column("finished_ms", sa.BigInteger(), nullable=False),
        sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id", "agent", "version_hash"],
            ["config_versions.project_id", "config_versions.agent", "config_versions.version_hash"],
            name="fk_eval_gate_verdicts_version",
        ),
        sa.ForeignKeyConstraint(
            ["project_id", "run_id"],
            ["eval_runs.project_id", "eval_runs.run_id"],
            name="fk_eval_gate_verdicts_run",
        ),
        sa.PrimaryKeyConstraint("project_id", "agent", "version_hash", "stage"),
    )


def downgrade() -> None:
    op.drop_table("eval_gate_verdicts")
    with op.batch_alter_table("eval_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_eval_runs_created")
        batch_op.drop_index("ix_eval_runs_suite")
        batch_op.drop_index("ix_eval_runs_version")
    op.drop_table("eval_runs")

"""indexes for the dashboard: a session's runs, runs by outcome, rollups by time

Revision ID: 0008
Revises: 0007

The session view and trace search read ``runs`` by session and by outcome, newest
first; metrics over a time window read the rollups from the window's first hour rather
than every hour of an agent. Outcome and rollup keys grow with time, so their inserts
land on a few hot pages; a session id is random, like the run's own primary key.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_runs_session", ["project_id", "session_id", "started_ms"], unique=False
        )
        batch_op.create_index(
            "ix_runs_outcome", ["project_id", "outcome", "started_ms"], unique=False
        )
    with op.batch_alter_table("run_rollups", schema=None) as batch_op:
        batch_op.create_index("ix_run_rollups_time", ["project_id", "hour_ms"], unique=False)
        batch_op.create_index(
            "ix_run_rollups_agent_time", ["project_id", "agent", "hour_ms"], unique=False
        )
    with op.batch_alter_table("tool_rollups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tool_rollups_agent_time", ["project_id", "agent", "hour_ms"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tool_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_tool_rollups_agent_time")
    with op.batch_alter_table("run_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_run_rollups_agent_time")
        batch_op.drop_index("ix_run_rollups_time")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_outcome")
        batch_op.drop_index("ix_runs_session")

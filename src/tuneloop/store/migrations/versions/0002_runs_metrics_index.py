"""covering index for run metrics

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLUMNS = [
    "project_id", "agent", "config_version", "experiment", "variant", "latency_bucket",
    "has_root", "started_ms", "outcome", "status", "error_type", "llm_calls", "input_tokens",
    "output_tokens", "cost_usd", "root_input_tokens", "root_output_tokens", "root_cost_usd",
    "tool_calls", "tool_errors", "tool_errors_retryable",
]  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_metrics", _COLUMNS, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_metrics")

"""rollouts with their timeline, alert rules and events, webhook deliveries, controller lease

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_VERSION_COLUMNS = [
    "config_versions.project_id",
    "config_versions.agent",
    "config_versions.version_hash",
]


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("rollout_id", sa.String(length=32), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("candidate_hash", sa.String(length=64), nullable=False),
        sa.Column("stable_hash", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("step_started_ms", sa.BigInteger(), nullable=False),
        sa.Column("step_deadline_ms", sa.BigInteger(), nullable=True),
        sa.Column("approved_steps", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("force_reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_evaluated_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id", "agent", "candidate_hash"],
            _VERSION_COLUMNS,
            name="fk_rollouts_candidate",
        ),
        sa.ForeignKeyConstraint(
            ["project_id", "agent", "stable_hash"], _VERSION_COLUMNS, name="fk_rollouts_stable"
        ),
        sa.PrimaryKeyConstraint("project_id", "rollout_id"),
    )
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.create_index("ix_rollouts_agent", ["project_id", "agent", "status"], unique=False)
        batch_op.create_index("ix_rollouts_status", ["status"], unique=False)

    op.create_table(
        "rollout_evaluations",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("rollout_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "rollout_id", "seq"),
    )

    op.create_table(
        "alert_rules",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("pending_since_ms", sa.BigInteger(), nullable=True),
        sa.Column("firing_since_ms", sa.BigInteger(), nullable=True),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("last_evaluated_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "rule_id"),
        sa.UniqueConstraint("project_id", "agent", "name", name="uq_alert_rules_name"),
    )

    op.create_table(
        "alert_events",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=True),
        sa.Column("rollout_id", sa.String(length=32), nullable=True),
        sa.Column("agent", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("dedupe_key", sa.String(length=256), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "event_id"),
        sa.UniqueConstraint("project_id", "dedupe_key", "status", name="uq_alert_events_dedupe"),
    )
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.create_index("ix_alert_events_time", ["project_id", "created_ms"], unique=False)

    op.create_table(
        "webhook_deliveries",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("delivery_id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("delivered_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "delivery_id"),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_due", ["status", "next_attempt_ms"], unique=False
        )
        batch_op.create_index(
            "ix_webhook_deliveries_event", ["project_id", "event_id"], unique=False
        )

    op.create_table(
        "controller_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("controller_leases")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_event")
        batch_op.drop_index("ix_webhook_deliveries_due")
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_events_time")
    op.drop_table("alert_events")
    op.drop_table("alert_rules")
    op.drop_table("rollout_evaluations")
    with op.batch_alter_table("rollouts", schema=None) as batch_op:
        batch_op.drop_index("ix_rollouts_status")
        batch_op.drop_index("ix_rollouts_agent")
    op.drop_table("rollouts")

"""The database schema, in SQLAlchemy Core. Every table carries ``project_id``.

Migrations in ``migrations/versions`` create exactly this; a test compares them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column(
        "project_id",
        sa.String(64),
        sa.ForeignKey("projects.project_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("scope", sa.String(16), nullable=False),
    # sha256 of the secret part; keys are 256-bit random, so a fast hash is enough.
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("revoked_ms", sa.BigInteger, nullable=True),
    sa.Index("ix_api_keys_project", "project_id"),
)

# Spans for search and replay; analytics never read this table.
spans = sa.Table(
    "spans",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("trace_id", sa.String(32), primary_key=True),
    sa.Column("span_id", sa.String(16), primary_key=True),
    sa.Column("parent_span_id", sa.String(16), nullable=True),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("start_ns", sa.BigInteger, nullable=False),
    sa.Column("end_ns", sa.BigInteger, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    # zlib-compressed JSON: attributes, events, status message, resource.
    sa.Column("payload", sa.LargeBinary, nullable=False),
)

# One fact row per run (trace). Child spans add to the counters; the root span sets the
# identity columns, whichever arrives first.
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("trace_id", sa.String(32), primary_key=True),
    sa.Column("has_root", sa.Boolean, nullable=False),
    sa.Column("root_span_id", sa.String(16), nullable=True),
    sa.Column("agent", sa.String(256), nullable=True),
    sa.Column("config_version", sa.String(128), nullable=True),
    sa.Column("experiment", sa.String(256), nullable=True),
    sa.Column("variant", sa.String(256), nullable=True),
    sa.Column("unit_id", sa.String(256), nullable=True),
    sa.Column("session_id", sa.String(256), nullable=True),
    sa.Column("outcome", sa.String(64), nullable=True),
    sa.Column("status", sa.SmallInteger, nullable=True),
    sa.Column("error_type", sa.String(256), nullable=True),
    sa.Column("started_ms", sa.BigInteger, nullable=True),
    sa.Column("duration_ms", sa.Float, nullable=True),
    sa.Column("latency_bucket", sa.Integer, nullable=True),
    sa.Column("root_input_tokens", sa.BigInteger, nullable=False),
    sa.Column("root_output_tokens", sa.BigInteger, nullable=False),
    sa.Column("root_cost_usd", sa.Float, nullable=False),
    sa.Column("llm_calls", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("tool_calls", sa.Integer, nullable=False),
    sa.Column("tool_errors", sa.Integer, nullable=False),
    sa.Column("tool_errors_retryable", sa.Integer, nullable=False),
    sa.Column("span_count", sa.Integer, nullable=False),
    sa.Column("attributes", sa.JSON, nullable=True),
    sa.Index("ix_runs_agent_time", "project_id", "agent", "started_ms"),
    sa.Index("ix_runs_time", "project_id", "started_ms"),
)

# One fact row per tool call. The run's identity (agent … variant) is copied from its root
# span so tool metrics need no join with ``runs``; it stays NULL until the root arrives.
tool_calls = sa.Table(
    "tool_calls",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("trace_id", sa.String(32), primary_key=True),
    sa.Column("span_id", sa.String(16), primary_key=True),
    sa.Column("tool", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error_type", sa.String(256), nullable=True),
    sa.Column("retryable", sa.Boolean, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("latency_bucket", sa.Integer, nullable=False),
    sa.Column("retries", sa.Integer, nullable=False),
    sa.Column("started_ms", sa.BigInteger, nullable=False),
    sa.Column("agent", sa.String(256), nullable=True),
    sa.Column("config_version", sa.String(128), nullable=True),
    sa.Column("experiment", sa.String(256), nullable=True),
    sa.Column("variant", sa.String(256), nullable=True),
    sa.Index("ix_tool_calls_time", "project_id", "started_ms"),
)

# Hourly rollups that metrics read instead of every fact row, maintained by ingest in the
# fact rows' transaction (store/rollups.py). Keyed by the run's identity, the hour of its
# start and its latency bucket, so they hold latency histograms too. A run (or tool
# call) counts once its root span has set its identity. Identity columns absent on the
# run are stored as '' (key columns cannot be NULL); ingest never stores '' there.


def _rollup_key_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(256), primary_key=True),
        sa.Column("config_version", sa.String(128), primary_key=True),
        sa.Column("experiment", sa.String(256), primary_key=True),
        sa.Column("variant", sa.String(256), primary_key=True),
    ]


run_rollups = sa.Table(
    "run_rollups",
    metadata,
    *_rollup_key_columns(),
    sa.Column("hour_ms", sa.BigInteger, primary_key=True),
    sa.Column("latency_bucket", sa.Integer, primary_key=True),
    sa.Column("runs", sa.BigInteger, nullable=False),
    sa.Column("successes", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.BigInteger, nullable=False),
    sa.Column("escalations", sa.BigInteger, nullable=False),
    sa.Column("errors", sa.BigInteger, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("tool_calls", sa.BigInteger, nullable=False),
    sa.Column("tool_errors", sa.BigInteger, nullable=False),
    sa.Column("tool_errors_retryable", sa.BigInteger, nullable=False),
)

tool_rollups = sa.Table(
    "tool_rollups",
    metadata,
    *_rollup_key_columns(),
    sa.Column("tool", sa.String(256), primary_key=True),
    sa.Column("hour_ms", sa.BigInteger, primary_key=True),
    sa.Column("latency_bucket", sa.Integer, primary_key=True),
    sa.Column("calls", sa.BigInteger, nullable=False),
    sa.Column("errors", sa.BigInteger, nullable=False),
    sa.Column("errors_retryable", sa.BigInteger, nullable=False),
    sa.Column("retries", sa.BigInteger, nullable=False),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("feedback_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("trace_id", sa.String(32), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_feedback_trace", "project_id", "trace_id"),
)

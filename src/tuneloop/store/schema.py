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
    # The dashboard's session view and outcome search (migration 0008).
    sa.Index("ix_runs_session", "project_id", "session_id", "started_ms"),
    sa.Index("ix_runs_outcome", "project_id", "outcome", "started_ms"),
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
    # Time windows read from their first hour, for all agents or one (migration 0008).
    sa.Index("ix_run_rollups_time", "project_id", "hour_ms"),
    sa.Index("ix_run_rollups_agent_time", "project_id", "agent", "hour_ms"),
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
    sa.Index("ix_tool_rollups_agent_time", "project_id", "agent", "hour_ms"),
)

# Daily rollups: the hourly rows summed per UTC day (``day_ms`` a multiple of 86,400,000),
# kept by ingest in the same transaction. A day holds ~2.5 hours' worth of latency
# buckets, so metrics read whole days here and only a window's partial days hourly
# (migration 0012). Clustered by agent, then day (SQLite: WITHOUT ROWID), so one agent's
# window is one range of the primary key with every sum in it.


def _daily_key_columns(*, tool: bool) -> list[sa.Column[Any]]:
    return [
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(256), nullable=False),
        sa.Column("config_version", sa.String(128), nullable=False),
        sa.Column("experiment", sa.String(256), nullable=False),
        sa.Column("variant", sa.String(256), nullable=False),
        *([sa.Column("tool", sa.String(256), nullable=False)] if tool else []),
        sa.Column("day_ms", sa.BigInteger, nullable=False),
        sa.Column("latency_bucket", sa.Integer, nullable=False),
    ]


def _daily_primary_key(*, tool: bool) -> sa.PrimaryKeyConstraint:
    identity = ["config_version", "experiment", "variant", *(["tool"] if tool else [])]
    return sa.PrimaryKeyConstraint("project_id", "agent", "day_ms", *identity, "latency_bucket")


run_rollups_daily = sa.Table(
    "run_rollups_daily",
    metadata,
    *_daily_key_columns(tool=False),
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
    _daily_primary_key(tool=False),
    sqlite_with_rowid=False,
)

tool_rollups_daily = sa.Table(
    "tool_rollups_daily",
    metadata,
    *_daily_key_columns(tool=True),
    sa.Column("calls", sa.BigInteger, nullable=False),
    sa.Column("errors", sa.BigInteger, nullable=False),
    sa.Column("errors_retryable", sa.BigInteger, nullable=False),
    sa.Column("retries", sa.BigInteger, nullable=False),
    _daily_primary_key(tool=True),
    sqlite_with_rowid=False,
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

# --- Agent configuration (issue 3; written by store/configs.py, migration 0005) ----------
# Versions are immutable and content-addressed: ``config`` is the canonical JSON of the
# effective config and ``version_hash`` its sha256. Channels point at versions of the same
# agent (a composite foreign key). The audit log is a hash chain per project; its head
# row records the last append so a cut tail is detected. Flags and allocations feed the
# agent state document.

config_versions = sa.Table(
    "config_versions",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(128), primary_key=True),
    sa.Column("version_hash", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("parents", sa.Text, nullable=False),
    sa.Column("bundle_id", sa.String(128), nullable=True),
    sa.Column("bundle_version", sa.String(64), nullable=True),
    sa.Column("bundle", sa.Text, nullable=True),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.UniqueConstraint("project_id", "agent", "label", name="uq_config_versions_label"),
    sa.Index("ix_config_versions_created", "project_id", "agent", "created_ms"),
)

config_channels = sa.Table(
    "config_channels",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(128), primary_key=True),
    sa.Column("channel", sa.String(64), primary_key=True),
    sa.Column("version_hash", sa.String(64), nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_by", sa.String(64), nullable=False),
    sa.ForeignKeyConstraint(
        ["project_id", "agent", "version_hash"],
        ["config_versions.project_id", "config_versions.agent", "config_versions.version_hash"],
        name="fk_config_channels_version",
    ),
)

config_audit = sa.Table(
    "config_audit",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(64), nullable=True),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("before_hash", sa.String(64), nullable=True),
    sa.Column("after_hash", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("row_hash", sa.String(64), nullable=False),
    sa.Index("ix_config_audit_agent", "project_id", "agent", "seq"),
)

config_audit_heads = sa.Table(
    "config_audit_heads",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
)

feature_flags = sa.Table(
    "feature_flags",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(128), primary_key=True),
    sa.Column("flag_key", sa.String(128), primary_key=True),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_by", sa.String(64), nullable=False),
)

# One row per running experiment or rollout: an AllocationSpec as JSON (config/allocations.py).
state_allocations = sa.Table(
    "state_allocations",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("alloc_key", sa.String(256), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)
# --- end of agent configuration tables ---------------------------------------------------

# --- Eval runs and gate verdicts (issue 6; written by store/evals.py, migration 0006) -----
# An eval run is stored whole as a JSON document, with the columns lists and filters need
# beside it. A run linked to a stored version (its config hash, or the version it was
# uploaded for) records its gate verdict per (version, stage): the latest run wins.

eval_runs = sa.Table(
    "eval_runs",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("suite", sa.String(256), nullable=False),
    sa.Column("stage", sa.String(64), nullable=False),
    sa.Column("version_label", sa.String(128), nullable=True),
    sa.Column("version_hash", sa.String(64), nullable=True),
    sa.Column("config_hash", sa.String(64), nullable=True),
    sa.Column("passed", sa.Boolean, nullable=True),
    sa.Column("pass_rate", sa.Float, nullable=False),
    sa.Column("case_count", sa.Integer, nullable=False),
    sa.Column("started_ms", sa.BigInteger, nullable=False),
    sa.Column("finished_ms", sa.BigInteger, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("key_id", sa.String(64), nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(
        ["project_id", "agent", "version_hash"],
        ["config_versions.project_id", "config_versions.agent", "config_versions.version_hash"],
        name="fk_eval_runs_version",
    ),
    sa.Index("ix_eval_runs_version", "project_id", "agent", "version_hash", "created_ms"),
    sa.Index("ix_eval_runs_suite", "project_id", "suite", "created_ms"),
    sa.Index("ix_eval_runs_created", "project_id", "created_ms"),
)

eval_gate_verdicts = sa.Table(
    "eval_gate_verdicts",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(128), primary_key=True),
    sa.Column("version_hash", sa.String(64), primary_key=True),
    sa.Column("stage", sa.String(64), primary_key=True),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("suite", sa.String(256), nullable=False),
    sa.Column("finished_ms", sa.BigInteger, nullable=False),
    sa.Column("recorded_ms", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.Text, nullable=False),
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
)
# --- end of eval tables -------------------------------------------------------------------

# --- Agent runtime (issue 5; written by store/runtime_state.py, migrations 0007, 0013) ---
# A run's checkpoint is one row, rewritten after every step: ``data`` is its JSON state,
# ``configs`` the configs it is pinned to (written when they change), and ``version`` a
# compare-and-set counter, so two processes never continue one run.
# The ledger records the results of side-effecting tool calls by idempotency key (first
# write wins); the cache holds response and tool results shared across processes; review
# items are runs or tool calls awaiting a human; session usage adds up every run's spend.

runtime_checkpoints = sa.Table(
    "runtime_checkpoints",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("session_id", sa.String(256), nullable=True),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    # Added by migration 0013.
    sa.Column("configs", sa.Text, nullable=False, server_default=sa.text("'{}'")),
    sa.Index("ix_runtime_checkpoints_state", "project_id", "agent", "state"),
)

runtime_ledger = sa.Table(
    "runtime_ledger",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("idem_key", sa.String(128), primary_key=True),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("result", sa.Text, nullable=False),
    sa.Column("recorded_ms", sa.BigInteger, nullable=False),
)

runtime_cache = sa.Table(
    "runtime_cache",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("cache_key", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("stored_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=True),
    sa.Index("ix_runtime_cache_expires", "project_id", "expires_ms"),
)

review_items = sa.Table(
    "review_items",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("review_id", sa.String(32), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("tool", sa.String(128), nullable=True),
    sa.Column("call_id", sa.String(128), nullable=True),
    sa.Column("hop", sa.String(16), nullable=True),
    sa.Column("arguments", sa.Text, nullable=True),
    sa.Column("content", sa.Text, nullable=True),
    sa.Column("trace_id", sa.String(32), nullable=True),
    sa.Column("session_id", sa.String(256), nullable=True),
    sa.Column("reviewer", sa.String(256), nullable=True),
    sa.Column("decision_reason", sa.Text, nullable=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("decided_ms", sa.BigInteger, nullable=True),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Index("ix_review_items_status", "project_id", "status", "created_ms"),
    sa.Index("ix_review_items_run", "project_id", "run_id"),
)

session_usage = sa.Table(
    "session_usage",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(128), primary_key=True),
    sa.Column("session_id", sa.String(256), primary_key=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)
# --- end of agent runtime tables ----------------------------------------------------------

# --- Recommendations (issue 7; written by store/recommendations.py, migration 0009) -------
# One row per finding of an analyzer for an agent and config version ('' when the runs
# carry none); ``fingerprint`` names the finding across refreshes and versions, ``body``
# is its JSON. Status: open, accepted (bundle and candidate version linked), dismissed
# (with a reason; not proposed again unless the evidence worsens by half), discarded (an
# optimizer answer that was not a usable prompt, with the reason) or expired (no longer
# found). ``rec_id`` derives from the unique key, so concurrent refreshes converge.

recommendations = sa.Table(
    "recommendations",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("rec_id", sa.String(32), primary_key=True),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("config_version", sa.String(128), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("target", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("headline", sa.Float, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("bundle_id", sa.String(128), nullable=True),
    sa.Column("version_hash", sa.String(64), nullable=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("decided_ms", sa.BigInteger, nullable=True),
    sa.Column("decided_by", sa.String(64), nullable=True),
    sa.UniqueConstraint(
        "project_id", "agent", "config_version", "fingerprint", name="uq_recommendations_finding"
    ),
    sa.Index("ix_recommendations_agent", "project_id", "agent", "status", "updated_ms"),
    sa.Index("ix_recommendations_fingerprint", "project_id", "agent", "fingerprint"),
)
# --- end of recommendation tables ---------------------------------------------------------

# --- Rollouts and alerts (issue 8; store/rollouts.py, store/alerts.py, migration 0011) ----
# A rollout row is its whole state: the definition (JSON), status, current step and when
# it started; ``revision`` is a compare-and-set counter bumped by every change, so two
# controllers never both act on one state, and each timeline row (rollout_evaluations)
# carries the revision it produced. Alert rules keep their evaluation state (ok, pending,
# firing) beside the rule; events are unique per (dedupe key, status), so one episode
# fires and resolves once whoever evaluates it. Webhook deliveries are retried with
# backoff from ``next_attempt_ms``. controller_leases (server-wide, not per project) lets
# one SQLite-backed controller act at a time; PostgreSQL uses an advisory lock instead.

rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("rollout_id", sa.String(32), primary_key=True),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("candidate_hash", sa.String(64), nullable=False),
    sa.Column("stable_hash", sa.String(64), nullable=False),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("step_started_ms", sa.BigInteger, nullable=False),
    sa.Column("step_deadline_ms", sa.BigInteger, nullable=True),
    sa.Column("approved_steps", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("force_reason", sa.Text, nullable=True),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Column("finished_ms", sa.BigInteger, nullable=True),
    sa.Column("last_evaluated_ms", sa.BigInteger, nullable=True),
    sa.ForeignKeyConstraint(
        ["project_id", "agent", "candidate_hash"],
        ["config_versions.project_id", "config_versions.agent", "config_versions.version_hash"],
        name="fk_rollouts_candidate",
    ),
    sa.ForeignKeyConstraint(
        ["project_id", "agent", "stable_hash"],
        ["config_versions.project_id", "config_versions.agent", "config_versions.version_hash"],
        name="fk_rollouts_stable",
    ),
    sa.Index("ix_rollouts_agent", "project_id", "agent", "status"),
    sa.Index("ix_rollouts_status", "status"),
)

rollout_evaluations = sa.Table(
    "rollout_evaluations",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("rollout_id", sa.String(32), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("figures", sa.Text, nullable=False),
)

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("rule_id", sa.String(32), primary_key=True),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("pending_since_ms", sa.BigInteger, nullable=True),
    sa.Column("firing_since_ms", sa.BigInteger, nullable=True),
    sa.Column("episode", sa.Integer, nullable=False),
    sa.Column("last_value", sa.Float, nullable=True),
    sa.Column("last_evaluated_ms", sa.BigInteger, nullable=True),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("project_id", "agent", "name", name="uq_alert_rules_name"),
)

alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("event_id", sa.String(32), primary_key=True),
    sa.Column("rule_id", sa.String(32), nullable=True),
    sa.Column("rollout_id", sa.String(32), nullable=True),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("dedupe_key", sa.String(256), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("metric", sa.String(64), nullable=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("project_id", "dedupe_key", "status", name="uq_alert_events_dedupe"),
    sa.Index("ix_alert_events_time", "project_id", "created_ms"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("delivery_id", sa.String(32), primary_key=True),
    sa.Column("event_id", sa.String(32), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("delivered_ms", sa.BigInteger, nullable=True),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_ms"),
    sa.Index("ix_webhook_deliveries_event", "project_id", "event_id"),
)

controller_leases = sa.Table(
    "controller_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=False),
)
# --- end of rollout and alert tables ------------------------------------------------------

# --- Experiments (issue 4; written by store/experiments.py, migration 0010) ---------------
# One row per experiment: its definition (variants pinned to version hashes, metrics,
# method) as JSON beside the columns lists and checks need. Status: draft, running,
# stopped, concluded. ``unit_type`` is a column so "one running experiment per agent and
# unit type" is one indexed query. The events table is the experiment's own audit of
# lifecycle steps; starts, stops and production moves also land in the config audit chain.

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("experiment_id", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(128), nullable=False),
    sa.Column("unit_type", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("decision", sa.String(16), nullable=True),
    sa.Column("winner", sa.String(64), nullable=True),
    sa.Column("decided_by", sa.String(64), nullable=True),
    sa.Column("decision_reason", sa.Text, nullable=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("started_ms", sa.BigInteger, nullable=True),
    sa.Column("stopped_ms", sa.BigInteger, nullable=True),
    sa.Column("concluded_ms", sa.BigInteger, nullable=True),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
    sa.Index("ix_experiments_agent_status", "project_id", "agent", "status"),
    sa.Index("ix_experiments_created", "project_id", "created_ms"),
)

experiment_events = sa.Table(
    "experiment_events",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("experiment_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.ForeignKeyConstraint(
        ["project_id", "experiment_id"],
        ["experiments.project_id", "experiments.experiment_id"],
        name="fk_experiment_events_experiment",
    ),
)
# --- end of experiment tables -------------------------------------------------------------

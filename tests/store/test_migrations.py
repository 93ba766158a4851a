"""`alembic upgrade head` builds exactly schema.metadata, on both engines, idempotently."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tuneloop.store.engine import create_store_engine, head_revision, migrate
from tuneloop.store.schema import metadata, projects, runs, tool_calls


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine on an empty database (PostgreSQL: a private, empty schema)."""
    if request.param == "sqlite":
        engine = create_store_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield engine
        engine.dispose()
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"migration_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = create_store_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def schema_diff(engine: sa.Engine, target: sa.MetaData = metadata) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), target))


def revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_migrated_database_matches_the_schema(fresh_engine: sa.Engine) -> None:
    assert sa.inspect(fresh_engine).get_table_names() == []
    migrate(fresh_engine)
    assert schema_diff(fresh_engine) == []
    assert revision(fresh_engine) == head_revision()


def test_the_comparison_notices_a_schema_the_migrations_do_not_build(
    fresh_engine: sa.Engine,
) -> None:
    migrate(fresh_engine)
    drifted = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["runs"].append_column(sa.Column("surprise", sa.Integer, nullable=True))
    diffs = schema_diff(fresh_engine, drifted)
    assert [diff[0] for diff in diffs] == ["add_column"]  # type: ignore[index]
    assert diffs[0][3].name == "surprise"  # type: ignore[index]


def test_migrating_twice_changes_nothing_and_keeps_data(fresh_engine: sa.Engine) -> None:
    migrate(fresh_engine)
    with fresh_engine.begin() as conn:
        conn.execute(projects.insert().values(project_id="kept", name="Kept", created_ms=1))
    migrate(fresh_engine)
    assert schema_diff(fresh_engine) == []
    assert revision(fresh_engine) == head_revision()
    with fresh_engine.connect() as conn:
        assert conn.execute(sa.select(projects.c.project_id)).scalars().all() == ["kept"]


def test_upgrading_copies_each_runs_identity_onto_its_stored_tool_calls(
    fresh_engine: sa.Engine,
) -> None:
    migrate(fresh_engine, "0002")
    counters = dict.fromkeys(
        ["root_input_tokens", "root_output_tokens", "root_cost_usd", "llm_calls", "input_tokens",
         "output_tokens", "cost_usd", "tool_calls", "tool_errors", "tool_errors_retryable",
         "span_count"],
        0,
    )  # fmt: skip
    rooted, rootless = "a" * 32, "b" * 32
    with fresh_engine.begin() as conn:
        conn.execute(
            runs.insert(),
            [
                {"project_id": "p1", "trace_id": rooted, "has_root": True, "agent": "support",
                 "config_version": "v1", "experiment": "prompt", "variant": "control", **counters},
                {"project_id": "p1", "trace_id": rootless, "has_root": False, "agent": None,
                 "config_version": None, "experiment": None, "variant": None, **counters},
                # Another project's run with the same trace id must not leak.
                {"project_id": "p2", "trace_id": rootless, "has_root": True, "agent": "other",
                 "config_version": None, "experiment": None, "variant": None, **counters},
            ],
        )  # fmt: skip
        # Only the columns 0002 has: the new ones are not in the table yet.
        conn.execute(
            tool_calls.insert(),
            [
                {"project_id": "p1", "trace_id": trace_id, "span_id": f"{i:016x}",
                 "tool": "search", "status": "success", "retryable": False, "duration_ms": 1.0,
                 "latency_bucket": 0, "retries": 0, "started_ms": 1}
                for i, trace_id in enumerate([rooted, rooted, rootless])
            ],
        )  # fmt: skip
    migrate(fresh_engine)
    assert schema_diff(fresh_engine) == []
    identity = [
        tool_calls.c.trace_id,
        tool_calls.c.agent,
        tool_calls.c.config_version,
        tool_calls.c.experiment,
        tool_calls.c.variant,
    ]
    with fresh_engine.connect() as conn:
        rows = conn.execute(sa.select(*identity).order_by(tool_calls.c.span_id)).all()
    assert [tuple(row) for row in rows] == [
        (rooted, "support", "v1", "prompt", "control"),
        (rooted, "support", "v1", "prompt", "control"),
        (rootless, None, None, None, None),
    ]

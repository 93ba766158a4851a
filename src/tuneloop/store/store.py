"""The Store: one database, its repositories and the ingest writer."""

from __future__ import annotations

import orjson
import sqlalchemy as sa

from tuneloop.errors import InvalidInputError, StoreError
from tuneloop.store.agent_state import AgentStateRepository
from tuneloop.store.alerts import AlertRepository
from tuneloop.store.configs import ConfigRepository
from tuneloop.store.engine import create_store_engine, migrate
from tuneloop.store.evals import EvalRepository
from tuneloop.store.experiments import ExperimentRepository
from tuneloop.store.ingest import IngestWriter
from tuneloop.store.keys import KeyRepository
from tuneloop.store.queries import Queries
from tuneloop.store.recommendations import RecommendationRepository
from tuneloop.store.rollout_ops import RolloutService
from tuneloop.store.rollouts import RolloutRepository
from tuneloop.store.runtime_state import RuntimeStateRepository
from tuneloop.store.schema import feedback


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


class Store:
    """Everything tuneloop keeps in one database."""

    def __init__(self, engine: sa.Engine, *, max_pending_writes: int = 256) -> None:
        self.engine = engine
        self.keys = KeyRepository(engine)
        self.queries = Queries(engine)
        self.writer = IngestWriter(engine, max_pending=max_pending_writes)
        self.configs = ConfigRepository(engine)
        self.agent_state = AgentStateRepository(engine)
        self.runtime = RuntimeStateRepository(engine)
        self.evals = EvalRepository(engine)
        self.recommendations = RecommendationRepository(engine, self.configs)
        self.experiments = ExperimentRepository(engine)
        self.rollouts = RolloutRepository(engine)
        self.rollout_ops = RolloutService(engine, self.rollouts, self.configs, self.agent_state)
        self.alerts = AlertRepository(engine)

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True, max_pending_writes: int = 256) -> Store:
        """Open the database at ``url``, migrating its schema to the latest revision."""
        engine = create_store_engine(url, json_serializer=_json, json_deserializer=orjson.loads)
        if upgrade:
            migrate(engine)
        return cls(engine, max_pending_writes=max_pending_writes)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"database unreachable: {exc}") from exc

    def add_feedback(
        self,
        project_id: str,
        *,
        trace_id: str,
        name: str,
        value: float,
        comment: str | None,
        key_id: str,
        now_ms: int,
    ) -> int:
        """Attach a score to a run; returns the feedback id."""
        if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id.lower()):
            raise InvalidInputError(f"trace_id must be 32 hex characters, got {trace_id[:64]!r}")
        with self.engine.begin() as conn:
            result = conn.execute(
                feedback.insert().values(
                    project_id=project_id,
                    trace_id=trace_id.lower(),
                    name=name,
                    value=value,
                    comment=comment,
                    key_id=key_id,
                    created_ms=now_ms,
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def close(self) -> None:
        """Stop the writer and release connections."""
        self.writer.stop()
        self.engine.dispose()

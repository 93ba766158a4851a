"""Review items of the agent runtime in the tuneloop database (first write wins)."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tuneloop.errors import ConflictError, NotFoundError
from tuneloop.runtime.review import Decision, ReviewItem, ReviewStats, ReviewStatus
from tuneloop.store.schema import review_items

_R = review_items.c


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads_or_none(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _review(row: Any) -> ReviewItem:
    return ReviewItem(
        review_id=row.review_id,
        run_id=row.run_id,
        agent=row.agent,
        kind=row.kind,
        reason=row.reason,
        source=row.source,
        created_ms=row.created_ms,
        status=row.status,
        tool=row.tool,
        call_id=row.call_id,
        arguments=_loads_or_none(row.arguments),
        content=_loads_or_none(row.content),
        hop=row.hop,
        trace_id=row.trace_id,
        session_id=row.session_id,
        reviewer=row.reviewer,
        decision_reason=row.decision_reason,
        decided_ms=row.decided_ms,
        metadata=orjson.loads(row.metadata),
    )


class ReviewRepository:
    """Review items, per project: added once, decided once.

    Args:
        engine: the database.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._dialect: Any = sqlite if engine.dialect.name == "sqlite" else postgresql

    def add_review(self, project_id: str, item: ReviewItem) -> ReviewItem:
        """Store unless the id exists; return the item that stands (first wins)."""
        with self.engine.begin() as conn:
            conn.execute(
                self._dialect.insert(review_items)
                .values(
                    project_id=project_id,
                    review_id=item.review_id,
                    run_id=item.run_id,
                    agent=item.agent,
                    kind=item.kind,
                    source=item.source,
                    status=item.status,
                    reason=item.reason,
                    tool=item.tool,
                    call_id=item.call_id,
                    hop=item.hop,
                    arguments=None if item.arguments is None else _dumps(dict(item.arguments)),
                    content=None if item.content is None else _dumps(item.content),
                    trace_id=item.trace_id,
                    session_id=item.session_id,
                    reviewer=item.reviewer,
                    decision_reason=item.decision_reason,
                    created_ms=item.created_ms,
                    decided_ms=item.decided_ms,
                    metadata=_dumps(dict(item.metadata)),
                )
                .on_conflict_do_nothing()
            )
        standing = self.get_review(project_id, item.review_id)
        assert standing is not None  # just written, and items are never deleted
        return standing

    def get_review(self, project_id: str, review_id: str) -> ReviewItem | None:
        """One item, or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(review_items).where(
                    _R.project_id == project_id, _R.review_id == review_id
                )
            ).first()
        return None if row is None else _review(row)

    def list_reviews(
        self,
        project_id: str,
        *,
        status: ReviewStatus | None = None,
        agent: str | None = None,
        run_id: str | None = None,
        limit: int = 100,
    ) -> list[ReviewItem]:
        """Items, oldest first."""
        query = sa.select(review_items).where(_R.project_id == project_id)
        if status is not None:
            query = query.where(_R.status == status)
        if agent is not None:
            query = query.where(_R.agent == agent)
        if run_id is not None:
            query = query.where(_R.run_id == run_id)
        query = query.order_by(_R.created_ms, _R.review_id).limit(limit)
        with self.engine.connect() as conn:
            return [_review(row) for row in conn.execute(query)]

    def decide_review(
        self,
        project_id: str,
        review_id: str,
        decision: Decision,
        *,
        reviewer: str,
        reason: str,
        now_ms: int,
    ) -> ReviewItem:
        """Record a decision; only a pending item can be decided.

        Raises:
            NotFoundError: no such review in the project.
            ConflictError: it was already decided (by this call's competitor, too).
        """
        item = self.get_review(project_id, review_id)
        if item is None:
            raise NotFoundError(
                f"no review {review_id!r} in project {project_id!r}; list them with "
                "`tuneloop review list`"
            )
        decided = item.decide(decision, reviewer=reviewer, reason=reason, now_ms=now_ms)
        with self.engine.begin() as conn:
            updated = conn.execute(
                review_items.update()
                .where(
                    _R.project_id == project_id,
                    _R.review_id == review_id,
                    _R.status == "pending",
                )
                .values(
                    status=decided.status,
                    reviewer=reviewer,
                    decision_reason=reason,
                    decided_ms=now_ms,
                )
            )
        if updated.rowcount != 1:
            raise ConflictError(f"review {review_id!r} was decided by someone else just now")
        return decided

    def review_stats(self, project_id: str, *, agent: str | None = None) -> ReviewStats:
        """Counts of pending, approved and rejected items."""
        query = sa.select(_R.status, sa.func.count()).where(_R.project_id == project_id)
        if agent is not None:
            query = query.where(_R.agent == agent)
        with self.engine.connect() as conn:
            rows = conn.execute(query.group_by(_R.status)).all()
        counts = {str(status): int(count) for status, count in rows}
        return ReviewStats(
            counts.get("pending", 0), counts.get("approved", 0), counts.get("rejected", 0)
        )

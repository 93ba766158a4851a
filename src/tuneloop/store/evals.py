"""Stored eval runs, per-version gate verdicts, and the gate check experiments and rollouts use.

A run is linked to a stored version of its agent when it is uploaded for one
(``version``: a hash, prefix, label or channel) or, failing that, when its config hash
is a version's hash (versions are content-addressed, so an eval of the same config is an
eval of that version). A linked run with a gate records it as the version's verdict at
the run's stage, unless a later-finished run already did.

For those who start experiments and rollouts: call :func:`require_passing_gate` first.
It raises `GateFailedError` when the version failed its gate at any stage, unless a
``force_reason`` is given, which is then recorded in the project's audit log (an
``approve`` row whose detail carries ``gate_override``).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tuneloop.config.canonical import canonical_json
from tuneloop.config.versions import validate_agent
from tuneloop.errors import ConflictError, InvalidInputError, NotFoundError
from tuneloop.evals.compare import DEFAULT_ALPHA, RunDiff, comparability_warnings, diff_runs
from tuneloop.evals.results import EvalRun
from tuneloop.evals.verdicts import EvalRunSummary, StageVerdict, VersionGate
from tuneloop.store.configs import resolve_version
from tuneloop.store.gates import require_passing_gate
from tuneloop.store.schema import config_versions, eval_gate_verdicts, eval_runs

_R = eval_runs.c
_G = eval_gate_verdicts.c
_V = config_versions.c
MAX_PAGE = 500
__all__ = ["MAX_PAGE", "EvalRepository", "SavedRun", "StoredRun", "require_passing_gate"]


@dataclass(frozen=True, slots=True)
class SavedRun:
    """What storing a run did: the stored summary, whether it was new, the verdict it set."""

    summary: EvalRunSummary
    created: bool
    verdict: StageVerdict | None
    version_label: str | None


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A stored run: its summary and the whole run."""

    summary: EvalRunSummary
    run: EvalRun


def _summary(row: Any) -> EvalRunSummary:
    return EvalRunSummary(
        run_id=row.run_id,
        agent=row.agent,
        suite=row.suite,
        stage=row.stage,
        version=row.version_label,
        version_hash=row.version_hash,
        config_hash=row.config_hash,
        passed=row.passed,
        pass_rate=row.pass_rate,
        cases=row.case_count,
        started_ms=row.started_ms,
        finished_ms=row.finished_ms,
        created_ms=row.created_ms,
        uploaded_by=row.key_id,
    )


def _verdict(row: Any) -> StageVerdict:
    return StageVerdict(
        stage=row.stage,
        passed=row.passed,
        run_id=row.run_id,
        suite=row.suite,
        finished_ms=row.finished_ms,
        recorded_ms=row.recorded_ms,
        failures=tuple(json.loads(row.failures)),
    )


def _label(row: Any) -> str | None:
    return None if row is None else str(row.label)


def _summary_columns() -> list[Any]:
    return [column for column in eval_runs.c if column.name != "document"]


def _encode_cursor(created_ms: int, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_ms}:{run_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, run_id = raw.split(":", 1)
        return int(created), run_id
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInputError(
            f"invalid cursor {cursor[:60]!r}: pass back 'next_cursor' unchanged"
        ) from None


class EvalRepository:
    """Eval runs and gate verdicts of every project in one database."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def save_run(
        self,
        project_id: str,
        run: EvalRun,
        *,
        author: str,
        now_ms: int,
        agent: str | None = None,
        version: str | None = None,
    ) -> SavedRun:
        """Store ``run`` (idempotent by run id) and, when linked to a version, its verdict.

        Args:
            project_id: the project.
            run: the run.
            author: the uploading key's id.
            now_ms: the upload time.
            agent: the agent it evaluated (default: the run's own ``agent``).
            version: the stored version it evaluated (hash, prefix, label or channel);
                default: the version whose hash is the run's config hash, if any.

        Raises:
            InvalidInputError: no agent; the run's config hash is not that version's.
            NotFoundError: ``version`` is not a version of the agent.
            ConflictError: another run with this id, and different content, is stored.
        """
        name = agent or run.agent
        if not name:
            raise InvalidInputError(
                f"eval run {run.run_id} names no agent: set 'agent:' in the suite or pass the "
                "agent with the upload"
            )
        validate_agent(name)
        document = canonical_json({**run.to_dict(), "agent": name})
        try:
            with self._engine.begin() as conn:
                return self._save(conn, project_id, run, name, document, version, author, now_ms)
        except sa.exc.IntegrityError as exc:
            raise ConflictError(
                f"eval run {run.run_id} was being stored by another upload at the same time; "
                f"retry ({exc.orig})"
            ) from exc

    def _save(
        self, conn: sa.Connection, project_id: str, run: EvalRun, agent: str, document: str,
        version: str | None, author: str, now_ms: int,
    ) -> SavedRun:  # fmt: skip
        linked = self._link(conn, project_id, agent, run, version)
        existing = conn.execute(
            sa.select(eval_runs).where(_R.project_id == project_id, _R.run_id == run.run_id)
        ).first()
        if existing is not None:
            if existing.document != document:
                raise ConflictError(
                    f"eval run {run.run_id} is already stored with different content; "
                    "a run id names one run: upload a new run under a new id"
                )
            verdict = self._stage_verdict(conn, project_id, existing)
            return SavedRun(_summary(existing), False, verdict, _label(linked))
        row = {
            "project_id": project_id, "run_id": run.run_id, "agent": agent,
            "suite": run.suite, "stage": run.stage, "version_label": run.version,
            "version_hash": linked.version_hash if linked else None,
            "config_hash": run.config_hash,
            "passed": None if run.gate is None else run.gate.passed,
            "pass_rate": run.overall.pass_rate, "case_count": len(run.cases),
            "started_ms": run.started_ms, "finished_ms": run.finished_ms,
            "created_ms": now_ms, "key_id": author, "document": document,
        }  # fmt: skip
        conn.execute(eval_runs.insert().values(row))
        verdict = None
        if linked is not None and run.gate is not None:
            verdict = self._record_verdict(conn, project_id, agent, linked, run, now_ms)
        stored = conn.execute(
            sa.select(*_summary_columns()).where(
                _R.project_id == project_id, _R.run_id == run.run_id
            )
        ).one()
        return SavedRun(_summary(stored), True, verdict, _label(linked))

    def _link(
        self, conn: sa.Connection, project_id: str, agent: str, run: EvalRun, version: str | None
    ) -> Any:
        if version is not None:
            row = resolve_version(conn, project_id, agent, version)
            if run.config_hash is not None and run.config_hash != row.version_hash:
                raise InvalidInputError(
                    f"eval run {run.run_id} ran config {run.config_hash[:12]}, but version "
                    f"{version!r} of {agent!r} is {row.version_hash[:12]} ({row.label}); "
                    "upload it for the version whose config it ran, or without a version"
                )
            return row
        if run.config_hash is None:
            return None
        return conn.execute(
            sa.select(_V.version_hash, _V.label).where(
                _V.project_id == project_id, _V.agent == agent, _V.version_hash == run.config_hash
            )
        ).first()

    def _record_verdict(
        self, conn: sa.Connection, project_id: str, agent: str, linked: Any, run: EvalRun,
        now_ms: int,
    ) -> StageVerdict | None:  # fmt: skip
        assert run.gate is not None
        key = {
            "project_id": project_id, "agent": agent,
            "version_hash": linked.version_hash, "stage": run.stage,
        }  # fmt: skip
        values = {
            **key, "passed": run.gate.passed, "run_id": run.run_id, "suite": run.suite,
            "finished_ms": run.finished_ms, "recorded_ms": now_ms,
            "failures": json.dumps([check.message for check in run.gate.failures]),
        }  # fmt: skip
        dialect = sqlite if self._engine.dialect.name == "sqlite" else postgresql
        insert = dialect.insert(eval_gate_verdicts).values(values)
        changing = ("passed", "run_id", "suite", "finished_ms", "recorded_ms", "failures")
        # The latest-finished run decides: uploading an old run leaves a newer verdict.
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=list(key),
                set_={name: insert.excluded[name] for name in changing},
                where=_G.finished_ms <= insert.excluded.finished_ms,
            )
        )
        row = conn.execute(
            sa.select(eval_gate_verdicts).where(*(_G[name] == value for name, value in key.items()))
        ).one()
        return _verdict(row) if row.run_id == run.run_id else None

    def _stage_verdict(self, conn: sa.Connection, project_id: str, row: Any) -> StageVerdict | None:
        if row.version_hash is None:
            return None
        found = conn.execute(
            sa.select(eval_gate_verdicts).where(
                _G.project_id == project_id,
                _G.agent == row.agent,
                _G.version_hash == row.version_hash,
                _G.stage == row.stage,
                _G.run_id == row.run_id,
            )
        ).first()
        return None if found is None else _verdict(found)

    def get_run(self, project_id: str, run_id: str) -> StoredRun:
        """A stored run, whole.

        Raises:
            NotFoundError: no run with this id in the project.
        """
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(eval_runs).where(_R.project_id == project_id, _R.run_id == run_id)
            ).first()
        if row is None:
            raise NotFoundError(
                f"no eval run {run_id[:80]!r} in this project; list them with `tuneloop eval list`"
            )
        run = EvalRun.from_json(row.document, source=f"stored eval run {run_id}")
        return StoredRun(_summary(row), run)

    def list_runs(
        self,
        project_id: str,
        *,
        agent: str | None = None,
        version: str | None = None,
        suite: str | None = None,
        stage: str | None = None,
        passed: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[EvalRunSummary], str | None]:
        """Runs newest first (by upload), filtered, and the cursor of the next page.

        ``version`` (a hash, prefix, label or channel) needs ``agent``.

        Raises:
            InvalidInputError: a version without an agent; a bad limit or cursor.
            NotFoundError: ``version`` is not a version of ``agent``.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        conds: list[Any] = [_R.project_id == project_id]
        with self._engine.connect() as conn:
            if version is not None:
                if agent is None:
                    raise InvalidInputError(
                        "filtering eval runs by version needs the agent too (agent=...)"
                    )
                row = resolve_version(conn, project_id, validate_agent(agent), version)
                conds.append(_R.version_hash == row.version_hash)
            for column, value in (("agent", agent), ("suite", suite), ("stage", stage)):
                if value is not None:
                    conds.append(_R[column] == value)
            if passed is not None:
                conds.append(_R.passed.is_(passed))
            if cursor:
                created, run_id = _decode_cursor(cursor)
                conds.append(
                    sa.or_(
                        _R.created_ms < created,
                        sa.and_(_R.created_ms == created, _R.run_id < run_id),
                    )
                )
            query = (
                sa.select(*_summary_columns())
                .where(*conds)
                .order_by(_R.created_ms.desc(), _R.run_id.desc())
                .limit(limit + 1)
            )
            rows = conn.execute(query).all()
        page = [_summary(row) for row in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        return page, None if last is None else _encode_cursor(last.created_ms, last.run_id)

    def diff(
        self, project_id: str, baseline_id: str, current_id: str, *, alpha: float = DEFAULT_ALPHA
    ) -> tuple[RunDiff, tuple[str, ...]]:
        """Per-case diff of two stored runs, and why it may mislead (different suites...).

        Raises:
            NotFoundError: either run is not stored.
        """
        baseline = self.get_run(project_id, baseline_id).run
        current = self.get_run(project_id, current_id).run
        return diff_runs(baseline, current, alpha=alpha), comparability_warnings(baseline, current)

    def gate_verdict(
        self, project_id: str, agent: str, version: str, *, conn: sa.Connection | None = None
    ) -> VersionGate:
        """The latest gate verdict of each stage ``version`` was evaluated at.

        ``conn`` reads inside the caller's transaction.

        Raises:
            NotFoundError: no such version of ``agent``.
        """
        if conn is None:
            with self._engine.connect() as own:
                return self.gate_verdict(project_id, agent, version, conn=own)
        row = resolve_version(conn, project_id, validate_agent(agent), version)
        verdicts = conn.execute(
            sa.select(eval_gate_verdicts)
            .where(
                _G.project_id == project_id,
                _G.agent == agent,
                _G.version_hash == row.version_hash,
            )
            .order_by(_G.stage)
        ).all()
        return VersionGate(agent, row.version_hash, row.label, tuple(map(_verdict, verdicts)))

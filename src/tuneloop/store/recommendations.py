"""Recommendations: findings kept across refreshes, accepted into versions or dismissed.

A refresh (`RecommendationRepository.save_report`) upserts each finding by its key
(project, agent, version, fingerprint): a new finding opens a row, a known open one
gets the new evidence, an accepted one is left alone, and a dismissed one stays
dismissed unless its headline figure worsened by half (it reopens). A dismissal holds
for the finding on every version of the agent. Open findings the refresh no longer
finds expire.

Accepting applies the finding as a one-recommendation bundle to its version (or
production, when the version is not in the config store) and stores the result as a
candidate version, with the bundle and version linked on the row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tuneloop.analysis.recommend import Report, recommendation_from_data
from tuneloop.analysis.recommend.prompts import OPTIMIZER_FAILED
from tuneloop.config.bundle import Bundle, apply_bundle
from tuneloop.config.model import AgentConfig
from tuneloop.config.versions import PRODUCTION, VersionInfo
from tuneloop.errors import ConflictError, InvalidInputError, NotFoundError
from tuneloop.store.configs import ConfigRepository
from tuneloop.store.schema import recommendations

Status = Literal["open", "accepted", "dismissed", "discarded", "expired"]
STATUSES: tuple[Status, ...] = ("open", "accepted", "dismissed", "discarded", "expired")
# Evidence changes materially when the headline figure worsens by this factor.
MATERIAL = 1.5
_T = recommendations.c


def rec_id_of(project_id: str, agent: str, version: str, fingerprint: str) -> str:
    """The row id of a finding: derived from its key, so refreshes on replicas agree."""
    key = json.dumps([project_id, agent, version, fingerprint])
    return "rec_" + hashlib.sha256(key.encode()).hexdigest()[:20]


def materially_worse(headline: float, before: float) -> bool:
    """Whether a finding's headline figure worsened enough to reopen a dismissal."""
    return headline >= before * MATERIAL and headline > before


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What a refresh changed."""

    opened: int = 0
    updated: int = 0
    reopened: int = 0
    suppressed: int = 0
    discarded: int = 0
    expired: int = 0

    def to_data(self) -> dict[str, int]:
        """JSON-ready counts."""
        return {
            "opened": self.opened,
            "updated": self.updated,
            "reopened": self.reopened,
            "suppressed": self.suppressed,
            "discarded": self.discarded,
            "expired": self.expired,
        }


def _to_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.rec_id,
        "agent": row.agent,
        "version": row.config_version or None,
        "status": row.status,
        "reason": row.reason,
        "bundle_id": row.bundle_id,
        "candidate_version": row.version_hash,
        "created_ms": row.created_ms,
        "updated_ms": row.updated_ms,
        "decided_ms": row.decided_ms,
        "decided_by": row.decided_by,
        **json.loads(row.body),
    }


class RecommendationRepository:
    """The recommendations of every agent in one database."""

    def __init__(self, engine: sa.Engine, configs: ConfigRepository) -> None:
        self._engine = engine
        self._configs = configs

    def suppressed(self, project_id: str, agent: str) -> dict[str, float]:
        """Fingerprints already decided, with their headline figure at the time.

        Dismissed, accepted and discarded findings are not proposed again unless the
        figure worsens by half.
        """
        query = sa.select(_T.fingerprint, _T.headline).where(
            _T.project_id == project_id,
            _T.agent == agent,
            _T.status.in_(("dismissed", "accepted", "discarded")),
            # A provider that failed is asked again next time; an unusable answer is not.
            sa.or_(_T.reason.is_(None), sa.not_(_T.reason.startswith(OPTIMIZER_FAILED))),
        )
        with self._engine.connect() as conn:
            out: dict[str, float] = {}
            for fingerprint, headline in conn.execute(query):
                out[fingerprint] = max(out.get(fingerprint, 0.0), float(headline))
            return out

    def save_report(
        self, project_id: str, report: Report, *, now_ms: int, expire: bool = True
    ) -> SaveResult:
        """Store a refresh's findings (see the module docstring); returns what changed."""
        version = report.version or ""
        counts = dict.fromkeys(
            ("opened", "updated", "reopened", "suppressed", "discarded", "expired"), 0
        )
        seen: set[str] = set()
        insert = (sqlite if self._engine.dialect.name == "sqlite" else postgresql).insert
        with self._engine.begin() as conn:
            dismissed = {
                fp: float(h)
                for fp, h in conn.execute(
                    sa.select(_T.fingerprint, _T.headline).where(
                        _T.project_id == project_id,
                        _T.agent == report.agent,
                        _T.status == "dismissed",
                    )
                )
            }
            rows: list[tuple[str, dict[str, Any], float, float, str | None]] = [
                (f.fingerprint, f.to_data(), f.confidence, f.headline, None)
                for f in report.findings
            ]
            rows += [
                (
                    d.fingerprint,
                    {
                        **d.to_data(),
                        "type": "prompt_optimization",
                        "title": f"Discarded: {d.reason}",
                    },
                    0.0,
                    d.headline,
                    d.reason,
                )
                for d in report.discarded
            ]
            for fingerprint, body, confidence, headline, discard_reason in rows:
                rec_id = rec_id_of(project_id, report.agent, version, fingerprint)
                seen.add(rec_id)
                status: Status = "discarded" if discard_reason else "open"
                existing = conn.execute(
                    sa.select(_T.status, _T.headline).where(
                        _T.project_id == project_id, _T.rec_id == rec_id
                    )
                ).first()
                values = {
                    "body": json.dumps(body, default=str),
                    "confidence": confidence,
                    "headline": headline,
                    "updated_ms": now_ms,
                }
                where = (_T.project_id == project_id, _T.rec_id == rec_id)
                if existing is None:
                    if fingerprint in dismissed and not materially_worse(
                        headline, dismissed[fingerprint]
                    ):
                        counts["suppressed"] += 1
                        continue
                    conn.execute(
                        insert(recommendations)
                        .values(
                            project_id=project_id,
                            rec_id=rec_id,
                            agent=report.agent,
                            config_version=version,
                            fingerprint=fingerprint,
                            type=str(body.get("type", "")),
                            target=str(body.get("target", ""))[:256],
                            status=status,
                            reason=discard_reason,
                            created_ms=now_ms,
                            **values,
                        )
                        .on_conflict_do_nothing()
                    )
                    counts["discarded" if discard_reason else "opened"] += 1
                elif existing.status in ("open", "expired"):
                    conn.execute(
                        recommendations.update()
                        .where(*where)
                        .values(status=status, reason=discard_reason, **values)
                    )
                    counts["discarded" if discard_reason else "updated"] += 1
                elif existing.status in ("dismissed", "discarded"):
                    if materially_worse(headline, float(existing.headline)) or (
                        existing.status == "discarded" and not discard_reason
                    ):
                        conn.execute(
                            recommendations.update()
                            .where(*where)
                            .values(
                                status=status,
                                reason=discard_reason,
                                decided_ms=None,
                                decided_by=None,
                                **values,
                            )
                        )
                        counts["reopened"] += 1
                    else:
                        counts["suppressed"] += 1
                else:
                    counts["suppressed"] += 1  # accepted: it lives on as a version
            if expire:
                stale = [
                    r
                    for r in conn.execute(
                        sa.select(_T.rec_id).where(
                            _T.project_id == project_id,
                            _T.agent == report.agent,
                            _T.config_version == version,
                            _T.status == "open",
                        )
                    ).scalars()
                    if r not in seen
                ]
                if stale:
                    conn.execute(
                        recommendations.update()
                        .where(_T.project_id == project_id, _T.rec_id.in_(stale))
                        .values(status="expired", updated_ms=now_ms)
                    )
                counts["expired"] = len(stale)
        return SaveResult(**counts)

    def list_for(
        self, project_id: str, agent: str, *, status: Status | None = "open", limit: int = 100
    ) -> list[dict[str, Any]]:
        """An agent's recommendations, most confident first (``status`` None: every status)."""
        if status is not None and status not in STATUSES:
            raise InvalidInputError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        query = sa.select(recommendations).where(_T.project_id == project_id, _T.agent == agent)
        if status is not None:
            query = query.where(_T.status == status)
        query = query.order_by(_T.confidence.desc(), _T.updated_ms.desc(), _T.rec_id).limit(limit)
        with self._engine.connect() as conn:
            return [_to_dict(row) for row in conn.execute(query)]

    def get(self, project_id: str, agent: str, rec_id: str) -> dict[str, Any]:
        """One recommendation of ``agent``.

        Raises:
            NotFoundError: no such recommendation for the agent in this project.
        """
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(recommendations).where(
                    _T.project_id == project_id, _T.rec_id == rec_id, _T.agent == agent
                )
            ).first()
        if row is None:
            raise NotFoundError(
                f"agent {agent!r} has no recommendation {rec_id!r}; list them with "
                f"`tuneloop recommend --agent {agent}`"
            )
        return _to_dict(row)

    def accept(
        self,
        project_id: str,
        agent: str,
        rec_id: str,
        *,
        author: str,
        now_ms: int,
        base: str | None = None,
    ) -> dict[str, Any]:
        """Create a bundle and a candidate version from an open recommendation.

        The base is ``base`` when given, else the recommendation's version if the config
        store has it, else production.

        Raises:
            NotFoundError: no such recommendation, or no config to apply it to.
            ConflictError: it is not open (accepted, dismissed...).
            ConfigError: the patch does not apply to the base (the message says where).
        """
        rec = self.get(project_id, agent, rec_id)
        if rec["status"] != "open":
            raise ConflictError(
                f"recommendation {rec_id!r} is {rec['status']}, not open"
                + (
                    f"; its candidate version is {rec['candidate_version']}"
                    if rec["candidate_version"]
                    else ""
                )
            )
        if base is not None:
            base_version = self._configs.get_version(project_id, agent, base)
        else:
            base_version = self._base(project_id, agent, rec["version"])
        recommendation = recommendation_from_data(
            {**rec, "evidence": {**rec.get("evidence", {}), "recommendation_id": rec_id}}
        )
        bundle = Bundle(
            bundle_id=f"rec-{rec_id.removeprefix('rec_')}",
            version="1.0.0",
            description=rec["title"][:500],
            recommendations=[recommendation],
        )
        config = apply_bundle(AgentConfig.model_validate(base_version.config), bundle)
        version, created = self._configs.create_version(
            project_id,
            agent,
            config,
            author=author,
            now_ms=now_ms,
            message=f"recommendation {rec_id}: {rec['title']}"[:4000],
            parents=[base_version.hash],
            bundle=bundle,
        )
        with self._engine.begin() as conn:
            done = conn.execute(
                recommendations.update()
                .where(_T.project_id == project_id, _T.rec_id == rec_id, _T.status == "open")
                .values(
                    status="accepted",
                    bundle_id=bundle.bundle_id,
                    version_hash=version.hash,
                    decided_ms=now_ms,
                    decided_by=author,
                    updated_ms=now_ms,
                )
            )
            if done.rowcount != 1:
                raise ConflictError(
                    f"recommendation {rec_id!r} was decided concurrently; reload it"
                )
        return {
            "recommendation": self.get(project_id, agent, rec_id),
            "bundle": bundle.to_data(),
            "base": base_version.summary(),
            "version": version.summary(),
            "created": created,
        }

    def dismiss(
        self, project_id: str, agent: str, rec_id: str, *, reason: str, author: str, now_ms: int
    ) -> dict[str, Any]:
        """Dismiss a recommendation with a reason; not proposed again unless it worsens by half.

        Raises:
            InvalidInputError: no reason given.
            ConflictError: it was accepted already.
        """
        if not reason.strip():
            raise InvalidInputError("a dismissal needs a reason: say why (it is shown to the team)")
        rec = self.get(project_id, agent, rec_id)
        if rec["status"] == "accepted":
            raise ConflictError(
                f"recommendation {rec_id!r} was accepted as version {rec['candidate_version']}; "
                "roll that version back instead"
            )
        with self._engine.begin() as conn:
            conn.execute(
                recommendations.update()
                .where(_T.project_id == project_id, _T.rec_id == rec_id)
                .values(
                    status="dismissed",
                    reason=reason.strip()[:4000],
                    decided_ms=now_ms,
                    decided_by=author,
                    updated_ms=now_ms,
                )
            )
        return self.get(project_id, agent, rec_id)

    def _base(self, project_id: str, agent: str, ref: str | None) -> VersionInfo:
        for candidate in (ref, PRODUCTION):
            if not candidate:
                continue
            try:
                return self._configs.get_version(project_id, agent, candidate)
            except (NotFoundError, InvalidInputError):
                continue
        raise NotFoundError(
            f"agent {agent!r} has no config to apply the recommendation to; push one with "
            f"`tuneloop config push FILE --agent {agent}`"
        )

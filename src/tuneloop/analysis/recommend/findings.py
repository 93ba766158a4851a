"""What analyzers produce: findings with a patch, an impact estimate and a fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tuneloop.config.bundle import Recommendation, RecommendationType

ImpactUnit = Literal["ratio", "ms", "usd_per_day", "tokens_per_day", "calls_per_day"]
MAX_EXAMPLES = 10


@dataclass(frozen=True, slots=True)
class Impact:
    """An expected effect: ``metric`` from ``before`` to about ``after``, and why.

    Attributes:
        metric: what moves (``lookup_order error rate``).
        before: its value in the window.
        after: the estimate once the change is live.
        unit: how to read the numbers.
        basis: how ``after`` was estimated from the data.
    """

    metric: str
    before: float
    after: float
    unit: ImpactUnit
    basis: str

    def text(self) -> str:
        """One line: ``metric before → ~after: basis``."""
        before, after = _fmt(self.before, self.unit), _fmt(self.after, self.unit)
        return f"{self.metric} {before} → ~{after}: {self.basis}"

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data, with the line as ``text``."""
        return {
            "metric": self.metric,
            "before": self.before,
            "after": self.after,
            "unit": self.unit,
            "basis": self.basis,
            "text": self.text(),
        }


def _fmt(value: float, unit: ImpactUnit) -> str:
    match unit:
        case "ratio":
            return f"{value * 100:.1f} %"
        case "ms":
            return f"{value:,.0f} ms"
        case "usd_per_day":
            return f"${value:,.2f}/day"
        case "tokens_per_day":
            return f"{value:,.0f} tokens/day"
        case "calls_per_day":
            return f"{value:,.0f} calls/day"


def fingerprint(agent: str, type_: str, target: str, kind: str, paths: Sequence[str]) -> str:
    """A stable id for a finding: the same problem with the same fix, whatever the figures."""
    key = json.dumps([agent, type_, target, kind, sorted(set(paths))], separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Finding:
    """One recommendation from an analyzer.

    Attributes:
        type: the bundle recommendation type.
        target: what it changes (a tool, a step, a prompt, an intent set).
        kind: the analyzer's name for the finding (``retry``, ``raise_timeout``...).
        title: one line for a list.
        evidence: the figures it rests on, and ``example_trace_ids`` (at most 10).
        change: RFC 6902 operations against the version's effective config.
        impact: the expected effect.
        confidence: 0..1, from the sample size behind the figures.
        headline: the figure a dismissal is compared against (evidence changes
            materially when it worsens by half).
        requires_eval_gate: the change must pass the offline eval gate before any
            experiment (always so for AI-written prompts).
        fingerprint: stable across refreshes (see `fingerprint`).
    """

    type: RecommendationType
    target: str
    kind: str
    title: str
    evidence: Mapping[str, Any]
    change: tuple[Mapping[str, Any], ...]
    impact: Impact
    confidence: float
    headline: float
    fingerprint: str
    requires_eval_gate: bool = False

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data (what the API returns and the store keeps)."""
        return {
            "type": self.type,
            "target": self.target,
            "kind": self.kind,
            "title": self.title,
            "evidence": dict(self.evidence),
            "change": [dict(op) for op in self.change],
            "expected_impact": self.impact.to_data(),
            "confidence": round(self.confidence, 3),
            "headline": self.headline,
            "fingerprint": self.fingerprint,
            "requires_eval_gate": self.requires_eval_gate,
        }

    def to_recommendation(self) -> Recommendation:
        """The bundle recommendation that applies this finding."""
        return recommendation_from_data(self.to_data())


def recommendation_from_data(data: Mapping[str, Any]) -> Recommendation:
    """A bundle recommendation from a finding's stored data (see `Finding.to_data`)."""
    evidence = dict(data.get("evidence") or {})
    if data.get("requires_eval_gate"):
        evidence["requires_eval_gate"] = True
    impact = data.get("expected_impact") or {}
    return Recommendation.model_validate(
        {
            "type": data["type"],
            "target": data["target"],
            "change": list(data["change"]),
            "rationale": data.get("title"),
            "expected_impact": impact.get("text") if isinstance(impact, dict) else str(impact),
            "evidence": evidence,
            "confidence": data.get("confidence"),
        }
    )


@dataclass(frozen=True, slots=True)
class Discarded:
    """A candidate that was dropped, and why (an optimizer answer that is not a prompt...)."""

    kind: str
    target: str
    reason: str
    fingerprint: str
    headline: float = 0.0

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "kind": self.kind,
            "target": self.target,
            "reason": self.reason,
            "fingerprint": self.fingerprint,
            "headline": self.headline,
        }


@dataclass(frozen=True, slots=True)
class AnalyzerResult:
    """One analyzer's findings and notes (why it proposed nothing, what it skipped)."""

    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
    discarded: tuple[Discarded, ...] = ()

    def __add__(self, other: AnalyzerResult) -> AnalyzerResult:
        return AnalyzerResult(
            self.findings + other.findings,
            self.notes + other.notes,
            self.discarded + other.discarded,
        )


@dataclass(frozen=True, slots=True)
class Report:
    """Everything one analysis found for an agent and version.

    Attributes:
        runs: runs observed in the window (sampled ones only).
        weighted_runs: runs they stand for, sampling undone.
        findings: recommendations, most confident first.
        notes: what was skipped and why ("too few runs", "no config"...).
        discarded: candidates dropped with their reason.
    """

    agent: str
    version: str | None
    since_ms: int
    until_ms: int
    runs: int
    weighted_runs: float
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
    discarded: tuple[Discarded, ...] = field(default=())

    def to_data(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "agent": self.agent,
            "version": self.version,
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
            "runs": self.runs,
            "weighted_runs": round(self.weighted_runs, 1),
            "findings": [f.to_data() for f in self.findings],
            "notes": list(self.notes),
            "discarded": [d.to_data() for d in self.discarded],
        }

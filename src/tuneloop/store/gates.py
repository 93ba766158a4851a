"""The gate check experiments and rollouts run before they start a version.

``require_passing_gate`` refuses a version whose eval gate failed (see
`tuneloop.evals.verdicts` for how a version's gate is read from its stages), unless
it is forced with a reason, which is then recorded in the project's audit log: an
``approve`` row by the forcing key whose detail holds ``gate_override`` (the purpose,
the reason, the failed stages and their runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tuneloop.clock import Clock, SystemClock
from tuneloop.errors import GateFailedError, InvalidInputError
from tuneloop.evals.verdicts import StageVerdict, VersionGate
from tuneloop.store.configs import append_audit, write_tx

MAX_REASON = 4096


def require_passing_gate(
    store: Any,
    project_id: str,
    agent: str,
    version: str,
    force_reason: str | None = None,
    *,
    author: str = "system",
    purpose: str = "experiment or rollout",
    stages: Sequence[str] | None = None,
    require_verdict: bool = False,
    clock: Clock | None = None,
    conn: sa.Connection | None = None,
) -> VersionGate:
    """Refuse to go on with a version whose eval gate failed, unless forced with a reason.

    Call it before creating an experiment or rollout for ``version``. A version whose
    latest verdict failed at any stage (or one of ``stages``) is refused; with
    ``require_verdict``, so is one never evaluated. ``force_reason`` lets it through
    and is recorded in the project's audit log by ``author`` (an ``approve`` row whose
    detail holds ``gate_override``).

    Args:
        store: the `Store`.
        project_id: the project.
        agent: the agent.
        version: the version (hash, prefix, label or channel).
        force_reason: why to go on despite the failed gate; recorded.
        author: who forces it (an API key id).
        purpose: what is being created, for the message and the audit row.
        stages: only these stages count (default: every stage with a verdict).
        require_verdict: also refuse a version with no verdict at those stages.
        clock: when the override happened (default: the system clock).
        conn: the caller's connection, when it calls from inside its own
            `tuneloop.store.configs.write_tx` for this project (which holds the audit
            chain's lock): the gate is read and the override recorded in that
            transaction, so it commits (or rolls back) with the caller's change.
            Without it, a forced override commits at once in a transaction of its own.

    Returns:
        The version's gate (its status may be ``failed`` when forced).

    Raises:
        GateFailedError: the gate failed (or no verdict, with ``require_verdict``) and
            no reason was given; the message names the stages, runs and failed checks.
        NotFoundError: no such version.
    """
    gate: VersionGate = store.evals.gate_verdict(project_id, agent, version, conn=conn)
    considered = [s for s in gate.stages if stages is None or s.stage in stages]
    failed = [s for s in considered if not s.passed]
    missing = require_verdict and not considered
    if not failed and not missing:
        return gate
    reason = (force_reason or "").strip()
    if not reason:
        raise GateFailedError(_refusal(gate, failed, stages, purpose))
    if len(reason) > MAX_REASON:
        raise InvalidInputError(f"the force reason is {len(reason)} characters; keep it under 4096")
    now_ms = (clock or SystemClock()).now_ms()
    override = {
        "purpose": purpose,
        "reason": reason,
        "failed_stages": {s.stage: s.run_id for s in failed},
        "missing_verdict": missing,
    }
    detail = {"label": gate.label, "message": f"gate override: {reason}", "gate_override": override}
    if conn is not None:
        append_audit(conn, project_id, agent, "approve", key_id=author, now_ms=now_ms,
                     after=gate.version_hash, detail=detail)  # fmt: skip
        return gate
    with write_tx(store.engine, project_id) as own:
        append_audit(own, project_id, agent, "approve", key_id=author, now_ms=now_ms,
                     after=gate.version_hash, detail=detail)  # fmt: skip
    return gate


def _refusal(
    gate: VersionGate, failed: Sequence[StageVerdict], stages: Sequence[str] | None, purpose: str
) -> str:
    named = f"version {gate.label} ({gate.version_hash[:12]}) of agent {gate.agent!r}"
    if failed:
        parts = []
        for stage in failed:
            first = f": {stage.failures[0]}" if stage.failures else ""
            more = f" (+{len(stage.failures) - 1} more)" if len(stage.failures) > 1 else ""
            parts.append(f"stage {stage.stage!r} in run {stage.run_id}{first}{more}")
        problem = f"failed its eval gate at {'; '.join(parts)}"
    else:
        problem = f"has no eval gate verdict at {', '.join(stages) if stages else 'any stage'}"
    return (
        f"{named} {problem}; refusing to start the {purpose}. Fix the version and re-run its "
        f"evals (tuneloop eval run SUITE --version {gate.label} --server URL), or force it "
        "with a reason, which is recorded in the audit log"
    )

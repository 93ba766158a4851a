"""The eval run document at the HTTP boundary: pydantic models that name the bad field.

``POST /api/v1/eval-runs`` validates an upload against `EvalRunDocument` (the JSON that
``tuneloop eval run --out`` writes, `EvalRun.to_dict`), so an error reads
``run.cases.3.trials.0.passed: Input should be a valid boolean``. Aggregates in the
upload (``overall``, ``categories``, a case's ``status`` and ``pass_rate``) are accepted
and ignored: the server recomputes them from the trials.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from tuneloop.errors import InvalidInputError
from tuneloop.evals.results import SCHEMA_VERSION, EvalRun


def _no_nul(value: str) -> str:
    # PostgreSQL text columns cannot hold NUL.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


_Text = Annotated[str, AfterValidator(_no_nul)]
_Name = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(_no_nul)]
RunId = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"), AfterValidator(_no_nul)
]
_Hash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
_Agent = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
_NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScoreDocument(_Doc):
    """One evaluator's score of one trial."""

    evaluator: _Name
    status: Literal["pass", "fail", "error", "skipped"]
    score: Annotated[float, Field(ge=0, le=1)] | None = None
    explanation: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class TrialDocument(_Doc):
    """One trial of one case."""

    trial: Annotated[int, Field(ge=0)]
    passed: bool
    scores: list[ScoreDocument] = Field(default_factory=list)
    output: Any = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    latency_ms: _NonNegative | None = None
    cost_usd: _NonNegative | None = None
    trace_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$")] | None = None
    error: str | None = None
    error_kind: Literal["exception", "timeout", "invalid_result"] | None = None


class AttributionDocument(_Doc):
    """Who caused a failed case (see `tuneloop.evals.attribution`)."""

    responsible: Literal["user", "agent", "environment"] | None
    fault: Literal["wrong_tool", "wrong_argument", "goal_partly_completed", "other"] | None
    reasoning: str = ""
    trial: Annotated[int, Field(ge=0)] = 0
    model: str | None = None
    error: str | None = None


class CaseDocument(_Doc):
    """Every trial of one case."""

    case_id: _Name
    category: _Name
    tags: list[_Name] = Field(default_factory=list)
    difficulty: _Text | None = None
    trials: list[TrialDocument] = Field(min_length=1)
    attribution: AttributionDocument | None = None
    status: Any = Field(default=None, description="ignored: recomputed from the trials")
    pass_rate: Any = Field(default=None, description="ignored: recomputed from the trials")


class GateCheckDocument(_Doc):
    """One gate check."""

    scope: _Name
    metric: _Name
    status: Literal["pass", "fail", "skipped"]
    actual: float | None = None
    threshold: float | None = None
    message: str = ""


class GateDocument(_Doc):
    """The gate's checks; it passed when none failed."""

    checks: list[GateCheckDocument] = Field(default_factory=list)
    regressions: list[str] = Field(default_factory=list)
    baseline_run_id: str | None = None
    passed: bool | None = Field(default=None, description="ignored: recomputed from the checks")


class EvalRunDocument(_Doc):
    """A whole eval run as `EvalRun.to_dict` writes it."""

    schema_version: Literal[1] = Field(description=f"always {SCHEMA_VERSION}")
    run_id: RunId
    suite: _Name
    suite_path: str | None = None
    agent: _Agent | None = None
    stage: Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_no_nul)]
    version: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    config_hash: _Hash | None = None
    repeat: Annotated[int, Field(ge=1)]
    started_ms: Annotated[int, Field(ge=0)]
    finished_ms: Annotated[int, Field(ge=0)]
    environment: dict[str, Any] = Field(default_factory=dict)
    gate: GateDocument | None = None
    cases: list[CaseDocument] = Field(min_length=1)
    overall: Any = Field(default=None, description="ignored: recomputed from the cases")
    categories: Any = Field(default=None, description="ignored: recomputed from the cases")

    @field_validator("cases")
    @classmethod
    def _unique_ids(cls, cases: list[CaseDocument]) -> list[CaseDocument]:
        seen: set[str] = set()
        for case in cases:
            if case.case_id in seen:
                raise ValueError(f"case id {case.case_id!r} appears twice; case ids are unique")
            seen.add(case.case_id)
        return cases

    @field_validator("version")
    @classmethod
    def _version_text(cls, value: str | None) -> str | None:
        return None if value is None else _no_nul(value)

    def to_run(self) -> EvalRun:
        """The `EvalRun` this document holds, its aggregates recomputed."""
        if self.finished_ms < self.started_ms:
            raise InvalidInputError(
                f"eval run {self.run_id}: finished_ms ({self.finished_ms}) is before "
                f"started_ms ({self.started_ms})"
            )
        return EvalRun.from_dict(self.model_dump(mode="json"), source=f"eval run {self.run_id}")


def parse_run_document(data: Any, *, source: str = "eval run") -> EvalRun:
    """Validate ``data`` as an eval run document and read it.

    Raises:
        InvalidInputError: the document does not validate; the message names each bad
            field by its path (``cases.3.trials.0.passed``).
    """
    try:
        document = EvalRunDocument.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(f"{source}: {describe(exc)}") from None
    return document.to_run()


def describe(exc: ValidationError) -> str:
    """Every problem of a validation error as ``path: message``, joined by '; '."""
    parts = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{location or 'document'}: {message}")
    return "; ".join(dict.fromkeys(parts))

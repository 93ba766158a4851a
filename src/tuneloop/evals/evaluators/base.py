"""The evaluator protocol: a case and what the target returned in, a `Score` out."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from tuneloop.evals.dataset import Case
from tuneloop.evals.target import TargetResult

ScoreStatus = Literal["pass", "fail", "error", "skipped"]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Score:
    """One evaluator's verdict on one trial.

    ``score`` is in [0, 1] (None when the evaluator did not apply or failed to run);
    ``status`` is ``pass``/``fail``, ``error`` when the evaluator could not judge (a
    judge's unparsable answer, a state check that raised), ``skipped`` when the case
    states nothing this evaluator checks.
    """

    evaluator: str
    status: ScoreStatus
    score: float | None
    explanation: str = ""
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def passed(self) -> bool:
        """Whether the evaluator passed the trial."""
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        out: dict[str, Any] = {
            "evaluator": self.evaluator,
            "status": self.status,
            "score": self.score,
            "explanation": self.explanation,
        }
        if self.details:
            out["details"] = json_safe(dict(self.details))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Score:
        """Read `to_dict` output back."""
        return cls(
            evaluator=str(data["evaluator"]),
            status=data["status"],
            score=data.get("score"),
            explanation=str(data.get("explanation", "")),
            details=MappingProxyType(dict(data.get("details") or {})),
        )


@dataclass(frozen=True, slots=True)
class EvalContext:
    """Everything an evaluator may read about one trial."""

    case: Case
    result: TargetResult
    config: Any = None


class Evaluator(Protocol):
    """Scores one trial. Implementations hold their validated parameters.

    ``name`` is the id the suite gave the evaluator (its registry name by default);
    scores carry it. ``evaluate`` never raises for a bad answer: it returns a failing
    `Score`. An exception escaping it is recorded as an ``error`` score by the runner.
    """

    name: str

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        ...


class Params(BaseModel):
    """Base of every evaluator's parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdParams(Params):
    """Parameters of evaluators whose score is compared with a threshold."""

    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="pass when score >= this")


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What evaluators may need when they are built from a suite.

    Attributes:
        base_dir: the suite file's directory: import paths and files resolve from it.
        source: the suite file, for error messages.
        providers: a factory for LLM judges: ``providers(name, options)`` returns a
            provider (see `tuneloop.evals.evaluators.judge`); None means the built-in
            resolution through ``tuneloop.runtime.providers``.
    """

    base_dir: Path = Path()
    source: str = "<suite>"
    providers: Callable[[str, Mapping[str, Any]], Any] | None = None


P = TypeVar("P", bound=Params)


class BaseEvaluator(Generic[P]):
    """Convenience base: a name, validated params, and helpers to build scores.

    Subclasses set ``params_model`` to their parameters' model and implement `evaluate`.
    """

    params_model: ClassVar[type[Params]] = Params
    description: ClassVar[str] = ""

    def __init__(self, name: str, params: P, context: BuildContext | None = None) -> None:
        self.name = name
        self.params: P = params
        self.context = context or BuildContext()

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        raise NotImplementedError(f"{type(self).__name__} does not implement evaluate()")

    def verdict(self, passed: bool, score: float, explanation: str = "", **details: Any) -> Score:
        """A pass or fail score, clamped to [0, 1]."""
        clamped = min(1.0, max(0.0, float(score))) if math.isfinite(score) else 0.0
        return Score(
            self.name,
            "pass" if passed else "fail",
            clamped,
            explanation,
            MappingProxyType(details),
        )

    def skip(self, explanation: str) -> Score:
        """The case states nothing this evaluator checks."""
        return Score(self.name, "skipped", None, explanation)

    def error(self, explanation: str, **details: Any) -> Score:
        """The evaluator could not judge the trial."""
        return Score(self.name, "error", None, explanation, MappingProxyType(details))

    def interpret(self, outcome: Any, *, threshold: float, what: str) -> Score:
        """A score from what a user's check function returned.

        A `Score` (renamed to this evaluator), a bool, a number in [0, 1] (passing at
        ``threshold``), or either of those paired with an explanation string.
        """
        explanation = ""
        if isinstance(outcome, Score):
            return replace(outcome, evaluator=self.name)
        if isinstance(outcome, tuple) and len(outcome) == 2 and isinstance(outcome[1], str):
            outcome, explanation = outcome
        if isinstance(outcome, bool):
            return self.verdict(outcome, float(outcome), explanation or what)
        if isinstance(outcome, int | float) and 0.0 <= outcome <= 1.0:
            return self.verdict(
                outcome >= threshold, float(outcome), explanation or f"{what} scored {outcome:.3f}"
            )
        return self.error(
            f"{what} returned {outcome!r}; return a bool, a score in [0, 1], or (bool, explanation)"
        )


def output_text(output: Any) -> str:
    """The output as text: strings as they are, anything else as compact JSON."""
    if isinstance(output, str):
        return output
    if output is None:
        return ""
    return json.dumps(json_safe(output), ensure_ascii=False, sort_keys=True)


def json_safe(value: Any) -> Any:
    """``value`` with every leaf JSON-serializable (others become their ``repr``)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    if isinstance(value, BaseModel):
        return json_safe(value.model_dump(mode="json"))
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return json_safe(to_dict())
    return repr(value)

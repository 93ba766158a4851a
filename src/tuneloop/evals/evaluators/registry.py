"""Evaluators by name, built from a suite's entries with their parameters validated."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tuneloop.errors import ConfigError
from tuneloop.evals.evaluators.base import (
    BaseEvaluator,
    BuildContext,
    EvalContext,
    Evaluator,
    Params,
    Score,
)
from tuneloop.evals.evaluators.judge import Judge
from tuneloop.evals.evaluators.safety import Safety
from tuneloop.evals.evaluators.similarity import Bleu, RougeL
from tuneloop.evals.evaluators.state import Cost, FinalState, Latency
from tuneloop.evals.evaluators.text import (
    Contains,
    EditDistance,
    ExactMatch,
    JsonSchema,
    Numeric,
    Regex,
)
from tuneloop.evals.evaluators.trajectory import GroundingAccuracy, ProgressRate, Trajectory
from tuneloop.evals.target import import_object


class CustomParams(Params):
    """Parameters of `custom`: a function of the `EvalContext` given by import path."""

    function: str = Field(
        description="'package.module:function'; (ctx) -> bool | float | (bool, str) | Score, "
        "sync or async"
    )
    threshold: float = Field(default=1.0, ge=0.0, le=1.0)


class Custom(BaseEvaluator[CustomParams]):
    """Your own check, by import path, scored like a final-state check."""

    params_model = CustomParams
    description = "a function of the trial given by import path"

    def __init__(
        self, name: str, params: CustomParams, context: BuildContext | None = None
    ) -> None:
        super().__init__(name, params, context)
        function = import_object(
            params.function, search_paths=[self.context.base_dir], what=f"evaluator {name!r}"
        )
        if not callable(function):
            raise ValueError(f"{params.function!r} is not callable")
        self._function = function

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        try:
            outcome = self._function(ctx)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except Exception as exc:
            return self.error(f"{params.function} raised {type(exc).__name__}: {exc}")
        return self.interpret(outcome, threshold=params.threshold, what=params.function)


BUILTIN_EVALUATORS: Mapping[str, type[BaseEvaluator[Any]]] = MappingProxyType(
    {
        "exact_match": ExactMatch,
        "contains": Contains,
        "regex": Regex,
        "json_schema": JsonSchema,
        "numeric": Numeric,
        "edit_distance": EditDistance,
        "rouge_l": RougeL,
        "bleu": Bleu,
        "trajectory": Trajectory,
        "final_state": FinalState,
        "latency": Latency,
        "cost": Cost,
        "safety": Safety,
        "judge": Judge,
        "progress_rate": ProgressRate,
        "grounding_accuracy": GroundingAccuracy,
        "custom": Custom,
    }
)


class EvaluatorSpec(BaseModel):
    """One evaluator as a suite names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the registry name (exact_match, trajectory, judge...)")
    id: str | None = Field(
        default=None, description="how scores and gates refer to it; default: the name"
    )
    params: dict[str, Any] = Field(default_factory=dict)
    categories: list[str] | None = Field(
        default=None, description="only cases of these categories (default: all)"
    )
    tags: list[str] | None = Field(
        default=None, description="only cases carrying one of these tags (default: all)"
    )

    @property
    def key(self) -> str:
        """The id scores carry."""
        return self.id or self.name


class Registry:
    """Evaluator types by name. `Registry()` holds the built-in ones; `register` adds yours."""

    def __init__(self, types: Mapping[str, type[BaseEvaluator[Any]]] | None = None) -> None:
        self._types: dict[str, type[BaseEvaluator[Any]]] = dict(
            BUILTIN_EVALUATORS if types is None else types
        )

    def register(self, name: str, evaluator_type: type[BaseEvaluator[Any]]) -> None:
        """Make ``evaluator_type`` available as ``name``.

        Raises:
            ConfigError: the name is taken.
        """
        if name in self._types:
            raise ConfigError(f"an evaluator named {name!r} is already registered")
        self._types[name] = evaluator_type

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._types)

    def params_model(self, name: str) -> type[Params]:
        """The parameters model of the evaluator ``name``."""
        return self._types[name].params_model

    def build(self, spec: EvaluatorSpec, *, context: BuildContext | None = None) -> Evaluator:
        """An evaluator from a suite entry.

        Raises:
            ConfigError: unknown name, bad parameters, or a missing optional dependency;
                the message names the suite file and the evaluator.
        """
        context = context or BuildContext()
        where = f"{context.source}: evaluator {spec.key!r}"
        evaluator_type = self._types.get(spec.name)
        if evaluator_type is None:
            raise ConfigError(
                f"{where}: unknown evaluator {spec.name!r}; known evaluators: "
                f"{', '.join(self.names())}"
            )
        try:
            params = evaluator_type.params_model.model_validate(spec.params)
        except ValidationError as exc:
            raise ConfigError(
                f"{where} ({spec.name}): {_describe(exc, evaluator_type.params_model)}"
            ) from None
        try:
            return evaluator_type(spec.key, params, context)
        except ConfigError as exc:
            raise ConfigError(f"{where} ({spec.name}): {exc}") from exc
        except ImportError as exc:
            raise ConfigError(f"{where} ({spec.name}): {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where} ({spec.name}): bad parameters: {exc}") from exc


def _describe(exc: ValidationError, model: type[BaseModel]) -> str:
    fields = sorted(info.alias or name for name, info in model.model_fields.items())
    known = ", ".join(fields) or "none"
    parts = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown parameter {location!r} (parameters: {known})")
        elif error["type"] == "missing":
            parts.append(f"parameter {location!r} is required")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            parts.append(f"parameter {location or '(params)'!r}: {message}")
    return "; ".join(parts)

"""Evaluators: the protocol, the built-in ones, and the registry that builds them by name."""

from tuneloop.evals.evaluators.base import (
    BaseEvaluator,
    BuildContext,
    EvalContext,
    Evaluator,
    Params,
    Score,
    ScoreStatus,
)
from tuneloop.evals.evaluators.registry import BUILTIN_EVALUATORS, EvaluatorSpec, Registry

__all__ = [
    "BUILTIN_EVALUATORS",
    "BaseEvaluator",
    "BuildContext",
    "EvalContext",
    "Evaluator",
    "EvaluatorSpec",
    "Params",
    "Registry",
    "Score",
    "ScoreStatus",
]

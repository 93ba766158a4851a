"""Builders shared by the eval tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tuneloop.evals.dataset import Case, Expectation
from tuneloop.evals.evaluators.base import EvalContext, Evaluator, Score
from tuneloop.evals.target import TargetResult, to_target_result


def case(
    case_id: str = "c1",
    *,
    input: Any = "hi",
    expected: Any = None,
    category: str = "default",
    tags: Sequence[str] = (),
) -> Case:
    return Case(
        id=case_id,
        input=input,
        expected=Expectation.parse(expected),
        category=category,
        tags=tuple(tags),
    )


def score(evaluator: Evaluator, result: Any, expected: Any = None, *, config: Any = None) -> Score:
    """Run one evaluator on one trial synchronously."""
    target_result = result if isinstance(result, TargetResult) else to_target_result(result)
    ctx = EvalContext(case(expected=expected), target_result, config)
    return asyncio.run(evaluator.evaluate(ctx))


def write_suite(
    directory: Path,
    *,
    cases: Sequence[dict[str, Any]],
    suite: dict[str, Any],
    target_source: str | None = None,
) -> Path:
    """Write a dataset, a suite file and (optionally) a target module into ``directory``.

    The module gets a unique name (modules are cached per process); ``MODULE`` in the
    suite's YAML text stands for it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cases.jsonl").write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    module = f"eval_target_{uuid.uuid4().hex}"
    if target_source is not None:
        (directory / f"{module}.py").write_text(target_source)
    document = json.loads(json.dumps({"dataset": "cases.jsonl", **suite}).replace("MODULE", module))
    path = directory / "suite.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path

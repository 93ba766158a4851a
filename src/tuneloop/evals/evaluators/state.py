"""Evaluators of the run's effects and costs: final state, latency and cost budgets."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from tuneloop.evals.evaluators.base import (
    BaseEvaluator,
    BuildContext,
    EvalContext,
    Params,
    Score,
    output_text,
)
from tuneloop.evals.evaluators.trajectory import subset_match
from tuneloop.evals.target import import_object


class FinalStateParams(Params):
    """Parameters of `final_state`.

    With ``check``, an import path to ``check(ctx) -> bool | float | (bool, str) | Score``
    (sync or async; ``ctx`` is the `EvalContext`) that inspects the environment or
    database after the run, as tau-bench compares its final database with the expected
    one. Without it, the target's returned ``state`` is compared with ``expected.state``.
    """

    check: str | None = None
    mode: Literal["subset", "exact"] = Field(
        default="subset",
        description="without check: expected.state is a subset of, or equals, state",
    )
    threshold: float = Field(
        default=1.0, ge=0.0, le=1.0, description="for checks returning a float"
    )


class FinalState(BaseEvaluator[FinalStateParams]):
    """The environment after the run is what the case expects."""

    params_model = FinalStateParams
    description = "final state matches expected.state, or a check callable passes"

    def __init__(
        self, name: str, params: FinalStateParams, context: BuildContext | None = None
    ) -> None:
        super().__init__(name, params, context)
        self._check: Callable[[EvalContext], Any] | None = None
        if params.check is not None:
            check = import_object(
                params.check, search_paths=[self.context.base_dir], what="final_state check"
            )
            if not callable(check):
                raise ValueError(f"check {params.check!r} is not callable")
            self._check = check

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        if self._check is not None:
            return await self._run_check(ctx, params)
        if not ctx.case.expected.has("state"):
            return self.skip("the case has no expected.state and the evaluator no check")
        expected, actual = ctx.case.expected.get("state"), ctx.result.state
        if actual is None:
            return self.verdict(False, 0.0, "the target returned no state")
        same = expected == actual if params.mode == "exact" else subset_match(expected, actual)
        if same:
            return self.verdict(True, 1.0, f"final state matches ({params.mode})")
        return self.verdict(
            False,
            0.0,
            f"final state differs ({params.mode}): expected {output_text(expected)[:300]}, "
            f"got {output_text(actual)[:300]}",
        )

    async def _run_check(self, ctx: EvalContext, params: FinalStateParams) -> Score:
        assert self._check is not None
        try:
            outcome = self._check(ctx)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except Exception as exc:
            return self.error(f"check {params.check} raised {type(exc).__name__}: {exc}")
        return self.interpret(outcome, threshold=params.threshold, what=f"check {params.check}")


class LatencyParams(Params):
    """Parameters of `latency`: the trial's latency (reported, else measured) <= max_ms."""

    max_ms: float = Field(gt=0)


class Latency(BaseEvaluator[LatencyParams]):
    """A latency budget per run; the score degrades as max_ms / latency beyond it."""

    params_model = LatencyParams
    description = "run latency within max_ms"

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        latency = ctx.result.latency_ms
        if latency is None:
            return self.error("no latency recorded for the trial")
        ok = latency <= params.max_ms
        score = 1.0 if ok else params.max_ms / latency
        return self.verdict(ok, score, f"{latency:.0f} ms (budget {params.max_ms:.0f} ms)")


class CostParams(Params):
    """Parameters of `cost`: the run's ``cost_usd`` <= max_usd."""

    max_usd: float = Field(gt=0)
    on_missing: Literal["fail", "skip"] = Field(
        default="fail", description="when the target reports no cost_usd"
    )


class Cost(BaseEvaluator[CostParams]):
    """A cost budget per run, read from the target's ``cost_usd``."""

    params_model = CostParams
    description = "run cost within max_usd"

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        cost = ctx.result.cost_usd
        if cost is None:
            message = "the target reported no cost_usd; return it in the result"
            return (
                self.skip(message)
                if params.on_missing == "skip"
                else self.verdict(False, 0.0, message)
            )
        ok = cost <= params.max_usd
        score = 1.0 if ok or cost == 0 else params.max_usd / cost
        return self.verdict(ok, score, f"${cost:.4f} (budget ${params.max_usd:.4f})")

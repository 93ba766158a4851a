"""LLM-as-judge: a model grades the output against a rubric, and its reasoning is kept.

The judge speaks through any `tuneloop.runtime.providers.base.Provider`. It is asked for
one JSON object ``{"reasoning": "...", "score": N}`` with N on the rubric's scale; an
answer that does not parse, or a score off the scale, makes the trial's judge score an
``error`` (the run goes on). With ``samples: n`` the same output is judged n times:
the score is their mean and their variance is the judge's own noise.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from tuneloop.errors import ProviderError
from tuneloop.evals.evaluators.base import (
    BaseEvaluator,
    BuildContext,
    EvalContext,
    Params,
    Score,
    output_text,
)
from tuneloop.evals.providers import resolve_provider

DEFAULT_RUBRIC = (
    "The answer is correct, complete and helpful for the user's request, consistent with "
    "the reference answer when one is given, and contains nothing false or unsafe."
)
_SYSTEM = (
    "You are an impartial evaluator of an AI agent's answers. Grade the answer against the "
    "rubric only. Reply with one JSON object and nothing else: "
    '{{"reasoning": "<one short paragraph>", "score": <a number from {low:g} to {high:g}>}}'
)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class JudgeParams(Params):
    """Parameters of `judge`."""

    provider: str = Field(
        description="a provider name (openai, anthropic, simulated...) or an import path "
        "to a Provider instance or factory"
    )
    model: str = Field(min_length=1)
    options: dict[str, Any] = Field(
        default_factory=dict, description="passed to the provider factory"
    )
    rubric: str | None = Field(default=None, description="else expected.rubric, else a default")
    scale_min: float = 1.0
    scale_max: float = 5.0
    threshold: float = Field(
        default=0.75, ge=0.0, le=1.0, description="pass when the normalized score >= this"
    )
    samples: int = Field(default=1, ge=1, le=20)
    temperature: float | None = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=512, gt=0)
    include_reference: bool = True

    @model_validator(mode="after")
    def _scale(self) -> JudgeParams:
        if self.scale_max <= self.scale_min:
            raise ValueError(
                f"scale_max ({self.scale_max}) must be above scale_min ({self.scale_min})"
            )
        return self


class JudgeError(ValueError):
    """The judge's answer could not be read."""


class Judge(BaseEvaluator[JudgeParams]):
    """Grades the output with an LLM against a rubric; stores the judge's reasoning."""

    params_model = JudgeParams
    description = "an LLM grades the output against a rubric"

    def __init__(self, name: str, params: JudgeParams, context: BuildContext | None = None) -> None:
        super().__init__(name, params, context)
        self._provider = resolve_provider(
            params.provider, params.options, context=self.context, what=f"judge {name!r}"
        )

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        from tuneloop.runtime.providers.base import ChatRequest, Message

        params = self.params
        request = ChatRequest(
            model=params.model,
            messages=(
                Message.system(_SYSTEM.format(low=params.scale_min, high=params.scale_max)),
                Message.user(self._prompt(ctx, params)),
            ),
            temperature=params.temperature,
            max_tokens=params.max_tokens,
        )
        answers = await asyncio.gather(
            *(self._ask(request) for _ in range(params.samples)), return_exceptions=True
        )
        scores: list[float] = []
        reasonings: list[str] = []
        problems: list[str] = []
        for answer in answers:
            if isinstance(answer, BaseException):
                problems.append(str(answer))
                continue
            try:
                raw_score, reasoning = parse_judgement(answer, params.scale_min, params.scale_max)
            except JudgeError as exc:
                problems.append(f"{exc}; answer: {answer[:300]!r}")
                continue
            scores.append((raw_score - params.scale_min) / (params.scale_max - params.scale_min))
            reasonings.append(reasoning)
        if not scores:
            return self.error(f"judge error: {problems[0]}", judge_errors=problems)
        mean = statistics.fmean(scores)
        variance = statistics.pvariance(scores) if len(scores) > 1 else 0.0
        details: dict[str, Any] = {
            "reasoning": reasonings[0] if len(reasonings) == 1 else reasonings,
            "judge_scores": scores,
            "judge_variance": variance,
        }
        if problems:
            details["judge_errors"] = problems
        return self.verdict(
            mean >= params.threshold,
            mean,
            f"judge score {mean:.2f} (threshold {params.threshold}): {reasonings[0][:300]}",
            **details,
        )

    async def _ask(self, request: Any) -> str:
        try:
            response = await self._provider.chat(request)
        except ProviderError as exc:
            raise JudgeError(f"judge provider failed: {type(exc).__name__}: {exc}") from exc
        return str(response.message.text)

    def _prompt(self, ctx: EvalContext, params: JudgeParams) -> str:
        rubric = params.rubric or ctx.case.expected.get("rubric") or DEFAULT_RUBRIC
        parts = [
            f"## Rubric\n{rubric}",
            f"## Scale\n{params.scale_min:g} (fails the rubric) to {params.scale_max:g} "
            "(fully meets it)",
            f"## User request\n{output_text(ctx.case.input)}",
        ]
        if params.include_reference and ctx.case.expected.has("output"):
            parts.append(f"## Reference answer\n{output_text(ctx.case.expected.get('output'))}")
        if ctx.result.tool_calls:
            calls = [call.to_dict() for call in ctx.result.tool_calls]
            parts.append(f"## Tool calls made\n{json.dumps(calls, ensure_ascii=False)}")
        parts.append(f"## Answer to grade\n{output_text(ctx.result.output)}")
        return "\n\n".join(parts)


def parse_judgement(text: str, low: float, high: float) -> tuple[float, str]:
    """The score and reasoning in a judge's answer.

    Accepts a bare JSON object, one inside a code fence, or the first ``{...}`` span
    of the text.

    Raises:
        JudgeError: no JSON object with a numeric ``score`` in [low, high].
    """
    data = _json_object(text)
    if data is None:
        raise JudgeError("the judge's answer holds no JSON object")
    score = data.get("score")
    if isinstance(score, str):
        try:
            score = float(score.strip())
        except ValueError:
            score = None
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise JudgeError("the judge's JSON has no numeric 'score'")
    if not low <= score <= high:
        raise JudgeError(f"the judge's score {score} is off the scale [{low:g}, {high:g}]")
    reasoning = data.get("reasoning", data.get("explanation", ""))
    return float(score), str(reasoning)


def _json_object(text: str) -> Mapping[str, Any] | None:
    candidates = [text.strip(), *(block.strip() for block in _FENCE.findall(text))]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            return data
    return None

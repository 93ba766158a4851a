"""Failure attribution: an LLM judge labels who caused each failed case, and how.

For every case that did not pass, the judge reads the request, the expectation, what
the agent answered, the tool calls it made (with their statuses), the error and the
failing checks, and answers one JSON object::

    {"responsible": "user" | "agent" | "environment",
     "fault": "wrong_tool" | "wrong_argument" | "goal_partly_completed" | "other",
     "reasoning": "one short paragraph"}

The label is stored with the case (`CaseResult.attribution`). An answer that does not
parse is stored too, with ``error`` set, so the run never fails because of its judge.
Enable it per suite::

    attribution: {provider: openai, model: gpt-4o-mini, max_cases: 50}
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field

from tuneloop.errors import ProviderError
from tuneloop.evals.dataset import Case
from tuneloop.evals.evaluators.base import BuildContext, output_text
from tuneloop.evals.labels import Attribution, FaultType, Responsible
from tuneloop.evals.providers import resolve_provider
from tuneloop.evals.results import CaseResult, EvalRun

RESPONSIBLE: tuple[Responsible, ...] = get_args(Responsible)
FAULTS: tuple[FaultType, ...] = get_args(FaultType)
_SYSTEM = (
    "You analyse why an AI agent failed a test case. Decide who caused the failure: "
    "'user' (the request was ambiguous, impossible or adversarial), 'agent' (the agent's own "
    "reasoning, tool choice or answer was wrong) or 'environment' (a tool, service or data "
    "source failed or returned bad data). Then the fault type: 'wrong_tool' (called the wrong "
    "tool, or none when one was needed), 'wrong_argument' (the right tool with wrong "
    "arguments), 'goal_partly_completed' (did part of the task) or 'other'. Reply with one "
    'JSON object and nothing else: {"responsible": "...", "fault": "...", "reasoning": '
    '"<one short paragraph>"}'
)
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_TEXT_LIMIT = 4000


class AttributionSpec(BaseModel):
    """The ``attribution:`` section of a suite: which model labels failed cases."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(description="openai, anthropic, simulated, or an import path")
    model: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict, description="for the provider")
    max_cases: int = Field(default=50, ge=1, description="label at most this many failed cases")
    concurrency: int = Field(default=4, ge=1, le=64)
    max_tokens: int = Field(default=400, gt=0)


class FailureAttributor:
    """Labels failed cases through a `Provider` (see the module docstring).

    Args:
        provider: anything with ``async chat(request)`` (a runtime `Provider`).
        model: the judge model.
        max_cases: failed cases labelled per run, in run order.
        concurrency: judge calls in flight at once.
        max_tokens: the judge's answer budget.
    """

    def __init__(
        self,
        provider: Any,
        *,
        model: str,
        max_cases: int = 50,
        concurrency: int = 4,
        max_tokens: int = 400,
    ) -> None:
        self._provider = provider
        self._model = model
        self._max_cases = max_cases
        self._concurrency = concurrency
        self._max_tokens = max_tokens

    @classmethod
    def from_spec(cls, spec: AttributionSpec, *, context: BuildContext) -> FailureAttributor:
        """The attributor a suite's ``attribution:`` section describes.

        Raises:
            ConfigError: the provider cannot be found or built.
        """
        provider = resolve_provider(
            spec.provider, spec.options, context=context, what="failure attribution"
        )
        return cls(
            provider,
            model=spec.model,
            max_cases=spec.max_cases,
            concurrency=spec.concurrency,
            max_tokens=spec.max_tokens,
        )

    async def annotate(self, run: EvalRun, cases: Sequence[Case]) -> EvalRun:
        """``run`` with an attribution on each failed case (up to ``max_cases``)."""
        by_id = {case.id: case for case in cases}
        failed = [result for result in run.cases if result.status != "pass"][: self._max_cases]
        if not failed:
            return run
        gate = asyncio.Semaphore(self._concurrency)

        async def label(result: CaseResult) -> Attribution:
            async with gate:
                return await self.attribute(result, by_id.get(result.case_id))

        labels = await asyncio.gather(*(label(result) for result in failed))
        labelled = {result.case_id: found for result, found in zip(failed, labels, strict=True)}
        return replace(
            run,
            cases=tuple(
                replace(result, attribution=labelled[result.case_id])
                if result.case_id in labelled
                else result
                for result in run.cases
            ),
        )

    async def attribute(self, result: CaseResult, case: Case | None) -> Attribution:
        """Label one failed case by its first failing trial."""
        from tuneloop.runtime.providers.base import ChatRequest, Message

        trial = next((t for t in result.trials if not t.passed), result.trials[0])
        request = ChatRequest(
            model=self._model,
            messages=(Message.system(_SYSTEM), Message.user(_prompt(result, trial, case))),
            temperature=0.0,
            max_tokens=self._max_tokens,
        )
        try:
            response = await self._provider.chat(request)
        except ProviderError as exc:
            error = f"the judge failed: {type(exc).__name__}: {exc}"
            return Attribution(None, None, trial=trial.trial, model=self._model, error=error)
        return parse_attribution(str(response.message.text), trial=trial.trial, model=self._model)


def parse_attribution(text: str, *, trial: int = 0, model: str | None = None) -> Attribution:
    """The label in a judge's answer; an `Attribution` with ``error`` when it does not parse."""
    data = _json_object(text)
    if data is None:
        error = f"the judge's answer holds no JSON object: {text[:200]!r}"
        return Attribution(None, None, trial=trial, model=model, error=error)
    responsible = _choice(data.get("responsible"), RESPONSIBLE)
    fault = _choice(data.get("fault", data.get("fault_type")), FAULTS)
    problems = []
    if responsible is None:
        problems.append(f"'responsible' {data.get('responsible')!r} is not one of {RESPONSIBLE}")
    if fault is None:
        problems.append(f"'fault' {data.get('fault')!r} is not one of {FAULTS}")
    reasoning = str(data.get("reasoning") or data.get("explanation") or "")
    return Attribution(
        responsible,  # type: ignore[arg-type]
        fault,  # type: ignore[arg-type]
        reasoning,
        trial=trial,
        model=model,
        error="; ".join(problems) or None,
    )


def _choice(value: Any, allowed: Sequence[str]) -> str | None:
    if not isinstance(value, str):
        return None
    key = re.sub(r"[\s-]+", "_", value.strip().lower())
    aliases = {
        "partial": "goal_partly_completed",
        "goal_partially_completed": "goal_partly_completed",
    }
    key = aliases.get(key, key)
    return key if key in allowed else None


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


def _clip(text: str) -> str:
    return text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT] + " …"


def _prompt(result: CaseResult, trial: Any, case: Case | None) -> str:
    parts = [f"## Case\n{result.case_id} (category {result.category})"]
    if case is not None:
        parts.append(f"## User request\n{_clip(output_text(case.input))}")
        if case.expected.values:
            expected = json.dumps(case.expected.to_json(), ensure_ascii=False, default=str)
            parts.append(f"## Expected\n{_clip(expected)}")
    parts.append(f"## Agent's answer\n{_clip(output_text(trial.output))}")
    if trial.tool_calls:
        calls = json.dumps(list(trial.tool_calls), ensure_ascii=False, default=str)
        parts.append(f"## Tool calls made (in order, with status)\n{_clip(calls)}")
    if trial.error:
        parts.append(f"## Error\n{_clip(trial.error)}")
    failing = [
        f"- {score.evaluator}: {score.explanation}"
        for score in trial.scores
        if score.status in ("fail", "error")
    ]
    if failing:
        parts.append("## Failed checks\n" + _clip("\n".join(failing)))
    return "\n\n".join(parts)

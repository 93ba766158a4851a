"""Tool-use evaluators: the trajectory, and AgentBoard's progress rate and grounding accuracy.

Progress rate and grounding accuracy follow AgentBoard (Ma et al., 2024): progress is
the fraction of a case's sub-goals the run reached; grounding accuracy is the fraction
of the agent's actions (tool calls) that were valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, field_validator

from tuneloop.evals.evaluators.base import (
    BaseEvaluator,
    EvalContext,
    Params,
    Score,
    output_text,
)
from tuneloop.evals.target import ToolCallRecord

ArgumentMatch = Literal["exact", "subset", "schema", "ignore"]
Order = Literal["exact", "in_order", "set"]


def subset_match(expected: Any, actual: Any) -> bool:
    """Whether every key of ``expected`` is in ``actual`` with a matching value (recursively)."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and subset_match(value, actual[key]) for key, value in expected.items()
        )
    return bool(expected == actual)


def schema_match(schema: Any, value: Any) -> tuple[bool, str]:
    """Whether ``value`` validates against the JSON schema, and the first error if not."""
    from jsonschema import SchemaError, validators

    try:
        errors = list(validators.validator_for(schema)(schema).iter_errors(value))
    except SchemaError as exc:
        return False, f"invalid schema: {exc.message}"
    return (not errors, errors[0].message if errors else "")


class _ExpectedCall:
    """One expected tool call, as read from the case."""

    def __init__(self, raw: Any, default_match: ArgumentMatch, index: int) -> None:
        if isinstance(raw, str):
            raw = {"name": raw}
        if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
            raise ValueError(f"expected.tool_calls[{index}] needs a 'name': {raw!r}")
        self.name: str = raw["name"]
        self.arguments: Any = raw.get("arguments")
        self.schema: Any = raw.get("arguments_schema")
        match = raw.get("match", "schema" if self.schema is not None else default_match)
        if match not in ("exact", "subset", "schema", "ignore"):
            raise ValueError(f"expected.tool_calls[{index}].match: unknown rule {match!r}")
        self.match: ArgumentMatch = match
        if self.match == "schema" and self.schema is None:
            self.schema = self.arguments

    def matches(self, call: ToolCallRecord) -> bool:
        if call.name != self.name:
            return False
        arguments = dict(call.arguments)
        if self.match == "ignore" or (self.arguments is None and self.schema is None):
            return True
        if self.match == "exact":
            return bool(arguments == (self.arguments or {}))
        if self.match == "subset":
            return subset_match(self.arguments or {}, arguments)
        return schema_match(self.schema, arguments)[0]

    def __str__(self) -> str:
        if self.arguments is None:
            return self.name
        return f"{self.name}({output_text(self.arguments)})"


class TrajectoryParams(Params):
    """Parameters of `trajectory`."""

    order: Order = Field(
        default="in_order",
        description="exact: the same calls in the same order; in_order: the expected calls "
        "appear in this order; set: they appear in any order",
    )
    arguments: ArgumentMatch = Field(
        default="subset", description="how arguments match unless a call says 'match:'"
    )
    allow_extra: bool = Field(default=True, description="calls beyond the expected ones are fine")


class Trajectory(BaseEvaluator[TrajectoryParams]):
    """The tool calls made match ``expected.tool_calls`` (names in order or as a set, arguments)."""

    params_model = TrajectoryParams
    description = "tool calls match expected.tool_calls"

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        raw = ctx.case.expected.get("tool_calls")
        if raw is None:
            return self.skip("the case has no expected.tool_calls")
        if not isinstance(raw, list):
            return self.error(f"case {ctx.case.id!r}: expected.tool_calls must be a list")
        try:
            expected = [_ExpectedCall(item, params.arguments, i) for i, item in enumerate(raw)]
        except ValueError as exc:
            return self.error(f"case {ctx.case.id!r}: {exc}")
        actual = list(ctx.result.tool_calls)
        matched = _match(expected, actual, params.order)
        allow_extra = params.allow_extra and params.order != "exact"
        extra = len(actual) - len(matched)
        complete = len(matched) == len(expected)
        passed = complete and (allow_extra or extra == 0)
        denominator = len(expected) if allow_extra else max(len(expected), len(actual))
        score = 1.0 if denominator == 0 else len(matched) / denominator
        made = [call.name for call in actual]
        if passed:
            explanation = f"{len(matched)}/{len(expected)} expected tool calls ({params.order})"
        elif not complete:
            missing = [str(e) for i, e in enumerate(expected) if i not in matched]
            explanation = f"missing {missing} ({params.order}); calls made: {made}"
        else:
            explanation = f"{extra} unexpected tool call(s); calls made: {made}"
        return self.verdict(passed, score, explanation, calls=made)


def _match(
    expected: Sequence[_ExpectedCall], actual: Sequence[ToolCallRecord], order: Order
) -> dict[int, int]:
    """Expected index -> actual index for the calls that matched under ``order``."""
    if order == "exact":
        return {
            i: i for i, (e, a) in enumerate(zip(expected, actual, strict=False)) if e.matches(a)
        }
    if order == "in_order":
        # Earliest-match greedy is optimal for matching a subsequence.
        matched: dict[int, int] = {}
        position = 0
        for i, exp in enumerate(expected):
            for j in range(position, len(actual)):
                if exp.matches(actual[j]):
                    matched[i] = j
                    position = j + 1
                    break
        return matched
    return _bipartite(expected, actual)


def _bipartite(
    expected: Sequence[_ExpectedCall], actual: Sequence[ToolCallRecord]
) -> dict[int, int]:
    """A maximum matching (augmenting paths): each actual call satisfies one expected call."""
    edges = [[j for j, call in enumerate(actual) if exp.matches(call)] for exp in expected]
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in edges[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(expected)):
        augment(i, set())
    return {i: j for j, i in owner.items()}


class ProgressParams(Params):
    """Parameters of `progress_rate`."""

    threshold: float = Field(default=1.0, ge=0.0, le=1.0, description="pass when progress >= this")


class ProgressRate(BaseEvaluator[ProgressParams]):
    """AgentBoard progress rate: sub-goals reached / sub-goals (``expected.sub_goals``).

    A sub-goal is a tool name (that tool was called), ``{tool, arguments}`` (called
    with at least these arguments), ``{contains: text}`` (the output says it), or
    ``{state: {dotted.path: value}}`` (the final state holds these values).
    """

    params_model = ProgressParams
    description = "fraction of expected.sub_goals reached"

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        goals = ctx.case.expected.get("sub_goals")
        if not goals:
            return self.skip("the case has no expected.sub_goals")
        if not isinstance(goals, list):
            return self.error(f"case {ctx.case.id!r}: expected.sub_goals must be a list")
        reached: list[str] = []
        missed: list[str] = []
        for index, goal in enumerate(goals):
            try:
                hit = _goal_reached(goal, ctx)
            except ValueError as exc:
                return self.error(f"case {ctx.case.id!r}: expected.sub_goals[{index}]: {exc}")
            (reached if hit else missed).append(_goal_label(goal))
        progress = len(reached) / len(goals)
        explanation = f"progress {len(reached)}/{len(goals)}"
        if missed:
            explanation += f"; not reached: {missed}"
        return self.verdict(progress >= params.threshold, progress, explanation, missed=missed)


def _goal_label(goal: Any) -> str:
    return goal if isinstance(goal, str) else output_text(goal)


def _goal_reached(goal: Any, ctx: EvalContext) -> bool:
    calls = ctx.result.tool_calls
    if isinstance(goal, str):
        return any(call.name == goal for call in calls)
    if not isinstance(goal, Mapping) or len(set(goal) & {"tool", "contains", "state"}) != 1:
        raise ValueError("a sub-goal is a tool name, {tool, arguments}, {contains} or {state}")
    if "tool" in goal:
        arguments = goal.get("arguments") or {}
        return any(
            call.name == goal["tool"] and subset_match(arguments, dict(call.arguments))
            for call in calls
        )
    if "contains" in goal:
        return str(goal["contains"]).casefold() in output_text(ctx.result.output).casefold()
    wanted = goal["state"]
    if not isinstance(wanted, Mapping):
        raise ValueError("{state: ...} takes a mapping of dotted paths to values")
    return all(_lookup(ctx.result.state, path) == (True, value) for path, value in wanted.items())


def _lookup(state: Any, path: str) -> tuple[bool, Any]:
    node = state
    for part in str(path).split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


class GroundingParams(Params):
    """Parameters of `grounding_accuracy`."""

    threshold: float = Field(default=1.0, ge=0.0, le=1.0)
    tools: list[str] | None = Field(
        default=None,
        description="valid tool names; else expected.allowed_tools; else the config's "
        "enabled tools",
    )
    schemas: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="JSON schema of each tool's arguments"
    )

    @field_validator("schemas")
    @classmethod
    def _valid_schemas(cls, schemas: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from jsonschema import SchemaError, validators

        for tool, schema in schemas.items():
            try:
                validators.validator_for(schema).check_schema(schema)
            except SchemaError as exc:
                raise ValueError(f"invalid JSON schema for tool {tool!r}: {exc.message}") from None
        return schemas


class GroundingAccuracy(BaseEvaluator[GroundingParams]):
    """AgentBoard grounding accuracy: valid actions / all actions.

    A tool call is valid when the tool is allowed (if an allow-list is known), its
    arguments validate (if a schema is given), and it did not end with status ``error``.
    A run without tool calls is skipped: the ratio is undefined.
    """

    params_model = GroundingParams
    description = "fraction of tool calls that were valid"

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        calls = ctx.result.tool_calls
        if not calls:
            return self.skip("no tool calls: grounding accuracy is undefined")
        allowed = _allowed_tools(params.tools, ctx)
        invalid: list[str] = []
        for call in calls:
            problem = _invalid(call, allowed, params.schemas.get(call.name))
            if problem:
                invalid.append(f"{call.name}: {problem}")
        accuracy = (len(calls) - len(invalid)) / len(calls)
        explanation = f"{len(calls) - len(invalid)}/{len(calls)} valid actions"
        if invalid:
            explanation += f"; invalid: {invalid[:5]}"
        return self.verdict(accuracy >= params.threshold, accuracy, explanation, invalid=invalid)


def _invalid(call: ToolCallRecord, allowed: set[str] | None, schema: Any) -> str:
    if allowed is not None and call.name not in allowed:
        return "not an allowed tool"
    if call.status == "error":
        return "the call failed"
    if schema is not None:
        ok, message = schema_match(schema, dict(call.arguments))
        if not ok:
            return f"invalid arguments: {message}"
    return ""


def _allowed_tools(explicit: list[str] | None, ctx: EvalContext) -> set[str] | None:
    if explicit is not None:
        return set(explicit)
    from_case = ctx.case.expected.get("allowed_tools")
    if from_case is not None:
        return {str(name) for name in from_case}
    return enabled_tools(ctx.config)


def enabled_tools(config: Any) -> set[str] | None:
    """Names of the tools an AgentConfig (model or dict) enables, or None if it names none."""
    tools = _field(config, "tools")
    if not isinstance(tools, Mapping) or not tools:
        return None
    return {name for name, settings in tools.items() if _field(settings, "enabled") is not False}


def _field(obj: Any, name: str) -> Any:
    getter: Callable[[str], Any] = (
        obj.get if isinstance(obj, Mapping) else lambda key: getattr(obj, key, None)
    )
    return getter(name)

"""Deterministic output evaluators: exact match, contains, regex, JSON schema, numbers, edits."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, field_validator

from tuneloop.evals.evaluators.base import (
    BaseEvaluator,
    EvalContext,
    Params,
    Score,
    ThresholdParams,
    output_text,
)

_SPACES = re.compile(r"\s+")
# A number standing alone: not the digits of an identifier such as "A-1003" or "v2".
_NUMBER = re.compile(
    r"(?<![\w.-])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w-])"
)


def _normalize(text: str, *, case_sensitive: bool, collapse_whitespace: bool) -> str:
    if collapse_whitespace:
        text = _SPACES.sub(" ", text).strip()
    return text if case_sensitive else text.casefold()


def _references(ctx: EvalContext) -> list[Any] | None:
    if not ctx.case.expected.has("output"):
        return None
    reference = ctx.case.expected.get("output")
    return (
        list(reference)
        if isinstance(reference, list)
        and reference
        and all(isinstance(item, str) for item in reference)
        else [reference]
    )


class ExactMatchParams(Params):
    """Parameters of `exact_match`."""

    case_sensitive: bool = True
    collapse_whitespace: bool = Field(
        default=True, description="strip and collapse runs of whitespace before comparing"
    )


class ExactMatch(BaseEvaluator[ExactMatchParams]):
    """The output equals the expected output (or one of a list of expected strings)."""

    params_model = ExactMatchParams
    description = "output equals expected.output"

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        references = _references(ctx)
        if references is None:
            return self.skip("the case has no expected output")
        output = ctx.result.output
        for reference in references:
            if isinstance(reference, str) and isinstance(output, str):
                same = _normalize(
                    output,
                    case_sensitive=params.case_sensitive,
                    collapse_whitespace=params.collapse_whitespace,
                ) == _normalize(
                    reference,
                    case_sensitive=params.case_sensitive,
                    collapse_whitespace=params.collapse_whitespace,
                )
            else:
                same = output == reference
            if same:
                return self.verdict(True, 1.0, "output matches the expected output")
        return self.verdict(
            False,
            0.0,
            f"expected {output_text(references[0])[:200]!r}, got {output_text(output)[:200]!r}",
        )


class ContainsParams(Params):
    """Parameters of `contains`; without ``values`` the case's ``expected.contains`` is used."""

    values: list[str] | None = None
    forbidden: list[str] | None = Field(
        default=None, description="substrings that must not appear (else expected.not_contains)"
    )
    mode: Literal["all", "any"] = "all"
    case_sensitive: bool = False


class Contains(BaseEvaluator[ContainsParams]):
    """The output contains the expected substrings (and none of the forbidden ones)."""

    params_model = ContainsParams
    description = "output contains expected.contains and none of expected.not_contains"

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        wanted = _strings(params.values, ctx.case.expected.get("contains"))
        banned = _strings(params.forbidden, ctx.case.expected.get("not_contains"))
        if not wanted and not banned:
            return self.skip("no expected substrings (expected.contains / not_contains)")
        text = _normalize(
            output_text(ctx.result.output),
            case_sensitive=params.case_sensitive,
            collapse_whitespace=False,
        )

        def found(needle: str) -> bool:
            return (needle if params.case_sensitive else needle.casefold()) in text

        missing = [needle for needle in wanted if not found(needle)]
        present_banned = [needle for needle in banned if found(needle)]
        hits = len(wanted) - len(missing)
        score = 1.0
        if wanted:
            score = (hits / len(wanted)) if params.mode == "all" else float(hits > 0)
        wanted_ok = not missing if params.mode == "all" else (hits > 0 or not wanted)
        if present_banned:
            score = 0.0
        problems = []
        if not wanted_ok:
            problems.append(f"missing {missing}")
        if present_banned:
            problems.append(f"contains forbidden {present_banned}")
        passed = wanted_ok and not present_banned
        return self.verdict(
            passed,
            score,
            "; ".join(problems) or f"all {len(wanted)} expected substrings present",
            missing=missing,
            forbidden_found=present_banned,
        )


def _strings(explicit: Sequence[str] | None, from_case: Any) -> list[str]:
    if explicit is not None:
        return list(explicit)
    if from_case is None:
        return []
    if isinstance(from_case, str):
        return [from_case]
    return [str(item) for item in from_case]


class RegexParams(Params):
    """Parameters of `regex`; without ``pattern`` the case's ``expected.regex`` is used."""

    pattern: str | None = None
    fullmatch: bool = False
    ignore_case: bool = False
    multiline: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return pattern


class Regex(BaseEvaluator[RegexParams]):
    """The output matches a regular expression (searched, or the whole output)."""

    params_model = RegexParams
    description = "output matches expected.regex"

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        pattern = params.pattern or ctx.case.expected.get("regex")
        if not pattern:
            return self.skip("no pattern (params.pattern or expected.regex)")
        flags = (re.IGNORECASE if params.ignore_case else 0) | (
            re.MULTILINE if params.multiline else 0
        )
        try:
            compiled = re.compile(str(pattern), flags)
        except re.error as exc:
            return self.error(f"case {ctx.case.id!r}: invalid expected.regex {pattern!r}: {exc}")
        text = output_text(ctx.result.output)
        match = compiled.fullmatch(text) if params.fullmatch else compiled.search(text)
        if match:
            return self.verdict(True, 1.0, f"matches /{pattern}/", match=match.group(0)[:200])
        return self.verdict(False, 0.0, f"no match for /{pattern}/ in {text[:200]!r}")


class JsonSchemaParams(Params):
    """Parameters of `json_schema`; without ``schema`` the case's ``expected.schema`` is used."""

    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    parse_strings: bool = Field(
        default=True, description="parse a string output as JSON before validating it"
    )

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            _check_schema(schema)
        return schema


def _check_schema(schema: Any) -> None:
    from jsonschema import SchemaError, validators

    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"invalid JSON schema: {exc.message}") from None


class JsonSchema(BaseEvaluator[JsonSchemaParams]):
    """The output (parsed from JSON when it is a string) validates against a JSON schema."""

    params_model = JsonSchemaParams
    description = "output validates against expected.schema"

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        from jsonschema import SchemaError, validators

        params = self.params
        schema = params.json_schema or ctx.case.expected.get("schema")
        if schema is None:
            return self.skip("no schema (params.schema or expected.schema)")
        value = ctx.result.output
        if params.parse_strings and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                return self.verdict(False, 0.0, f"output is not JSON: {exc.msg}")
        try:
            validator = validators.validator_for(schema)(schema)
            errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        except SchemaError as exc:
            return self.error(f"case {ctx.case.id!r}: invalid expected.schema: {exc.message}")
        if not errors:
            return self.verdict(True, 1.0, "output validates against the schema")
        first = errors[0]
        where = "/" + "/".join(str(part) for part in first.absolute_path)
        return self.verdict(
            False,
            0.0,
            f"{len(errors)} schema error(s); at {where}: {first.message}",
            errors=[error.message for error in errors[:10]],
        )


class NumericParams(Params):
    """Parameters of `numeric`: pass when |output - expected| <= max(abs_tol, rel_tol*|exp|)."""

    abs_tol: float = Field(default=0.0, ge=0.0)
    rel_tol: float = Field(default=1e-9, ge=0.0)
    field: str | None = Field(
        default=None, description="read the number from this key of a mapping output"
    )


class Numeric(BaseEvaluator[NumericParams]):
    """The number in the output is within a tolerance of the expected number."""

    params_model = NumericParams
    description = "the output's number is within tolerance of expected.output"

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        reference = ctx.case.expected.get("output")
        if isinstance(reference, bool) or not isinstance(reference, int | float):
            return self.skip("the case's expected output is not a number")
        expected = float(reference)
        output = ctx.result.output
        if params.field is not None:
            output = output.get(params.field) if isinstance(output, dict) else None
        actual = _number(output)
        if actual is None:
            return self.verdict(
                False, 0.0, f"no number in the output {output_text(output)[:200]!r}"
            )
        tolerance = max(params.abs_tol, params.rel_tol * abs(expected))
        error = abs(actual - expected)
        passed = error <= tolerance
        return self.verdict(
            passed,
            1.0 if passed else 0.0,
            f"{actual} vs expected {expected} (difference {error:g}, tolerance {tolerance:g})",
            actual=actual,
            expected=expected,
        )


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        for match in _NUMBER.finditer(value):
            token = match.group(0)
            if any(ch.isdigit() for ch in token):
                try:
                    return float(token.replace(",", ""))
                except ValueError:
                    continue
    return None


class EditDistanceParams(ThresholdParams):
    """Parameters of `edit_distance`: similarity = 1 - levenshtein / longer length."""

    threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    max_distance: int | None = Field(
        default=None, ge=0, description="pass on an absolute distance instead of a similarity"
    )
    case_sensitive: bool = True


class EditDistance(BaseEvaluator[EditDistanceParams]):
    """Levenshtein distance between the output and the expected output."""

    params_model = EditDistanceParams
    description = "normalized Levenshtein similarity to expected.output"

    async def evaluate(self, ctx: EvalContext) -> Score:
        """Score one trial."""
        params = self.params
        references = _references(ctx)
        if references is None:
            return self.skip("the case has no expected output")
        text = _normalize(
            output_text(ctx.result.output),
            case_sensitive=params.case_sensitive,
            collapse_whitespace=False,
        )
        best: tuple[float, int, str] | None = None
        for reference in references:
            ref = _normalize(
                output_text(reference),
                case_sensitive=params.case_sensitive,
                collapse_whitespace=False,
            )
            distance = levenshtein(text, ref)
            longer = max(len(text), len(ref))
            similarity = 1.0 if longer == 0 else 1.0 - distance / longer
            if best is None or similarity > best[0]:
                best = (similarity, distance, ref)
        assert best is not None
        similarity, distance, _ = best
        if params.max_distance is not None:
            passed = distance <= params.max_distance
            rule = f"distance {distance} (max {params.max_distance})"
        else:
            passed = similarity >= params.threshold
            rule = f"similarity {similarity:.3f} (threshold {params.threshold})"
        return self.verdict(passed, similarity, rule, distance=distance)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions each cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(
                min(
                    previous[j] + 1,
                    current[j - 1] + 1,
                    previous[j - 1] + (char_a != char_b),
                )
            )
        previous = current
    return previous[-1]

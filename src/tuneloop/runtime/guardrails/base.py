"""The guardrail protocol and the pipeline that runs guardrails at each hop of a run.

A hop is where content crosses a boundary: the user's ``input``, a tool call's
``tool_args``, a tool's ``tool_output``, the model's final ``output``. Each guardrail
returns a verdict (allow, redact, block, require_approval) with a reason; the pipeline
chains redactions, stops at a block, and reports the most severe verdict. With a run,
each check is a guardrail span carrying its verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, Protocol, get_args

from tuneloop import semconv
from tuneloop.config.model import Hop
from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.sdk.spans import Run

Verdict = Literal["allow", "redact", "block", "require_approval"]
HOPS: tuple[Hop, ...] = get_args(Hop)
_SEVERITY: Mapping[Verdict, int] = MappingProxyType(
    {"allow": 0, "redact": 1, "require_approval": 2, "block": 3}
)


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a guardrail found: its kind and where (``path`` inside structured content)."""

    kind: str
    start: int
    end: int
    path: str = ""


@dataclass(frozen=True, slots=True)
class Subject:
    """What a guardrail looks at.

    Attributes:
        hop: where in the run.
        content: text at ``input`` and ``output``; the arguments (a dict) at
            ``tool_args``; the tool's data (any JSON) at ``tool_output``.
        tool: the tool's name at the tool hops.
    """

    hop: Hop
    content: Any
    tool: str | None = None


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """One guardrail's verdict.

    Attributes:
        verdict: allow, redact, block or require_approval.
        reason: why, in words safe to log: it names what was found, never the value.
        content: the content with redactions applied (``redact`` only).
        findings: what was found.
    """

    verdict: Verdict
    reason: str = ""
    content: Any = None
    findings: tuple[Finding, ...] = ()

    @classmethod
    def allow(cls) -> GuardrailResult:
        """Nothing to object to."""
        return cls("allow")


class GuardrailCheck(Protocol):
    """A guardrail: built-in, or a team's own (an LLM judge, Presidio...).

    Implement ``name``, ``hops`` and ``check``; give instances to `GuardrailPipeline`,
    or a factory to `build_pipeline` under ``custom=`` for ``kind: custom`` specs.
    """

    @property
    def name(self) -> str:
        """The guardrail's name, as in the config (``tuneloop.guardrail.name``)."""
        ...

    @property
    def hops(self) -> frozenset[Hop]:
        """The hops it runs at."""
        ...

    async def check(self, subject: Subject) -> GuardrailResult:
        """Judge ``subject``; a redact verdict returns the redacted content."""
        ...


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """What the pipeline decided at one hop.

    Attributes:
        verdict: the most severe verdict of the checks that ran.
        content: the content after every redaction (the input when nothing was redacted).
        results: each check's name and result, in the order they ran.
    """

    verdict: Verdict
    content: Any
    results: tuple[tuple[str, GuardrailResult], ...] = ()

    @property
    def reason(self) -> str:
        """The reasons of every check that did not allow, ``name: reason``, joined by ``; ``."""
        return "; ".join(
            f"{name}: {result.reason}" for name, result in self.results if result.verdict != "allow"
        )

    @property
    def blocked(self) -> bool:
        """Whether a check blocked."""
        return self.verdict == "block"

    @property
    def needs_approval(self) -> bool:
        """Whether a check asked for a human's approval (and none blocked)."""
        return self.verdict == "require_approval"


class GuardrailPipeline:
    """Runs the guardrails configured for a hop, in order.

    Redactions chain (each check sees the content as redacted so far); the first
    block stops the hop. An exception from a check blocks too: a guardrail that
    cannot decide must not let content through.

    Args:
        checks: the guardrails, in the order they run.
    """

    def __init__(self, checks: Sequence[GuardrailCheck] = ()) -> None:
        names = [check.name for check in checks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"guardrail names must be unique; used twice: {duplicates}")
        for check in checks:
            unknown = set(check.hops) - set(HOPS)
            if unknown:
                raise ConfigError(
                    f"guardrail {check.name!r} names unknown hops {sorted(unknown)}; "
                    f"hops are {HOPS}"
                )
        self._checks = tuple(checks)

    @property
    def checks(self) -> tuple[GuardrailCheck, ...]:
        """Every guardrail, in order."""
        return self._checks

    def at(self, hop: Hop) -> tuple[GuardrailCheck, ...]:
        """The guardrails that run at ``hop``."""
        return tuple(check for check in self._checks if hop in check.hops)

    async def run(
        self, hop: Hop, content: Any, *, tool: str | None = None, run: Run | None = None
    ) -> PipelineResult:
        """Run the guardrails of ``hop`` over ``content``.

        Args:
            hop: where in the run.
            content: what crosses the hop (text, or JSON data at the tool hops).
            tool: the tool's name at the tool hops.
            run: trace each check as a guardrail span of this run.
        """
        if hop not in HOPS:
            raise InvalidInputError(f"unknown guardrail hop {hop!r}; hops are {HOPS}")
        verdict: Verdict = "allow"
        results: list[tuple[str, GuardrailResult]] = []
        for check in self.at(hop):
            result = await self._check(check, Subject(hop, content, tool), run)
            results.append((check.name, result))
            if result.verdict == "redact":
                content = result.content
            if _SEVERITY[result.verdict] > _SEVERITY[verdict]:
                verdict = result.verdict
            if verdict == "block":
                break
        return PipelineResult(verdict, content, tuple(results))

    async def _check(
        self, check: GuardrailCheck, subject: Subject, run: Run | None
    ) -> GuardrailResult:
        if run is None:
            return await _safe_check(check, subject)
        with run.guardrail(check.name) as span:
            span.span.set_attribute(semconv.TL_GUARDRAIL_HOP, subject.hop)
            if subject.tool is not None:
                span.span.set_attribute(semconv.GEN_AI_TOOL_NAME, subject.tool)
            result = await _safe_check(check, subject)
            span.verdict(result.verdict)
            if result.reason:
                span.span.set_attribute(semconv.TL_GUARDRAIL_REASON, result.reason)
            return result


async def _safe_check(check: GuardrailCheck, subject: Subject) -> GuardrailResult:
    try:
        result = await check.check(subject)
    except Exception as exc:
        # Fail closed: a guardrail that cannot decide must not let content through.
        return GuardrailResult(
            "block", f"the guardrail failed ({type(exc).__name__}: {exc}); blocked to be safe"
        )
    if result.verdict not in _SEVERITY:
        return GuardrailResult(
            "block", f"the guardrail returned unknown verdict {result.verdict!r}; blocked"
        )
    if result.verdict == "redact" and result.content is None and subject.content is not None:
        return GuardrailResult("block", "the guardrail redacted without returning the content")
    return result

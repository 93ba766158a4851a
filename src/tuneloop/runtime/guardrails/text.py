"""Detector-based guardrails: find spans in every string of the content, then act.

A detector maps one string to its findings. `DetectorGuardrail` runs it over text or
over every string inside structured content (tool arguments, tool output), then
allows, redacts the findings in place, blocks, or asks for approval, as configured.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from tuneloop.config.model import GuardrailAction, Hop
from tuneloop.runtime.guardrails.base import Finding, GuardrailResult, Subject

Detector = Callable[[str], list[Finding]]


def iter_strings(content: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside ``content`` with its path (``order.items[0].note``; ``""`` for text)."""
    if isinstance(content, str):
        yield path, content
    elif isinstance(content, dict):
        for key, value in content.items():
            yield from iter_strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(content, list | tuple):
        for index, value in enumerate(content):
            yield from iter_strings(value, f"{path}[{index}]")


def map_strings(content: Any, fn: Callable[[str, str], str], path: str = "") -> Any:
    """A copy of ``content`` with every string replaced by ``fn(path, text)``."""
    if isinstance(content, str):
        return fn(path, content)
    if isinstance(content, dict):
        return {
            key: map_strings(value, fn, f"{path}.{key}" if path else str(key))
            for key, value in content.items()
        }
    if isinstance(content, list | tuple):
        return [map_strings(value, fn, f"{path}[{index}]") for index, value in enumerate(content)]
    return content


def non_overlapping(findings: Iterable[Finding]) -> list[Finding]:
    """Findings sorted by position; of overlapping ones, the one found first is kept."""
    kept: list[Finding] = []
    for finding in findings:
        if all(finding.end <= other.start or finding.start >= other.end for other in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


def redact(text: str, findings: Sequence[Finding], token: Callable[[Finding], str]) -> str:
    """``text`` with each finding's span replaced by ``token(finding)``."""
    parts: list[str] = []
    position = 0
    for finding in non_overlapping(findings):
        parts += [text[position : finding.start], token(finding)]
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)


def summarize(findings: Iterable[Finding]) -> str:
    """``email x2, iban``: what was found, never the values."""
    counts = Counter(finding.kind for finding in findings)
    return ", ".join(
        f"{kind} x{count}" if count > 1 else kind for kind, count in sorted(counts.items())
    )


def redaction_token(finding: Finding) -> str:
    """The default replacement: ``[REDACTED:email]``."""
    return f"[REDACTED:{finding.kind}]"


class DetectorGuardrail:
    """A guardrail that acts on what a detector finds.

    Args:
        name: the guardrail's name.
        hops: where it runs.
        action: what to do when something is found.
        detector: finds spans in one string.
        what: how the reason names findings (``personal data``, ``prompt injection``).
        token: what a redacted span becomes.
    """

    def __init__(
        self,
        name: str,
        hops: Iterable[Hop],
        action: GuardrailAction,
        detector: Detector,
        *,
        what: str,
        token: Callable[[Finding], str] = redaction_token,
    ) -> None:
        self._name = name
        self._hops = frozenset(hops)
        self._action = action
        self._detector = detector
        self._what = what
        self._token = token

    @property
    def name(self) -> str:
        """The guardrail's name."""
        return self._name

    @property
    def hops(self) -> frozenset[Hop]:
        """Where it runs."""
        return self._hops

    def find(self, content: Any) -> list[Finding]:
        """Everything the detector finds in ``content``, with paths."""
        return [
            replace(finding, path=path)
            for path, text in iter_strings(content)
            for finding in self._detector(text)
        ]

    async def check(self, subject: Subject) -> GuardrailResult:
        """Allow when nothing is found; otherwise redact, block or ask, as configured."""
        findings = self.find(subject.content)
        if not findings:
            return GuardrailResult.allow()
        where = subject.hop if subject.tool is None else f"{subject.hop} of tool {subject.tool!r}"
        reason = f"{self._what} in {where}: {summarize(findings)}"
        if self._action != "redact":
            return GuardrailResult(self._action, reason, findings=tuple(findings))
        by_path: defaultdict[str, list[Finding]] = defaultdict(list)
        for finding in findings:
            by_path[finding.path].append(finding)
        redacted = map_strings(
            subject.content, lambda path, text: redact(text, by_path.get(path, ()), self._token)
        )
        return GuardrailResult("redact", f"redacted {reason}", redacted, tuple(findings))

"""Prompt-injection heuristics for user input and, above all, tool output.

Text a tool fetched (a web page, an email, a ticket) is data, yet a model reads it
as it reads instructions. These patterns catch the common attacks: telling the model
to ignore its instructions, overriding its role, hiding instructions in tags or
invisible characters, and asking it to leak or send data somewhere. They are
heuristics: pair them with a model-based judge (a ``custom`` guardrail) where it matters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Literal, get_args

from tuneloop.errors import ConfigError
from tuneloop.runtime.guardrails.base import Finding
from tuneloop.runtime.guardrails.text import Detector, non_overlapping

InjectionKind = Literal["ignore_instructions", "role_override", "hidden_block", "exfiltration"]
INJECTION_KINDS: tuple[InjectionKind, ...] = get_args(InjectionKind)

_TARGETS = (
    r"(?:instructions?|prompts?|rules|directions|directives|guidelines|guardrails|"
    r"constraints|context|messages?|programming)"
)
_SECRETS = (
    r"(?:system\s+prompt|(?:hidden|initial|original|secret|system)\s+(?:instructions|prompt)|"
    r"your\s+(?:initial\s+|original\s+|hidden\s+)?prompt|"
    r"api[\s_-]?keys?|passwords?|credentials|secret\s+keys?|access\s+tokens?)"
)
_DATA = (
    r"(?:conversation|chat\s+history|(?:all\s+)?(?:the\s+)?(?:user(?:'s)?\s+)?(?:data|messages|"
    r"records|emails|files)|" + _SECRETS + r")"
)
_PATTERNS: Mapping[InjectionKind, tuple[re.Pattern[str], ...]] = MappingProxyType(
    {
        "ignore_instructions": (
            re.compile(
                r"(?i)\b(?:ignore|disregard|forget|override|bypass|skip|drop)\s+(?:(?:all|any|every|"
                r"the|your|my|of|these|those|previous|previously|prior|above|earlier|preceding|"
                r"system|existing|original|initial|safety|developer|given)\s+){0,4}"
                + _TARGETS
                + r"\b"
            ),
            re.compile(
                r"(?i)\b(?:ignore|disregard|forget)\s+(?:everything|anything|all|what)\s+"
                r"(?:above|before|prior|previously|earlier|you\s+were\s+told|you\s+have\s+been\s+told)"
            ),
            re.compile(r"(?i)\bdo\s+not\s+follow\b[^.\n]{0,30}?\b" + _TARGETS + r"\b"),
            re.compile(r"(?i)\bnew\s+(?:system\s+)?instructions?\s*:"),
        ),
        "role_override": (
            re.compile(r"(?i)\byou\s+are\s+(?:now|no\s+longer)\b"),
            re.compile(
                r"(?i)\b(?:act|behave|pretend|roleplay|respond)\s+(?:as|like)\s+(?:if\s+you\s+were\s+)?"
                r"(?:an?\s+)?(?:unrestricted|unfiltered|jailbroken|uncensored|evil|DAN\b|"
                r"(?:the\s+)?(?:system|developer|root|admin(?:istrator)?)\b)"
            ),
            re.compile(r"(?i)\b(?:developer|god|jailbreak|DAN)\s+mode\b"),
            re.compile(r"(?im)^\s*(?:#{1,3}\s*)?(?:system|developer)\s*(?:prompt|message)?\s*:"),
            re.compile(r"<\|(?:im_start|im_end|system|endoftext)\|>|\[/?INST\]|<</?SYS>>"),
        ),
        "hidden_block": (
            re.compile(
                r"(?is)<\s*(important|system|instructions?|admin|secret|hidden|assistant)\b[^>]*>"
                r".*?<\s*/\s*\1\s*>"
            ),
            re.compile(
                r"(?is)<!--(?:(?!-->).)*?\b(?:ignore|instruction|assistant|system|must|you\s+are)\b"
                r"(?:(?!-->).)*-->"
            ),
            # Unicode tag characters render as nothing but models read them.
            re.compile("[\U000e0000-\U000e007f]+"),
            re.compile("[\u200b-\u200f\u2060\ufeff]{3,}"),
        ),
        "exfiltration": (
            re.compile(r"(?i)!\[[^\]]*\]\(\s*https?://[^)\s]*\?[^)\s]*=[^)\s]*\)"),
            re.compile(
                r"(?i)\b(?:send|post|forward|upload|email|transmit|exfiltrate|copy)\b[^.\n]{0,40}?"
                r"\b"
                + _DATA
                + r"\b[^.\n]{0,40}?\b(?:to|at|into)\b\s+(?:https?://|[\w.+-]+@[\w-]+\.)"
            ),
            re.compile(
                r"(?i)\b(?:reveal|print|show|repeat|output|leak|disclose|tell\s+me|what\s+(?:is|are))"
                r"\b[^.\n]{0,30}?\b" + _SECRETS
            ),
            re.compile(r"(?i)\b(?:curl|wget|invoke-webrequest)\s+(?:-\S+\s+)*https?://"),
        ),
    }
)


def injection_detector(
    kinds: Iterable[InjectionKind] = INJECTION_KINDS, extra_patterns: Sequence[str] = ()
) -> Detector:
    """A detector for the chosen kinds, plus ``extra_patterns`` (regexes, kind ``custom``).

    Raises:
        ConfigError: an extra pattern is not a valid regular expression.
    """
    chosen = [
        (kind, pattern)
        for kind in INJECTION_KINDS
        if kind in set(kinds)
        for pattern in _PATTERNS[kind]
    ]
    extra: list[re.Pattern[str]] = []
    for source in extra_patterns:
        try:
            extra.append(re.compile(source))
        except re.error as exc:
            raise ConfigError(
                f"injection guardrail pattern {source!r} is not a valid regular expression: {exc}"
            ) from None

    def detect(text: str) -> list[Finding]:
        found = [
            Finding(kind, match.start(), match.end())
            for kind, pattern in chosen
            for match in pattern.finditer(text)
        ]
        found += [
            Finding("custom", match.start(), match.end())
            for pattern in extra
            for match in pattern.finditer(text)
        ]
        return non_overlapping(found)

    return detect


def removal_token(finding: Finding) -> str:
    """What a redacted injection becomes: a marker the model can see is not an instruction."""
    return f"[REMOVED:prompt_injection:{finding.kind}]"

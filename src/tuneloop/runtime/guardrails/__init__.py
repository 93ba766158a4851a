"""Guardrails: checks at each hop of a run (input, tool arguments, tool output, output).

Built-ins cover personal data and secrets (`pii`), prompt injection (`injection`),
denied topics, a tool allowlist and length limits; a team adds its own through the
`GuardrailCheck` protocol. `build_pipeline` turns an `AgentConfig`'s ``guardrails``
section into a `GuardrailPipeline`.
"""

from tuneloop.runtime.guardrails.base import (
    Finding,
    GuardrailCheck,
    GuardrailPipeline,
    GuardrailResult,
    PipelineResult,
    Subject,
    Verdict,
)
from tuneloop.runtime.guardrails.injection import injection_detector
from tuneloop.runtime.guardrails.limits import LengthLimit, ToolAllowlist
from tuneloop.runtime.guardrails.pii import iban_valid, luhn_valid, pii_detector
from tuneloop.runtime.guardrails.registry import GuardrailFactory, build_guardrail, build_pipeline
from tuneloop.runtime.guardrails.text import DetectorGuardrail
from tuneloop.runtime.guardrails.topics import topic_detector

__all__ = [
    "DetectorGuardrail",
    "Finding",
    "GuardrailCheck",
    "GuardrailFactory",
    "GuardrailPipeline",
    "GuardrailResult",
    "LengthLimit",
    "PipelineResult",
    "Subject",
    "ToolAllowlist",
    "Verdict",
    "build_guardrail",
    "build_pipeline",
    "iban_valid",
    "injection_detector",
    "luhn_valid",
    "pii_detector",
    "topic_detector",
]

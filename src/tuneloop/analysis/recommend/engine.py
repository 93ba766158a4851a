"""Run every analyzer over a window and collect one report."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tuneloop.analysis.recommend.common import Options, pct
from tuneloop.analysis.recommend.context import Context
from tuneloop.analysis.recommend.cost import analyze_cost
from tuneloop.analysis.recommend.decisions import analyze_decisions
from tuneloop.analysis.recommend.findings import AnalyzerResult, Finding, Report
from tuneloop.analysis.recommend.guardrails import analyze_guardrails
from tuneloop.analysis.recommend.latency import analyze_latency
from tuneloop.analysis.recommend.prompts import Optimizer, optimize_prompts
from tuneloop.analysis.recommend.tools import analyze_tools
from tuneloop.analysis.recommend.window import TraceWindow
from tuneloop.config.model import AgentConfig

Analyzer = Callable[[Context], AnalyzerResult]
ANALYZERS: tuple[Analyzer, ...] = (
    analyze_tools,
    analyze_latency,
    analyze_decisions,
    analyze_cost,
    analyze_guardrails,
)


def _preflight(ctx: Context) -> tuple[bool, list[str]]:
    """Whether the window can be analyzed, and what to say about it either way."""
    window = ctx.window
    notes: list[str] = []
    version = f" version {window.version}" if window.version else ""
    if not window.runs:
        return False, [f"agent {window.agent!r}{version} has no runs in the window: no traffic"]
    if len(window.runs) < ctx.options.min_runs:
        notes.append(
            f"too few runs: {len(window.runs)} in the window, {ctx.options.min_runs} needed; "
            "nothing proposed (widen --window or wait for traffic)"
        )
        return False, notes
    if window.mean_sample_rate < 0.999:
        notes.append(
            f"runs are head-sampled at about {pct(window.mean_sample_rate)}: {len(window.runs)} "
            f"observed stand for about {window.weighted_runs:,.0f}"
        )
    if window.runs_capped:
        notes.append(f"the window was cut to its {len(window.runs):,} most recent runs")
    if ctx.config is None:
        notes.append(
            f"the config of{version or ' this version'} is not in the config store: patches "
            "assume every default (push the config to get exact patches)"
        )
    return True, notes


def _report(ctx: Context, result: AnalyzerResult, notes: list[str]) -> Report:
    kept: dict[str, Finding] = {}
    for finding in result.findings:
        if not ctx.keep(finding):
            notes.append(f"{finding.title} — dropped: confidence {finding.confidence:.2f}")
            continue
        if (
            finding.fingerprint not in kept
            or kept[finding.fingerprint].confidence < finding.confidence
        ):
            kept[finding.fingerprint] = finding
    window = ctx.window
    return Report(
        agent=window.agent,
        version=window.version,
        since_ms=window.since_ms,
        until_ms=window.until_ms,
        runs=len(window.runs),
        weighted_runs=window.weighted_runs,
        findings=tuple(sorted(kept.values(), key=lambda f: (-f.confidence, f.fingerprint))),
        notes=(*notes, *result.notes),
        discarded=result.discarded,
    )


def analyze(
    window: TraceWindow, config: AgentConfig | None, *, options: Options | None = None
) -> Report:
    """Every deterministic analyzer over ``window``; pure and synchronous.

    Args:
        window: the facts (see `tuneloop.analysis.recommend.window`).
        config: the config of the window's version, or None when it is unknown.
        options: thresholds and prices.
    """
    ctx = Context(window, config, options or Options())
    ok, notes = _preflight(ctx)
    if not ok:
        return _report(ctx, AnalyzerResult(), notes)
    result = AnalyzerResult()
    for analyzer in ANALYZERS:
        result += analyzer(ctx)
    return _report(ctx, result, notes)


async def analyze_all(
    window: TraceWindow,
    config: AgentConfig | None,
    *,
    options: Options | None = None,
    optimizer: Optimizer | None = None,
    rubric: str | None = None,
    skip: Mapping[str, float] | None = None,
) -> Report:
    """`analyze`, plus prompt rewrites from ``optimizer`` when one is configured.

    Args:
        window: the facts.
        config: the config of the window's version, or None when it is unknown.
        options: thresholds and prices.
        optimizer: the model that rewrites prompts (`tuneloop.analysis.recommend.Optimizer`).
        rubric: the agent's eval rubric, given to the optimizer.
        skip: fingerprints already decided (dismissed, accepted, discarded) with their
            headline figure then: the optimizer is not asked again for them unless the
            figure worsened by half.
    """
    ctx = Context(window, config, options or Options())
    ok, notes = _preflight(ctx)
    if not ok:
        return _report(ctx, AnalyzerResult(), notes)
    result = AnalyzerResult()
    for analyzer in ANALYZERS:
        result += analyzer(ctx)
    if optimizer is not None:
        result += await optimize_prompts(ctx, optimizer, rubric=rubric, skip=skip)
    else:
        notes.append("no optimizer model configured: prompt rewrites skipped")
    return _report(ctx, result, notes)

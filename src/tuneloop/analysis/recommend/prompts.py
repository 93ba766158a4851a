"""Prompt optimization (AI): failure clusters handed to an optimizer model for a rewrite.

Failed runs are clustered by error signature: a corrected decision of a step, an error
on a model call, or a run failure raised after a model call with no tool failing. A
cluster large enough, whose model calls name a prompt the config has (``prompts.<name>``
via ``tuneloop.prompt.name``), becomes a request to the configured optimizer model:
the current prompt, the cluster's examples and the agent's eval rubric. The answer is
checked before it becomes a proposal (between ``<prompt>`` tags, not empty, not the
same, of sane length, every ``{placeholder}`` kept); otherwise it is discarded with the
reason. Proposals always require the eval gate before any experiment.

The optimizer is any ``async (system, user) -> text`` callable, so this module stays
pure; the server adapts a provider to it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from tuneloop.analysis.recommend.common import examples, pct, pointer
from tuneloop.analysis.recommend.context import Context
from tuneloop.analysis.recommend.decisions import collect_decisions
from tuneloop.analysis.recommend.findings import AnalyzerResult, Discarded, Finding, Impact

Optimizer = Callable[[str, str], Awaitable[str]]
"""Sends a system and a user message to the optimizer model; returns its answer text."""

MAX_EXAMPLES_IN_REQUEST = 8
OPTIMIZER_FAILED = "optimizer failed: "
MAX_PROMPT_CHARS = 20_000
_TAGGED = re.compile(r"<prompt>(.*?)</prompt>", re.DOTALL | re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_SYSTEM = (
    "You improve the prompts of an LLM agent. You get one prompt, runs where the step "
    "using it failed in the same way, and the rubric the agent is evaluated with. Write "
    "a revised prompt that fixes this failure without hurting other cases. Keep every "
    "{placeholder} of the original. Answer with the revised prompt only, between "
    "<prompt> and </prompt>."
)


@dataclass(frozen=True, slots=True)
class Example:
    """One failed run of a cluster: what the step saw, what it did, what was right."""

    trace_id: str
    input: str
    output: str
    expected: str | None


@dataclass(frozen=True, slots=True)
class Cluster:
    """Failed runs sharing an error signature on one prompt."""

    prompt: str
    signature: str
    runs: int
    sampled_runs: int
    examples: tuple[Example, ...]

    @property
    def rate(self) -> float:
        """The cluster's share of the sampled runs."""
        return self.runs / self.sampled_runs if self.sampled_runs else 0.0


def failure_clusters(ctx: Context) -> list[Cluster]:
    """Clusters of failed runs on a prompt the config has, largest first."""
    members: defaultdict[tuple[str, str], list[Example]] = defaultdict(list)
    for step, decisions in collect_decisions(ctx).items():
        for d in decisions:
            if not d.corrected:
                continue
            span = next(
                (s for s in ctx.window.index.spans.get(d.trace_id, ()) if s.decision_step == step),
                None,
            )
            if span is None or not span.prompt_name:
                continue
            members[(span.prompt_name, f"misclassified by {step}")].append(
                Example(d.trace_id, span.input_text or "", d.value, d.corrected_value)
            )
    failed_tools = {c.trace_id for c in ctx.window.tool_calls if c.failed}
    for trace, spans in ctx.window.index.spans.items():
        llm = [s for s in spans if s.kind == "llm" and s.prompt_name]
        broken = next((s for s in llm if s.error_type), None)
        run = ctx.window.index.runs.get(trace)
        if broken is not None:
            signature = f"model error {broken.error_type}"
        elif (
            run is not None
            and run.outcome == "failure"
            and run.error_type
            and llm
            and trace not in failed_tools
        ):
            broken, signature = llm[-1], f"run failed with {run.error_type}"
        else:
            continue
        assert broken.prompt_name is not None
        example = Example(trace, broken.input_text or "", broken.output_text or "", None)
        members[(broken.prompt_name, signature)].append(example)
    prompts = ctx.doc.get("prompts") or {}
    sampled = len(ctx.window.index.spans)
    clusters = [
        Cluster(prompt, signature, len(items), sampled, tuple(items[:MAX_EXAMPLES_IN_REQUEST]))
        for (prompt, signature), items in members.items()
        if prompt in prompts
        and len(items) >= ctx.options.min_events
        and len(items) / max(sampled, 1) >= ctx.options.min_rate
    ]
    return sorted(clusters, key=lambda c: -c.runs)


def request_text(cluster: Cluster, current: str, rubric: str | None) -> tuple[str, str]:
    """The system and user messages asking for a rewrite of ``current``."""
    lines = [
        f"Prompt name: {cluster.prompt}",
        "Current prompt:",
        "<current>",
        current,
        "</current>",
        f"Failure: {cluster.signature}, in {cluster.runs} of {cluster.sampled_runs} sampled runs "
        f"({pct(cluster.rate)}).",
        "Examples (input, what the step did, what was right):",
    ]
    for i, ex in enumerate(cluster.examples, 1):
        expected = f" | expected: {ex.expected}" if ex.expected else ""
        lines.append(f"{i}. input: {ex.input[:300]!r} | got: {ex.output[:200]!r}{expected}")
    lines.append(f"Eval rubric: {rubric.strip()}" if rubric else "Eval rubric: (none given)")
    return _SYSTEM, "\n".join(lines)


def validate_rewrite(current: str, answer: str) -> tuple[str | None, str]:
    """The revised prompt in ``answer``, or None and why it is not usable."""
    tagged = _TAGGED.findall(answer or "")
    if len(tagged) != 1:
        return None, f"the answer has {len(tagged)} <prompt>…</prompt> blocks, not one"
    text = tagged[0].strip()
    if not text:
        return None, "the revised prompt is empty"
    if text == current.strip():
        return None, "the revised prompt is the current one"
    if len(text) > MAX_PROMPT_CHARS or len(text) > 10 * max(len(current), 200):
        return None, f"the revised prompt is {len(text):,} characters long, implausibly long"
    if len(text) < 0.2 * len(current.strip()):
        return None, f"the revised prompt keeps {len(text)} of {len(current)} characters"
    missing = sorted(set(_PLACEHOLDER.findall(current)) - set(_PLACEHOLDER.findall(text)))
    if missing:
        return None, f"the revised prompt drops the placeholders {', '.join(missing)}"
    return text, "ok"


async def optimize_prompts(
    ctx: Context,
    optimizer: Optimizer,
    *,
    rubric: str | None = None,
    max_requests: int = 3,
    skip: Mapping[str, float] | None = None,
) -> AnalyzerResult:
    """Ask ``optimizer`` to rewrite the prompt of each large failure cluster.

    Clusters in ``skip`` (fingerprint: headline figure when decided) are not sent again
    unless their share of runs grew by half. Optimizer failures (any exception) and
    unusable answers are discarded with their reason; nothing raises.
    """
    prompts = ctx.doc.get("prompts") or {}
    findings: list[Finding] = []
    discarded: list[Discarded] = []
    asked = 0
    for cluster in failure_clusters(ctx):
        current = str(prompts[cluster.prompt])
        path = pointer("prompts", cluster.prompt)
        fp = ctx.fingerprint(
            "prompt_optimization", cluster.prompt, f"rewrite:{cluster.signature}", [{"path": path}]
        )
        decided = (skip or {}).get(fp)
        if decided is not None and cluster.rate < decided * 1.5:
            continue
        if asked >= max_requests:
            break
        asked += 1
        system, user = request_text(cluster, current, rubric)
        try:
            answer = await optimizer(system, user)
        except Exception as exc:  # the optimizer is a network call of any provider
            discarded.append(
                Discarded(
                    "prompt_rewrite",
                    cluster.prompt,
                    f"{OPTIMIZER_FAILED}{exc}"[:500],
                    fp,
                    cluster.rate,
                )
            )
            continue
        text, reason = validate_rewrite(current, answer)
        if text is None:
            discarded.append(Discarded("prompt_rewrite", cluster.prompt, reason, fp, cluster.rate))
            continue
        change = ({"op": "replace", "path": path, "value": text},)
        findings.append(
            Finding(
                type="prompt_optimization",
                target=cluster.prompt,
                kind=f"rewrite:{cluster.signature}",
                title=(
                    f"Rewrite prompt {cluster.prompt!r} for '{cluster.signature}' "
                    f"({pct(cluster.rate)} of runs)"
                ),
                evidence={
                    "prompt": cluster.prompt,
                    "signature": cluster.signature,
                    "cluster_runs": cluster.runs,
                    "sampled_runs": cluster.sampled_runs,
                    "current_prompt": current,
                    "example_trace_ids": examples(e.trace_id for e in cluster.examples),
                },
                change=change,
                impact=Impact(
                    f"runs failing with '{cluster.signature}'",
                    cluster.rate,
                    0.0,
                    "ratio",
                    "upper bound if the rewrite fixes the whole cluster; an AI-written prompt, so "
                    "the eval gate measures its real effect before any experiment",
                ),
                confidence=min(0.5 + cluster.runs / (cluster.runs + 50) / 2, 0.9),
                headline=cluster.rate,
                fingerprint=fp,
                requires_eval_gate=True,
            )
        )
    return AnalyzerResult(findings=tuple(findings), discarded=tuple(discarded))

"""Cost: tokens and dollars by intent and route, repeated inputs, and the token tail.

- Routing: an intent (the value of the agent's main decision step) whose runs only use
  read-only tools and succeed as often as the agent's other runs is answered by a
  cheaper tier (a tier of the config, or a model the agent already uses elsewhere).
  Where the intent was served by the cheaper model too, its success rate there must
  hold; where it was not, the proposal says so and needs the eval gate.
- Exact-match caching: a read-only tool called again with identical arguments within
  minutes gets a cache TTL covering most repeats.
- Token budget: when the top 1 % of runs burn a disproportionate share of tokens, a
  per-run token budget just above the body of the distribution.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from tuneloop.analysis.recommend.common import (
    clamp,
    confidence_above,
    examples,
    pct,
    pointer,
    quantile,
    round_up,
    set_value,
)
from tuneloop.analysis.recommend.context import Context
from tuneloop.analysis.recommend.decisions import collect_decisions
from tuneloop.analysis.recommend.findings import AnalyzerResult, Finding, Impact

MIN_COST_SHARE = 0.05
SUCCESS_MARGIN = 0.02
REPEAT_SHARE = 0.3
TAIL = 0.01
TAIL_SHARE = 0.1


def analyze_cost(ctx: Context) -> AnalyzerResult:
    """Routing, caching and budget findings."""
    return _routing(ctx) + _caching(ctx) + _budget(ctx)


def _answer_calls(ctx: Context) -> dict[str, list[Any]]:
    """Per sampled run, its model calls that are not decisions (the answers)."""
    return {
        trace: [s for s in spans if s.kind == "llm" and not s.decision_step and s.model]
        for trace, spans in ctx.window.index.spans.items()
    }


def _routing(ctx: Context) -> AnalyzerResult:
    opts = ctx.options
    decisions = collect_decisions(ctx)
    if not decisions:
        return AnalyzerResult()
    step = max(decisions, key=lambda s: len(decisions[s]))
    intent_of = {d.trace_id: d.value for d in decisions[step]}
    prices = opts.price_table()
    answers = _answer_calls(ctx)
    runs = ctx.window.index.runs
    tool_failed = {c.trace_id for c in ctx.window.tool_calls if c.failed}
    writes = {
        c.trace_id
        for c in ctx.window.tool_calls
        if ctx.tool_or_default(c.tool).side_effect != "read"
    }
    # Per intent and model: runs, successes (tool failures excluded), cost.
    stats: defaultdict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    total_cost = 0.0
    models: Counter[str] = Counter()
    for trace, intent in intent_of.items():
        calls = answers.get(trace, [])
        run = runs.get(trace)
        if not calls or run is None:
            continue
        model = Counter(c.model for c in calls).most_common(1)[0][0]
        cost = (
            sum(prices.cost(c.model, c.input_tokens, c.output_tokens) for c in calls) * run.weight
        )
        entry = stats[(intent, model)]
        if trace not in tool_failed:
            entry[0] += 1
            entry[1] += run.succeeded
        entry[2] += cost
        total_cost += cost
        models.update(c.model for c in calls)
    for spans in ctx.window.index.spans.values():
        models.update(s.model for s in spans if s.kind == "llm" and s.model)
    if total_cost <= 0:
        return AnalyzerResult()
    overall_n = sum(v[0] for v in stats.values())
    overall_rate = sum(v[1] for v in stats.values()) / max(overall_n, 1)
    tiers: dict[str, Any] = dict(ctx.doc.get("routing", {}).get("tiers") or {})
    known = {ref["name"] for ref in tiers.values()} | set(models)

    def price(model: str) -> float:
        # Per 1,000 tokens in a typical answer mix (4 input tokens to 1 output).
        found = prices.price(model)
        return float("inf") if found is None else (4 * found.input_per_1k + found.output_per_1k) / 5

    candidates: defaultdict[str, list[str]] = defaultdict(list)
    notes: list[str] = []
    saved = 0.0
    candidate_cost = 0.0
    detail: dict[str, Any] = {}
    by_intent: dict[str, Any] = {}
    traces_of: defaultdict[str, list[str]] = defaultdict(list)
    for trace, intent in intent_of.items():
        traces_of[intent].append(trace)
    for (intent, model), (n, ok, cost) in sorted(stats.items()):
        by_intent[f"{intent} on {model}"] = {
            "runs": int(n),
            "success_rate": round(ok / n, 4) if n else None,
            "cost_share": round(cost / total_cost, 4),
        }
        if cost / total_cost < MIN_COST_SHARE or n < opts.min_calls:
            continue
        cheaper = sorted((m for m in known if price(m) < price(model)), key=price)
        if not cheaper or any(t in writes for t in traces_of[intent]):
            continue
        rate = ok / n
        if rate < overall_rate - SUCCESS_MARGIN:
            continue
        target = cheaper[-1]  # the least cheap of the cheaper: the smallest step down
        seen_n, seen_ok, _ = stats.get((intent, target), (0, 0, 0.0))
        if seen_n >= opts.min_calls // 2 and seen_ok / seen_n < rate - SUCCESS_MARGIN:
            notes.append(
                f"{intent}: {target} succeeds {pct(seen_ok / seen_n)} against {pct(rate)} on "
                f"{model}; not routed to it"
            )
            continue
        sample = [c for t in traces_of[intent] for c in answers.get(t, []) if c.model == model]
        cheap_cost = sum(prices.cost(target, c.input_tokens, c.output_tokens) for c in sample)
        full_cost = sum(prices.cost(model, c.input_tokens, c.output_tokens) for c in sample)
        saved += cost * (1 - (cheap_cost / full_cost if full_cost else 1.0))
        candidate_cost += cost
        candidates[target].append(intent)
        detail[intent] = {
            "model": model,
            "runs": int(n),
            "success_rate": round(rate, 4),
            "cost_share": round(cost / total_cost, 4),
            "cheaper_model": target,
            "observed_on_cheaper": int(seen_n),
            "cheaper_success_rate": round(seen_ok / seen_n, 4) if seen_n else None,
        }
    if not candidates:
        return AnalyzerResult(notes=tuple(notes))
    target, intents = max(candidates.items(), key=lambda kv: len(kv[1]))
    intents = sorted(intents)
    tier = next((name for name, ref in tiers.items() if ref["name"] == target), None)
    change: list[dict[str, Any]] = []
    if tier is None:
        tier = target.replace("/", "-")
        provider = (
            _provider_of(ctx, target) or ctx.doc.get("model", {}).get("provider") or "unknown"
        )
        value = {"provider": provider, "name": target}
        change.append(set_value(ctx.doc, ["routing", "tiers", tier], value))
    rule = {"tier": tier, "intents": intents}
    change.append({"op": "add", "path": pointer("routing", "rules", 0), "value": rule})
    observed = all(detail[i]["observed_on_cheaper"] >= opts.min_calls // 2 for i in intents)
    per_day = 1 / ctx.window.duration_days
    share = sum(detail[i]["cost_share"] for i in intents)
    rates = ", ".join(pct(detail[i]["success_rate"]) for i in intents)
    basis = (
        f"intents {', '.join(intents)} ({pct(share)} of answer cost) use read-only tools and "
        f"succeed about as often as the rest ({rates} vs {pct(overall_rate)} overall); the "
        f"same tokens cost {pct(1 - saved / candidate_cost)} as much on {target}"
    )
    basis += (
        "; success on the cheaper tier was observed and holds"
        if observed
        else f"; not yet observed on {target}: the eval gate must confirm quality"
    )
    confidence = confidence_above(share, sum(detail[i]["runs"] for i in intents), MIN_COST_SHARE)
    finding = Finding(
        type="model_routing",
        target=",".join(intents),
        kind="cheaper_tier",
        title=f"Route {', '.join(intents)} to {target}: simple intents, {pct(share)} of cost",
        evidence={
            "step": step,
            "intents": detail,
            "by_intent": by_intent,
            "answer_cost_per_day": round(total_cost * per_day, 4),
            "example_trace_ids": examples(t for i in intents for t in traces_of[i]),
        },
        change=tuple(change),
        impact=Impact(
            "answer cost",
            total_cost * per_day,
            (total_cost - saved) * per_day,
            "usd_per_day",
            basis,
        ),
        confidence=confidence if observed else min(confidence, 0.75),
        headline=share,
        fingerprint=ctx.fingerprint("model_routing", ",".join(intents), "cheaper_tier", change),
        requires_eval_gate=not observed,
    )
    return AnalyzerResult(findings=(finding,) if ctx.keep(finding) else (), notes=tuple(notes))


def _provider_of(ctx: Context, model: str) -> str | None:
    for spans in ctx.window.index.spans.values():
        for span in spans:
            if span.model == model and span.provider:
                return span.provider
    return None


def _caching(ctx: Context) -> AnalyzerResult:
    opts = ctx.options
    by_tool: defaultdict[str, list[Any]] = defaultdict(list)
    for span in ctx.window.spans:
        if span.kind == "tool" and span.tool and span.input_hash:
            by_tool[span.tool].append(span)
    findings: list[Finding] = []
    for tool, spans in sorted(by_tool.items()):
        settings = ctx.tool_or_default(tool)
        if settings.side_effect != "read" or settings.cache_ttl_s or len(spans) < opts.min_calls:
            continue
        spans.sort(key=lambda s: s.started_ms)
        last: dict[str, int] = {}
        gaps: list[float] = []
        for span in spans:
            key = span.input_hash or ""
            if key in last:
                gaps.append((span.started_ms - last[key]) / 1000)
            if span.error_type is None:
                last[key] = span.started_ms
        if len(gaps) < opts.min_events:
            continue
        ttl = int(clamp(round_up(quantile(gaps, 0.75), 60), 60, 86_400))
        hits = sum(g <= ttl for g in gaps)
        share = hits / len(spans)
        if share < REPEAT_SHARE:
            continue
        weight = 1 / ctx.window.mean_sample_rate / ctx.window.duration_days
        change = [set_value(ctx.doc, ["tools", tool, "cache_ttl_s"], ttl)]
        finding = Finding(
            type="caching",
            target=tool,
            kind="exact_match_cache",
            title=f"Cache {tool} results for {ttl} s: {pct(share)} of calls repeat their arguments",
            evidence={
                "tool": tool,
                "sampled_calls": len(spans),
                "distinct_arguments": len({s.input_hash for s in spans}),
                "repeat_share_within_ttl": round(share, 4),
                "median_repeat_gap_s": round(quantile(gaps, 0.5), 1),
                "example_trace_ids": examples(s.trace_id for s in spans),
            },
            change=tuple(change),
            impact=Impact(
                f"{tool} calls",
                len(spans) * weight,
                (len(spans) - hits) * weight,
                "calls_per_day",
                f"{pct(share)} of sampled calls repeat arguments a success had within {ttl} s "
                f"(75 % of repeats come within that)",
            ),
            confidence=confidence_above(share, len(spans), REPEAT_SHARE / 2),
            headline=share,
            fingerprint=ctx.fingerprint("caching", tool, "exact_match_cache", change),
        )
        if ctx.keep(finding):
            findings.append(finding)
    return AnalyzerResult(findings=tuple(findings))


def _budget(ctx: Context) -> AnalyzerResult:
    opts = ctx.options
    runs = [r for r in ctx.window.runs if r.tokens > 0]
    tail_n = int(len(runs) * TAIL)
    if tail_n < opts.min_events:
        return AnalyzerResult()
    ordered = sorted(runs, key=lambda r: r.tokens, reverse=True)
    total = sum(r.tokens * r.weight for r in runs)
    tail = ordered[:tail_n]
    share = sum(r.tokens * r.weight for r in tail) / total
    if share < TAIL_SHARE:
        return AnalyzerResult()
    body_p99 = quantile([r.tokens for r in ordered[tail_n:]], 0.99)
    cap = round_up(body_p99 * 1.25, 1000)
    current = ctx.doc.get("budget", {}).get("run_tokens")
    if current is not None and current <= cap:
        return AnalyzerResult()
    after = sum(min(r.tokens, cap) * r.weight for r in runs)
    per_day = 1 / ctx.window.duration_days
    change = [set_value(ctx.doc, ["budget", "run_tokens"], cap)]
    tail_success = sum(r.succeeded for r in tail) / len(tail)
    finding = Finding(
        type="budget",
        target="run_tokens",
        kind="token_budget",
        title=f"Cap runs at {cap:,} tokens: the top 1 % of runs use {pct(share)} of all tokens",
        evidence={
            "runs": len(runs),
            "tail_runs": tail_n,
            "tail_token_share": round(share, 4),
            "tail_success_rate": round(tail_success, 4),
            "success_rate_other": round(
                sum(r.succeeded for r in ordered[tail_n:]) / (len(runs) - tail_n), 4
            ),
            "body_p99_tokens": round(body_p99),
            "current_budget": current,
            "example_trace_ids": examples(r.trace_id for r in tail),
        },
        change=tuple(change),
        impact=Impact(
            "tokens",
            total * per_day,
            after * per_day,
            "tokens_per_day",
            f"the top {tail_n} runs (1 %) use {pct(share)} of tokens and succeed "
            f"{pct(tail_success)} of the time; a cap at 1.25 times the p99 of the rest trims them",
        ),
        confidence=confidence_above(share, tail_n * 10, TAIL_SHARE / 2),
        headline=share,
        fingerprint=ctx.fingerprint("budget", "run_tokens", "token_budget", change),
        requires_eval_gate=True,
    )
    return AnalyzerResult(findings=(finding,) if ctx.keep(finding) else ())

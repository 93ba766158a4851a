"""Reporters: JUnit XML for CI test views, and a Markdown summary for a pull-request comment."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import UTC, datetime

from tuneloop.evals.aggregate import OVERALL
from tuneloop.evals.compare import RunDiff
from tuneloop.evals.results import Aggregate, CaseResult, EvalRun, GateCheck, TrialResult

_MAX_MESSAGE = 500
_MAX_FAILING_ROWS = 25


def _why(trial: TrialResult) -> str:
    if trial.error is not None:
        return trial.error
    failed = [s for s in trial.scores if s.status in ("fail", "error")]
    return "; ".join(f"{s.evaluator}: {s.explanation}" for s in failed)


def _failure(case: CaseResult) -> tuple[str, str, str]:
    """(kind, message, detail) of a case that did not pass every trial."""
    failed = [trial for trial in case.trials if not trial.passed]
    first = failed[0]
    kind: str
    if first.error_kind is not None:
        kind = first.error_kind
    else:
        statuses = {s.evaluator: s.status for s in first.scores if s.status in ("fail", "error")}
        kind = ",".join(statuses) or "fail"
    message = f"{case.passes}/{len(case.trials)} trials passed: {_why(first)}"
    lines = []
    for trial in failed:
        lines.append(f"trial {trial.trial}: {_why(trial)}")
        if trial.trace_id:
            lines.append(f"  trace {trial.trace_id}")
    return kind, message[:_MAX_MESSAGE], "\n".join(lines)


def junit_xml(run: EvalRun) -> str:
    """JUnit XML: a testsuite per category with a testcase per case, plus one for the gate.

    A case fails (``<failure>``) when any of its trials failed an evaluator, and errors
    (``<error>``) when the target raised or timed out or an evaluator could not judge.
    """
    root = ET.Element("testsuites", name=f"tuneloop eval {run.suite}")
    stamp = datetime.fromtimestamp(run.started_ms / 1000, UTC).isoformat()
    by_category: dict[str, list[CaseResult]] = defaultdict(list)
    for case in run.cases:
        by_category[case.category].append(case)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for category in sorted(by_category):
        suite = ET.SubElement(root, "testsuite", name=f"{run.suite}.{category}", timestamp=stamp)
        _properties(suite, run)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        seconds = 0.0
        for case in by_category[category]:
            latency = sum(t.latency_ms or 0.0 for t in case.trials) / 1000
            seconds += latency
            element = ET.SubElement(
                suite,
                "testcase",
                classname=f"{run.suite}.{category}",
                name=case.case_id,
                time=f"{latency:.3f}",
            )
            counts["tests"] += 1
            if case.status != "pass":
                kind, message, detail = _failure(case)
                tag = "error" if case.status == "error" else "failure"
                counts["errors" if tag == "error" else "failures"] += 1
                node = ET.SubElement(element, tag, message=message, type=kind)
                node.text = detail
        _count_attributes(suite, counts, seconds)
        for key in totals:
            totals[key] += counts[key]
    if run.gate is not None:
        suite = ET.SubElement(root, "testsuite", name=f"{run.suite}.gate", timestamp=stamp)
        _properties(suite, run)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for check in run.gate.checks:
            element = ET.SubElement(
                suite, "testcase", classname=f"{run.suite}.gate", name=_check_name(check), time="0"
            )
            counts["tests"] += 1
            if check.status == "fail":
                counts["failures"] += 1
                ET.SubElement(
                    element, "failure", message=check.message[:_MAX_MESSAGE], type=check.metric
                )
            elif check.status == "skipped":
                counts["skipped"] += 1
                ET.SubElement(element, "skipped", message=check.message[:_MAX_MESSAGE])
        _count_attributes(suite, counts, 0.0)
        for key in totals:
            totals[key] += counts[key]
    _count_attributes(root, totals, (run.finished_ms - run.started_ms) / 1000)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _check_name(check: GateCheck) -> str:
    return f"{check.scope} {check.metric}"


def _properties(suite: ET.Element, run: EvalRun) -> None:
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", run.run_id),
        ("stage", run.stage),
        ("version", run.version),
        ("config_hash", run.config_hash),
        ("repeat", run.repeat),
    ):
        if value is not None:
            ET.SubElement(props, "property", name=name, value=str(value))


def _count_attributes(element: ET.Element, counts: dict[str, int], seconds: float) -> None:
    for key, value in counts.items():
        element.set(key, str(value))
    element.set("time", f"{seconds:.3f}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_summary(run: EvalRun, *, diff: RunDiff | None = None) -> str:
    """A Markdown summary: verdict, per-category table, gate checks, failing cases, regressions."""
    k = run.repeat
    if run.gate is None:
        head = f"## tuneloop eval: {run.suite}"
    else:
        verdict = "✅ gate passed" if run.gate.passed else "❌ gate failed"
        head = f"## {verdict}: tuneloop eval `{run.suite}`"
    lines = [
        head,
        "",
        f"Stage `{run.stage}` · version `{run.version or 'unversioned'}` · "
        f"{run.overall.cases} cases x {k} trial{'s' if k != 1 else ''} · run `{run.run_id}`",
        "",
        "| category | cases | pass^1 | "
        + (f"pass^{k} | " if k > 1 else "")
        + "p95 latency | mean cost | target errors |",
        "| --- | ---: | ---: | " + ("---: | " if k > 1 else "") + "---: | ---: | ---: |",
    ]
    rows: list[tuple[str, Aggregate]] = [*run.categories.items(), (f"**{OVERALL}**", run.overall)]
    for name, agg in rows:
        pass_k = f"{_pct(agg.pass_k)} | " if k > 1 else ""
        lines.append(
            f"| {_cell(name)} | {agg.cases} | {_pct(agg.pass_rate)} | {pass_k}"
            f"{_ms(agg.latency_p95_ms)} | {_usd(agg.mean_cost_usd)} | {agg.target_errors} |"
        )
    if run.overall.judge_variance is not None:
        lines += ["", f"Judge variance (mean per case): {run.overall.judge_variance:.4f}"]
    if run.gate is not None and run.gate.checks:
        lines += [
            "",
            "### Gate",
            "",
            "| check | actual | threshold | result |",
            "| --- | ---: | ---: | --- |",
        ]
        icons = {"pass": "✅", "fail": "❌", "skipped": "⏭ skipped"}
        for check in run.gate.checks:
            actual = "-" if check.actual is None else f"{check.actual:.4g}"
            threshold = "-" if check.threshold is None else f"{check.threshold:.4g}"
            note = "" if check.status == "pass" else f" {_cell(check.message)}"
            lines.append(
                f"| {_cell(_check_name(check))} | {actual} | {threshold} | "
                f"{icons[check.status]}{note} |"
            )
    failing = [case for case in run.cases if case.status != "pass"]
    if failing:
        lines += [
            "",
            f"### Failing cases ({len(failing)})",
            "",
            "| case | category | passed | why |",
            "| --- | --- | ---: | --- |",
        ]
        for case in failing[:_MAX_FAILING_ROWS]:
            _, message, _ = _failure(case)
            why = message.split(": ", 1)[-1]
            lines.append(
                f"| `{_cell(case.case_id)}` | {_cell(case.category)} | "
                f"{case.passes}/{len(case.trials)} | {_cell(why[:200])} |"
            )
        if len(failing) > _MAX_FAILING_ROWS:
            lines.append(f"\n…and {len(failing) - _MAX_FAILING_ROWS} more (see the JUnit report).")
    if diff is not None:
        lines += _diff_lines(diff)
    return "\n".join(lines) + "\n"


def _diff_lines(diff: RunDiff) -> list[str]:
    counts = diff.counts()
    summary = ", ".join(
        f"{name.replace('_', ' ')}: {count}" for name, count in sorted(counts.items())
    )
    lines = ["", f"### Compared with baseline `{diff.baseline_run_id}`", "", summary or "no cases"]
    changed = diff.of("regressed", "improved")
    if changed:
        lines += [
            "",
            "| case | change | before | after | p |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        for case in changed:
            before = "-" if case.before is None else f"{case.before[0]}/{case.before[1]}"
            after = "-" if case.after is None else f"{case.after[0]}/{case.after[1]}"
            p = "-" if case.p_value is None else f"{case.p_value:.3f}"
            lines.append(f"| `{_cell(case.case_id)}` | {case.change} | {before} | {after} | {p} |")
    return lines

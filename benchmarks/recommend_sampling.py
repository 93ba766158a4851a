"""Recommendation precision and recall against the SDK's head-sampling rate, and storage.

Run: ``.venv/bin/python benchmarks/recommend_sampling.py [--runs 6000] [--seeds 3]
[--rates 1,0.5,0.2,0.1,0.05,0.01]``.

For each seed, the demo world (``tuneloop.demo``) plays ``--runs`` runs twice: once with
its four known faults (``lookup_order`` fails 8 % of attempts with a retryable 503 and
is not retried; ``search_policy``'s 3 s timeout sits below its p95; the router
classifies at temperature 1.0; every answer uses gpt-4o) and once fault-free under a
tuned config. Each is sent through ``tuneloop.Client`` with ``sample_rate`` set (head
sampling, ParentBased(TraceIdRatioBased): a run is kept or dropped whole) and ingested
by the server's own code (normalize, ``write_spans``) into a fresh SQLite database per
rate. The analyzers then read the window back and propose what they find.

A finding is a true positive when it targets a known fault with a patch that fixes it:
``lookup_order`` retried at least twice; ``search_policy``'s timeout raised to where the
true latency distribution (log-normal, median 1.2 s, sigma 0.6) leaves at most 1 % of
calls; the router's temperature lowered to 0.3 or less; only the three simple intents
(never ``refund``) routed to a cheaper tier. Anything else, and anything on the
fault-free traffic, is a false positive. Recall is true positives over the faults
injected; precision is true positives over everything proposed. Impact error is the
mean absolute difference between each true positive's "before" figure and the
world's true rate (retry 8 %, timeouts 6.3 %, misrouting 12 %), in percentage points.
Storage is the SQLite file after a WAL checkpoint (tables, indexes and span payloads).
Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

from _common import sqlite_bytes

# The benchmark plays exactly the traffic the tests use (configs, world, SDK, ingest).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.recommend.traffic import AGENT, PROJECT, TRIVIAL, send_demo_traffic

from tuneloop.analysis.recommend import Finding, Options, analyze
from tuneloop.settings import DEFAULT_PRICES
from tuneloop.store import Store
from tuneloop.store.recommend_reads import read_window

FAULTS = ("flaky tool", "tight timeout", "hot classifier", "expensive model")
TRUE_BEFORE = {"flaky tool": 0.08, "tight timeout": 0.0635, "hot classifier": 0.12}
SEARCH_MEDIAN_MS, SEARCH_SIGMA = 1200.0, 0.6


def true_share_above(ms: float) -> float:
    """The share of search_policy calls the world makes slower than ``ms``."""
    return 1 - NormalDist().cdf(math.log(ms / SEARCH_MEDIAN_MS) / SEARCH_SIGMA)


def fault_fixed(finding: Finding) -> str | None:
    """The known fault a finding fixes, or None (a false positive)."""
    value = finding.change[-1]["value"] if finding.change else None
    if finding.kind == "retry" and finding.target == "lookup_order":
        return "flaky tool" if int(value) >= 2 else None
    if finding.kind == "raise_timeout" and finding.target == "search_policy":
        return "tight timeout" if true_share_above(float(value)) <= 0.01 else None
    if finding.kind == "lower_temperature" and finding.target == "router":
        return "hot classifier" if float(value) <= 0.3 else None
    if finding.kind == "cheaper_tier":
        intents = set(value["intents"])
        return "expensive model" if intents and intents <= set(TRIVIAL) else None
    return None


@dataclass
class Cell:
    """Results of one sampling rate over every seed."""

    runs: list[int] = field(default_factory=list)
    spans: list[int] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)
    true_positives: int = 0
    proposed: int = 0
    found: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    impact_errors: list[float] = field(default_factory=list)
    analysis_s: list[float] = field(default_factory=list)


def one(rate: float, seed: int, *, runs: int, faulty: bool, cell: Cell) -> None:
    """Play, store and analyze one world at one rate; add the results to ``cell``."""
    with tempfile.TemporaryDirectory(prefix="tuneloop-sampling-") as tmp:
        db = Path(tmp) / "tuneloop.db"
        store = Store.open(f"sqlite:///{db}")
        try:
            store.keys.ensure_project(PROJECT, now_ms=0)
            traffic = send_demo_traffic(
                store, runs=runs, seed=seed, faulty=faulty, state_dir=tmp, sample_rate=rate
            )
            started = time.perf_counter()
            window = read_window(
                store.engine,
                PROJECT,
                AGENT,
                version=traffic.version,
                since_ms=traffic.start_ms,
                until_ms=traffic.end_ms,
            )
            report = analyze(window, traffic.config, options=Options(prices=DEFAULT_PRICES))
            cell.analysis_s.append(time.perf_counter() - started)
            usage = store.queries.usage(PROJECT)
        finally:
            store.close()
        if faulty:  # storage is measured on the faulty world: what production would hold
            cell.runs.append(usage["runs"])
            cell.spans.append(usage["spans"])
            cell.bytes.append(sqlite_bytes(db))
    cell.proposed += len(report.findings)
    for finding in report.findings:
        fixed = fault_fixed(finding) if faulty else None
        if fixed is None:
            continue
        cell.true_positives += 1
        cell.found[fixed] += 1
        if fixed in TRUE_BEFORE:
            cell.impact_errors.append(abs(finding.impact.before - TRUE_BEFORE[fixed]) * 100)


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %"


def table(cells: dict[float, Cell], *, seeds: int) -> str:
    """The trade-off table, in Markdown."""
    base = cells[max(cells)]
    full_bytes = statistics.mean(base.bytes)
    lines = [
        "| sample rate | runs stored | spans stored | storage | vs 100 % | recall | precision | "
        + " | ".join(FAULTS)
        + " | impact error | analysis |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
        + " | ".join("---:" for _ in FAULTS)
        + " | ---: | ---: |",
    ]
    for rate in sorted(cells, reverse=True):
        c = cells[rate]
        storage = statistics.mean(c.bytes)
        recall = c.true_positives / (len(FAULTS) * seeds)
        precision = c.true_positives / c.proposed if c.proposed else float("nan")
        error = f"{statistics.mean(c.impact_errors):.1f} pp" if c.impact_errors else "-"
        lines.append(
            f"| {rate:g} | {statistics.mean(c.runs):,.0f} | {statistics.mean(c.spans):,.0f} | "
            f"{storage / 1e6:.1f} MB | {(storage / full_bytes - 1) * 100:+.0f} % | "
            f"{_pct(recall)} | "
            + ("-" if math.isnan(precision) else _pct(precision))
            + " | "
            + " | ".join(f"{c.found[f]}/{seeds}" for f in FAULTS)
            + f" | {error} | {statistics.mean(c.analysis_s) * 1000:.0f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=6000, help="runs per world and seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rates", default="1,0.5,0.2,0.1,0.05,0.01")
    args = parser.parse_args()
    rates = sorted({float(r) for r in args.rates.split(",")}, reverse=True)
    if rates[0] != 1.0:
        rates.insert(0, 1.0)  # the baseline storage is measured at 1.0
    cells = {rate: Cell() for rate in rates}
    started = time.perf_counter()
    for seed in range(1, args.seeds + 1):
        for rate in rates:
            for faulty in (True, False):
                one(rate, seed, runs=args.runs, faulty=faulty, cell=cells[rate])
            print(
                f"seed {seed} rate {rate:g} done ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    print(
        f"Recommendations vs head sampling: {args.runs:,} runs per world, {args.seeds} seeds, "
        f"faulty + fault-free worlds ({time.perf_counter() - started:.0f} s)\n"
    )
    print(table(cells, seeds=args.seeds))
    tenth = cells.get(0.1)
    if tenth is not None:
        full = cells[1.0]
        saved = 1 - statistics.mean(tenth.bytes) / statistics.mean(full.bytes)
        p_full = full.true_positives / max(full.proposed, 1)
        p_tenth = tenth.true_positives / max(tenth.proposed, 1)
        r_full = full.true_positives / (len(FAULTS) * args.seeds)
        r_tenth = tenth.true_positives / (len(FAULTS) * args.seeds)
        print(
            f"\nTracing every tenth run: storage -{saved * 100:.0f} %, precision "
            f"{(p_tenth - p_full) * 100:+.0f} points, recall "
            f"{(r_tenth - r_full) * 100:+.0f} points."
        )


if __name__ == "__main__":
    main()

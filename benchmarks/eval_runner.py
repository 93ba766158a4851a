"""Throughput and per-case overhead of the eval runner.

1,000 cases against a simulated target that answers after 100 ms (``asyncio.sleep``),
50 in flight at once, each case scored by three deterministic evaluators (contains,
regex, exact match). With 50 concurrent 100 ms calls the ideal wall time is
cases x 0.1 s / 50 = 2 s, a ceiling of 500 cases/s; whatever the runner adds shows up
as wall time beyond that.

Figures, the median of ``--rounds`` runs:

- ``cases/s``: cases / wall time of `Runner.run` (target: at least 200);
- ``overhead/case``: (wall time - ideal wall time) / cases: the runner's own cost per
  case, spread over the concurrency;
- ``CPU/case``: process CPU time (user + system) / cases: what scoring, bookkeeping and
  the event loop cost, independent of the waits.

Usage: ``python benchmarks/eval_runner.py [--cases 1000] [--latency-ms 100]
[--concurrency 50] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from tuneloop.evals.dataset import Case, Expectation
from tuneloop.evals.evaluators.text import (
    Contains,
    ContainsParams,
    ExactMatch,
    ExactMatchParams,
    Regex,
    RegexParams,
)
from tuneloop.evals.runner import Runner

TARGET_CASES_PER_S = 200.0


def make_cases(n: int) -> list[Case]:
    return [
        Case(
            id=f"case-{i:05d}",
            input=f"Where is order A-{i:04d}?",
            expected=Expectation.parse(
                {
                    "output": f"Order A-{i:04d} has shipped.",
                    "contains": [f"A-{i:04d}", "shipped"],
                    "regex": r"Order A-\d{4} has \w+\.",
                }
            ),
            category=("orders", "refunds", "faq")[i % 3],
        )
        for i in range(n)
    ]


def make_target(latency_s: float) -> Any:
    async def target(message: str, config: Any) -> str:
        await asyncio.sleep(latency_s)
        return f"Order {message.split()[-1].rstrip('?')} has shipped."

    return target


def one_round(cases: list[Case], latency_s: float, concurrency: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, pass rate) of one run."""
    evaluators = [
        Contains("contains", ContainsParams()),
        Regex("regex", RegexParams()),
        ExactMatch("exact_match", ExactMatchParams()),
    ]
    runner = Runner(
        make_target(latency_s), evaluators, concurrency=concurrency, timeout_s=30, progress=False
    )

    async def go() -> tuple[float, float, float]:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        run = await runner.run(cases, None, suite="bench")
        return time.perf_counter() - wall0, time.process_time() - cpu0, run.overall.pass_rate

    return asyncio.run(go())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    cases = make_cases(args.cases)
    latency_s = args.latency_ms / 1000
    ideal_s = args.cases * latency_s / args.concurrency
    walls, cpus = [], []
    for number in range(1, args.rounds + 1):
        wall, cpu, pass_rate = one_round(cases, latency_s, args.concurrency)
        if pass_rate != 1.0:
            print(f"every case should pass, got pass rate {pass_rate}", file=sys.stderr)
            return 1
        walls.append(wall)
        cpus.append(cpu)
        print(f"round {number}: {wall:.3f} s wall, {cpu:.3f} s CPU")
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    rate = args.cases / wall
    print(
        f"\n{args.cases} cases, target latency {args.latency_ms:.0f} ms, concurrency "
        f"{args.concurrency}, 3 evaluators; median of {args.rounds} rounds"
    )
    print(f"ideal wall time     {ideal_s:.3f} s  ({args.cases / ideal_s:,.0f} cases/s ceiling)")
    print(f"wall time           {wall:.3f} s")
    verdict = "PASS" if rate >= TARGET_CASES_PER_S else "MISS"
    print(f"cases/s             {rate:,.0f}  [{verdict}: target >= {TARGET_CASES_PER_S:.0f}]")
    print(f"overhead/case       {(wall - ideal_s) / args.cases * 1e3:.3f} ms (wall - ideal)")
    print(f"CPU/case            {cpu / args.cases * 1e3:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

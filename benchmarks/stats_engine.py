"""Statistics engine speed: 10,000,000 units, 2 variants, 5 metrics, tuneloop against gbstats.

Run: ``.venv/bin/python benchmarks/stats_engine.py [--units 10000000] [--repeat 5] [--peer none]``.

Seeded per-unit arrays (``--seed``): a variant index (50/50), three binary metrics (task
success 20 % vs 20.5 %, error 5 %, escalation 3 % vs 3.1 %), a continuous one (cost,
gamma-distributed, 2 % cheaper in the treatment) and a ratio (tool errors / tool calls per
unit, Poisson calls). Generating them is setup, not measured.

What each side times, per repetition (the median of ``--repeat`` after one warm-up):

- tuneloop, ``build``: `UnitGroups` over the variant index, then per-variant summaries of
  all five metrics from the arrays. ``tests``: `analyze` with all five metrics (one
  primary, two guardrails with margins), which computes fixed-horizon and sequential
  results, relative lifts, corrected p-values, planned units, guardrail verdicts, SRM and
  a recommendation, then ``to_dict()`` of the whole result.
- gbstats 0.8.0 in its own venv (``benchmarks/.work/gbstats-venv``, created on first use,
  since gbstats pins numpy<2): ``build`` per-variant sums with numpy (a mask per variant,
  then sums and dot products; gbstats itself starts from sums); ``tests``: per metric
  ``TwoSidedTTest`` relative and absolute and ``SequentialTwoSidedTTest`` relative and
  absolute, plus ``check_srm``. It reads the same arrays, saved as ``.npy`` files under
  ``benchmarks/.work`` (loading is not timed; the files are removed at the end).

Both sides' numbers are compared at the end: lifts, intervals and p-values must agree
(gbstats uses Student's t with Welch degrees of freedom for proportions too, which at
millions of units differs from the z-test in the 7th digit).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import WORK_DIR, exit_on_sigterm

from tuneloop.stats import AnalysisSettings, MetricSpec, UnitGroups, Variant, analyze

GBSTATS_VERSION = "0.8.0"
GBSTATS_VENV = WORK_DIR / "gbstats-venv"
PEER_SCRIPT = Path(__file__).resolve().parent / "_gbstats_peer.py"
TARGET_S = 1.0
TUNING = 5_000  # gbstats' default sequential tuning parameter; tuneloop's too
BINARY = ("task_success", "error", "escalation")
METRICS = [
    MetricSpec("task_success", "binary", role="primary", mde=0.02),
    MetricSpec("error", "binary", role="guardrail", direction="decrease", margin=0.01),
    MetricSpec("escalation", "binary", role="guardrail", direction="decrease", margin=0.01),
    MetricSpec("cost_usd", "continuous", direction="decrease"),
    MetricSpec("tool_error_rate", "ratio", direction="decrease"),
]


class PeerUnavailable(RuntimeError):
    """gbstats could not be installed or run; tuneloop's figures still stand."""


def generate(units: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 2, units, dtype=np.int8)
    treated = groups == 1
    calls = rng.poisson(3.0, units).astype(np.int32)
    return {
        "groups": groups,
        "task_success": rng.random(units) < np.where(treated, 0.205, 0.20),
        "error": rng.random(units) < 0.05,
        "escalation": rng.random(units) < np.where(treated, 0.031, 0.03),
        "cost_usd": rng.gamma(2.0, 0.01, units) * np.where(treated, 0.98, 1.0),
        "tool_calls": calls,
        "tool_errors": rng.binomial(calls, 0.05).astype(np.int32),
    }


def tuneloop_once(data: dict[str, np.ndarray]) -> tuple[float, float, dict[str, Any]]:
    started = time.perf_counter()
    units = UnitGroups(data["groups"], n_groups=2)
    summaries: dict[str, tuple[Any, ...]] = {name: units.proportions(data[name]) for name in BINARY}
    summaries["cost_usd"] = units.means(data["cost_usd"])
    summaries["tool_error_rate"] = units.ratios(data["tool_errors"], data["tool_calls"])
    built = time.perf_counter()
    variants = [
        Variant(name, 0.5, units.counts[k], {metric: s[k] for metric, s in summaries.items()})
        for k, name in enumerate(("control", "treatment"))
    ]
    settings = AnalysisSettings(method="sequential", sequential_tuning=TUNING)
    result = analyze(variants, METRICS, settings).to_dict()
    done = time.perf_counter()
    return built - started, done - built, result


def ensure_gbstats() -> Path:
    """The python of a throwaway venv with gbstats==GBSTATS_VERSION (installed on first use)."""
    python = GBSTATS_VENV / "bin" / "python"
    check = "import gbstats, importlib.metadata as m; print(m.version('gbstats'))"

    def installed() -> str | None:
        if not python.exists():
            return None
        probe = subprocess.run(
            [python, "-c", check], capture_output=True, text=True, timeout=300, check=False
        )
        return probe.stdout.strip() if probe.returncode == 0 else None

    if installed() != GBSTATS_VERSION:
        interpreter = shutil.which("python3.11")
        if interpreter is None:
            raise PeerUnavailable("python3.11 is not on PATH (gbstats 0.8.0 needs numpy<2)")
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        log = WORK_DIR / "gbstats-install.log"
        print(f"installing gbstats=={GBSTATS_VERSION} into {GBSTATS_VENV} (log: {log}) ...")
        steps = [
            [interpreter, "-m", "venv", str(GBSTATS_VENV)],
            [str(python), "-m", "pip", "install", "-q", f"gbstats=={GBSTATS_VERSION}"],
        ]
        with log.open("w") as out:
            for step in steps:
                try:
                    done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    raise PeerUnavailable(f"`{' '.join(step)}`: {exc}") from exc
                if done.returncode != 0:
                    raise PeerUnavailable(f"`{' '.join(step)}` failed; see {log}")
        if (version := installed()) != GBSTATS_VERSION:
            raise PeerUnavailable(f"gbstats venv imports version {version!r}; see {log}")
    return python


def run_gbstats(data: dict[str, np.ndarray], repeat: int, keep: bool) -> dict[str, Any]:
    python = ensure_gbstats()
    data_dir = WORK_DIR / "stats-engine-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        for name, array in data.items():
            np.save(data_dir / f"{name}.npy", array)
        done = subprocess.run(
            [python, str(PEER_SCRIPT), str(data_dir), str(repeat), str(TUNING)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    finally:
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    if done.returncode != 0:
        raise PeerUnavailable(f"gbstats run failed:\n{done.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(done.stdout)
    return out


class _Timing:
    """Seconds per repetition of one side: the two phases and their sum."""

    def __init__(self, build: list[float], tests: list[float]) -> None:
        self.build, self.tests = build, tests
        totals = [b + t for b, t in zip(build, tests, strict=True)]
        self.total, self.best = statistics.median(totals), min(totals)

    def row(self) -> str:
        return (
            f"{_ms(statistics.median(self.build)):>15} {_ms(statistics.median(self.tests)):>16} "
            f"{_ms(self.total):>11} {_ms(self.best):>11}"
        )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def _close(ours: float | None, theirs: float | None, rel: float, floor: float) -> bool:
    if ours is None or theirs is None:
        return ours is theirs
    return math.isclose(ours, theirs, rel_tol=rel, abs_tol=floor)


def compare_results(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Print both engines' figures side by side; True when every pair agrees."""
    agree = True
    print("\n  agreement (tuneloop | gbstats):")
    for metric in ours["metrics"]:
        name = metric["name"]
        mine, peer = metric["comparisons"][0], theirs["results"][name]
        rows = [
            ("absolute lift", mine["absolute"]["estimate"], peer["absolute"][0], 1e-9, 1e-15),
            ("absolute CI low", mine["absolute"]["lower"], peer["absolute"][1], 1e-5, 1e-12),
            ("relative lift", mine["relative"]["estimate"], peer["relative"][0], 1e-9, 1e-15),
            ("relative CI low", mine["relative"]["lower"], peer["relative"][1], 1e-5, 1e-12),
            ("p-value", mine["p_value"], peer["p_value"], 1e-4, 1e-9),
            (
                "sequence low",
                mine["sequential_absolute"]["lower"],
                peer["sequential_absolute"][1],
                1e-9,
                1e-15,
            ),
            (
                "rel. sequence low",
                mine["sequential_relative"]["lower"],
                peer["sequential_relative"][1],
                1e-9,
                1e-15,
            ),
            (
                "always-valid p",
                mine["always_valid_p_value"],
                peer["sequential_p_value"],
                1e-6,
                1e-12,
            ),
        ]
        for label, a, b, rel, floor in rows:
            ok = _close(a, b, rel, floor)
            agree &= ok
            print(
                f"    {name:<16} {label:<16} {a:>+14.7g} | {b:>+14.7g}  {'ok' if ok else 'DIFFERS'}"
            )
    srm_ok = _close(ours["srm"]["p_value"], theirs["results"]["srm_p_value"], 1e-9, 1e-300)
    agree &= srm_ok
    print(
        f"    {'srm':<16} {'p-value':<16} {ours['srm']['p_value']:>+14.7g} | "
        f"{theirs['results']['srm_p_value']:>+14.7g}  {'ok' if srm_ok else 'DIFFERS'}"
    )
    return agree


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (median reported)")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--peer", choices=["gbstats", "none"], default="gbstats")
    parser.add_argument("--keep-data", action="store_true", help="keep the .npy files")
    args = parser.parse_args()

    started = time.perf_counter()
    data = generate(args.units, args.seed)
    print(
        f"{args.units:,} units, 2 variants, 5 metrics (3 binary, 1 continuous, 1 ratio); "
        f"generated in {time.perf_counter() - started:.1f} s; median of {args.repeat} runs"
    )
    build, tests = [], []
    result: dict[str, Any] = {}
    for i in range(args.repeat + 1):  # the first run warms up and is dropped
        build_s, tests_s, result = tuneloop_once(data)
        if i:
            build.append(build_s)
            tests.append(tests_s)
    ours = _Timing(build, tests)
    print(f"  {'':<16} {'build summaries':>15} {'tests + results':>16} {'total':>11} {'best':>11}")
    verdict = "PASS" if ours.total < TARGET_S else "MISS"
    print(f"  {'tuneloop':<16} {ours.row()}   target < 1 s (median): {verdict}")
    if args.peer != "none":
        try:
            peer = run_gbstats(data, args.repeat, args.keep_data)
        except PeerUnavailable as exc:
            print(f"  gbstats: not measured ({exc})")
            args.peer = "none"
    if args.peer != "none":
        theirs = _Timing(peer["timings"]["build"], peer["timings"]["tests"])
        print(
            f"  {'gbstats ' + GBSTATS_VERSION:<16} {theirs.row()}   "
            f"(numpy {peer['versions']['numpy']}, its own venv)"
        )
        print(
            f"  gbstats / tuneloop: total {theirs.total / ours.total:.2f}x, "
            f"tests {statistics.median(theirs.tests) / statistics.median(ours.tests):.2f}x"
        )
    print(f"  recommendation: {result['recommendation']['message']}")
    if args.peer == "none":
        return
    values = {m["name"]: m["values"] for m in result["metrics"]}
    sums_ok = peer["sums"]["n"] == [v["units"] for v in values["task_success"]]
    print(f"  same units per variant on both sides: {'yes' if sums_ok else 'NO'}")
    if not compare_results(result, peer):
        print("  the engines disagree beyond tolerance", file=sys.stderr)
        sys.exit(1)
    print("  every figure agrees within tolerance")


if __name__ == "__main__":
    main()

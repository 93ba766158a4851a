"""The gbstats half of benchmarks/stats_engine.py; runs in gbstats' own virtualenv.

gbstats 0.8.0 pins numpy<2 and pandas<2, so it cannot share the project's venv. This
script must not import tuneloop. It loads the per-unit arrays the main script saved
(loading is not timed), then times, per repetition:

- ``build``: per-variant sufficient statistics from the per-unit arrays with numpy
  (gbstats starts from sums and has no builder): the values of each variant selected
  with a boolean mask, then ``sum`` and ``einsum`` sums of products (the primitive
  tuneloop uses too: BLAS ``@`` wakes worker threads, which costs more than the pass on
  a busy machine);
- ``tests``: gbstats statistics objects and, per metric, ``TwoSidedTTest`` (relative and
  absolute) and ``SequentialTwoSidedTTest`` (relative and absolute), plus ``check_srm``.

Prints one JSON document: timings (seconds per repetition) and the last repetition's
results, for the main script to compare with tuneloop's.

Usage: ``python _gbstats_peer.py DATA_DIR REPEAT TUNING``
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from gbstats.frequentist.tests import (
    FrequentistConfig,
    SequentialConfig,
    SequentialTwoSidedTTest,
    TwoSidedTTest,
)
from gbstats.models.statistics import ProportionStatistic, RatioStatistic, SampleMeanStatistic
from gbstats.utils import check_srm

BINARY = ("task_success", "error", "escalation")


def dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.einsum("i,i->", a, b))


def build(data: dict[str, np.ndarray]) -> list[dict[str, object]]:
    groups = data["groups"]
    out = []
    for k in range(2):
        mask = groups == k
        n = int(np.count_nonzero(mask))
        stats: dict[str, object] = {"n": n}
        for name in BINARY:
            stats[name] = ProportionStatistic(n=n, sum=float(np.count_nonzero(data[name][mask])))
        cost = data["cost_usd"][mask]
        stats["cost_usd"] = SampleMeanStatistic(
            n=n, sum=float(cost.sum()), sum_squares=dot(cost, cost)
        )
        errors = data["tool_errors"][mask].astype(np.float64)
        calls = data["tool_calls"][mask].astype(np.float64)
        stats["tool_error_rate"] = RatioStatistic(
            n=n,
            m_statistic=SampleMeanStatistic(
                n=n, sum=float(errors.sum()), sum_squares=dot(errors, errors)
            ),
            d_statistic=SampleMeanStatistic(
                n=n, sum=float(calls.sum()), sum_squares=dot(calls, calls)
            ),
            m_d_sum_of_products=dot(errors, calls),
        )
        out.append(stats)
    return out


def tests(stats: list[dict[str, object]], tuning: float) -> dict[str, object]:
    results: dict[str, object] = {}
    for name in (*BINARY, "cost_usd", "tool_error_rate"):
        a, b = stats[0][name], stats[1][name]
        relative = TwoSidedTTest(
            a, b, FrequentistConfig(difference_type="relative")
        ).compute_result()
        absolute = TwoSidedTTest(
            a, b, FrequentistConfig(difference_type="absolute")
        ).compute_result()
        seq_relative = SequentialTwoSidedTTest(
            a, b, SequentialConfig(difference_type="relative", sequential_tuning_parameter=tuning)
        ).compute_result()
        seq_absolute = SequentialTwoSidedTTest(
            a, b, SequentialConfig(difference_type="absolute", sequential_tuning_parameter=tuning)
        ).compute_result()
        results[name] = {
            "absolute": [absolute.expected, *absolute.ci],
            "relative": [relative.expected, *relative.ci],
            "p_value": absolute.p_value,
            "sequential_absolute": [seq_absolute.expected, *seq_absolute.ci],
            "sequential_relative": [seq_relative.expected, *seq_relative.ci],
            "sequential_p_value": seq_absolute.p_value,
        }
    results["srm_p_value"] = float(check_srm([stats[0]["n"], stats[1]["n"]], [0.5, 0.5]))
    return results


def main() -> None:
    data_dir, repeat, tuning = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    data = {path.stem: np.load(path) for path in data_dir.glob("*.npy")}
    timings: dict[str, list[float]] = {"build": [], "tests": []}
    results: dict[str, object] = {}
    for _ in range(repeat + 1):  # the first repetition warms up and is dropped
        started = time.perf_counter()
        stats = build(data)
        built = time.perf_counter()
        results = tests(stats, tuning)
        done = time.perf_counter()
        timings["build"].append(built - started)
        timings["tests"].append(done - built)
    sums = {
        "n": [s["n"] for s in stats],
        "task_success": [s["task_success"].sum for s in stats],
        "cost_usd": [s["cost_usd"].sum for s in stats],
        "tool_errors": [s["tool_error_rate"].m_statistic.sum for s in stats],
    }
    json.dump(
        {
            "timings": {key: values[1:] for key, values in timings.items()},
            "results": results,
            "sums": sums,
            "versions": {"numpy": np.__version__, "python": sys.version.split()[0]},
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()

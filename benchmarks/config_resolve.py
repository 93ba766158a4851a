"""Time of one `Client.config` call with a running experiment, against GrowthBook's SDK.

One agent state with a production version and one running two-arm experiment (50/50,
full coverage) is served to a real `tuneloop.Client` through an ``httpx.MockTransport``;
the benchmark waits for it (a warm state), then times ``client.config("support",
unit_id=...)`` over distinct unit ids. The same decision is made by GrowthBook's Python
SDK (the ``growthbook`` package) in the same run: one feature whose only rule is the
experiment, evaluated locally from a features dict built in-process, no network; each
call sets the unit's ``id`` attribute on one `GrowthBook` instance and calls
``eval_feature``, the cheapest way its synchronous API evaluates a new unit.

Three set-ups, interleaved round by round (a round is one call per unit) so drift hits
them alike:

- ``tuneloop, no run``: `Client.config` outside any run (resolve only);
- ``tuneloop, in a run``: the first `Client.config` call inside a fresh
  ``client.run(...)``, which also records the version, experiment and variant on the
  run's span; only the call is timed, not the run around it;
- ``growthbook``: ``set_attributes`` + ``eval_feature``.

Every call is timed on its own with `time.perf_counter_ns` (the timer's own cost, a few
tens of ns, is printed and included); reported are the median and the 90th percentile
per call, and the share of units each side put in the second arm (both near 50 %: each
side really assigns). Targets: tuneloop's median under 10 µs per call and no slower
than GrowthBook's. Wall-clock on a possibly shared machine: treat the figures as noisy.

Usage: ``python benchmarks/config_resolve.py [--rounds 5] [--budget-s 30]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import httpx
from growthbook import GrowthBook

from tuneloop.config.canonical import content_hash
from tuneloop.config.model import AgentConfig
from tuneloop.config.state import AgentState
from tuneloop.sdk import Client

AGENT = "support"
EXPERIMENT = "exp-router"
SALT = "exp-router-salt"
UNITS = 10_000


def version(temperature: float, router: str) -> dict[str, Any]:
    config = AgentConfig.from_data(
        {
            "model": {"provider": "openai", "name": "gpt-4o"},
            "params": {"temperature": temperature},
            "prompts": {"system": "You are a support agent.", "router": router},
            "tools": {"data_fetch": {"timeout_ms": 2000}},
        }
    ).to_data()
    return {"version": content_hash(config), "config": config}


def agent_state() -> AgentState:
    stable = version(0.2, "Route the question.")
    candidate = version(0.7, "Route the question, then check the refund policy.")
    body = {
        "agent": AGENT,
        "production": stable,
        "allocations": [
            {
                "kind": "experiment",
                "key": EXPERIMENT,
                "salt": SALT,
                "variants": [
                    {"name": "control", "weight": 0.5, "version": stable},
                    {"name": "treatment", "weight": 0.5, "version": candidate},
                ],
            }
        ],
        "flags": [],
    }
    return AgentState.model_validate({**body, "etag": content_hash(body), "generated_ms": 0})


def growthbook_features(state: AgentState) -> dict[str, Any]:
    """The same experiment as a GrowthBook feature whose value is the version hash."""
    (allocation,) = state.allocations
    return {
        "support-config": {
            "defaultValue": state.production.version if state.production else None,
            "rules": [
                {
                    "key": allocation.key,
                    "seed": allocation.salt,
                    "hashAttribute": "id",
                    "hashVersion": 2,
                    "coverage": allocation.coverage,
                    "weights": [v.weight for v in allocation.variants],
                    "variations": [v.version.version for v in allocation.variants],
                }
            ],
        }
    }


class Setup:
    """One way of deciding, timed call by call with `time.perf_counter_ns`."""

    def __init__(self, name: str, decide: Callable[[str], bool], *, in_run: Client | None = None):
        self.name, self.decide, self.in_run = name, decide, in_run
        self.ns: list[int] = []
        self.second_arm = 0

    def measure(self, units: list[str]) -> None:
        decide, clock, times = self.decide, time.perf_counter_ns, self.ns
        for unit in units:
            if self.in_run is not None:
                with self.in_run.run(AGENT, unit_id=unit):
                    start = clock()
                    hit = decide(unit)
                    times.append(clock() - start)
            else:
                start = clock()
                hit = decide(unit)
                times.append(clock() - start)
            self.second_arm += hit

    def median_us(self) -> float:
        return statistics.median(self.ns) / 1000

    def p90_us(self) -> float:
        return statistics.quantiles(self.ns, n=10)[-1] / 1000


def timer_overhead_ns(samples: int = 100_000) -> float:
    """What one pair of `perf_counter_ns` calls costs (included in every figure)."""
    clock = time.perf_counter_ns
    spans = []
    for _ in range(samples):
        start = clock()
        spans.append(clock() - start)
    return statistics.median(spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds over the units, at most")
    parser.add_argument(
        "--budget-s", type=float, default=30.0, help="no new round after this many seconds"
    )
    args = parser.parse_args()

    state = agent_state()
    body = state.model_dump_json().encode()

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/api/v1/agents/{AGENT}/state":
            return httpx.Response(200, headers={"ETag": f'"{state.etag}"'}, content=body)
        return httpx.Response(200)

    units = [f"user-{i}" for i in range(UNITS)]
    treatment = state.allocations[0].variants[1].version.version
    with tempfile.TemporaryDirectory() as state_dir:
        client = Client(
            "http://bench.test",
            "bench-key",
            transport=httpx.MockTransport(serve),
            agents=[AGENT],
            state_dir=state_dir,
            state_refresh_s=3600.0,
        )
        if not client.wait_for_state(10.0):
            raise SystemExit("the benchmark state was not loaded; see client.stats.last_error")

        def ours(unit: str) -> bool:
            return client.config(AGENT, unit_id=unit).variant == "treatment"

        gb = GrowthBook(features=growthbook_features(state))

        def theirs(unit: str) -> bool:
            gb.set_attributes({"id": unit})
            return bool(gb.eval_feature("support-config").value == treatment)

        plain = Setup("tuneloop, no run", ours)
        in_run = Setup("tuneloop, in a run", ours, in_run=client)
        growthbook = Setup("growthbook", theirs)
        setups = [plain, in_run, growthbook]

        # Warm up, then size the rounds to the time budget (a run costs far more than a call).
        for setup in setups:
            setup.measure(units[:500])
            setup.ns.clear()
            setup.second_arm = 0
        started = time.perf_counter()
        rounds = 0
        while rounds < args.rounds and (
            rounds == 0 or time.perf_counter() - started < args.budget_s
        ):
            for setup in setups:  # interleaved, so drift hits every set-up alike
                setup.measure(units)
            rounds += 1
        client.shutdown()
        overhead = timer_overhead_ns()

    print(
        f"{rounds} rounds over {UNITS} units, one 50/50 experiment, a warm state; per call, "
        f"timer included ({overhead:.0f} ns)"
    )
    print(f"  {'':<20} {'median µs':>10} {'p90 µs':>8} {'treatment':>10}")
    for setup in setups:
        share = setup.second_arm / len(setup.ns)
        print(f"  {setup.name:<20} {setup.median_us():10.2f} {setup.p90_us():8.2f} {share:10.1%}")
    for setup in (plain, in_run):
        ratio = setup.median_us() / growthbook.median_us()
        verdict = "PASS" if setup.median_us() < 10.0 and ratio <= 1.0 else "MISS"
        print(f"  {setup.name} / growthbook: {ratio:.3f}x   target <10 µs and <=1x: {verdict}")
    print(f"  measured in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

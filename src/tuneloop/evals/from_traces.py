"""Datasets from production: sample stored runs into eval cases for review.

``tuneloop eval dataset from-traces --agent support --where outcome=failure --limit 200``
reads the agent's newest stored runs matching the filters (or, with ``pool``, picks
``limit`` of the newest ``pool`` by a seeded hash of their trace ids: the same runs for
the same seed), reads each trace (`read_production_run`) and writes one case per run.
A case holds the run's input; what production answered and did goes under
``metadata.observed`` for a reviewer to turn into ``expected`` (or, with
``expect_observed``, straight into ``expected``: a regression set from runs that went
well). Runs with no readable input, and runs traced by evals themselves, are skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tuneloop.errors import InvalidInputError
from tuneloop.evals.evaluators.base import json_safe
from tuneloop.evals.production import ProductionRun, read_production_run

RUN_FILTERS = frozenset(
    {"version", "variant", "experiment", "outcome", "unit_id", "session_id", "since", "until"}
)
_PAGE = 500


class TraceSource(Protocol):
    """Where stored runs are read from (`tuneloop.evals.remote.EvalServer` is one)."""

    def traces(self, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """One page of runs: ``{"items": [...], "next_cursor": ...}``."""
        ...

    def trace(self, trace_id: str) -> dict[str, Any]:
        """One trace document: ``run`` facts and ``spans``."""
        ...


@dataclass(frozen=True, slots=True)
class Sample:
    """Sampled production runs, and how many were listed and passed over."""

    runs: tuple[ProductionRun, ...]
    listed: int
    skipped: int


def parse_where(items: Iterable[str]) -> list[tuple[str, str]]:
    """``KEY=VALUE`` filters as trace-search parameters.

    Run columns (``outcome``, ``version``, ``variant``, ``experiment``, ``unit_id``,
    ``session_id``, ``since``, ``until``) filter directly; any other key matches a
    root-span attribute (``support.intent=refund``).

    Raises:
        InvalidInputError: an item is not ``KEY=VALUE``, or names ``agent`` (use --agent).
    """
    params = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInputError(
                f"invalid filter {item[:80]!r}: write KEY=VALUE (outcome=failure)"
            )
        if key == "agent":
            raise InvalidInputError("filter the agent with --agent, not --where agent=...")
        params.append((key, value) if key in RUN_FILTERS else ("attr", f"{key}={value}"))
    return params


def sample_production_runs(
    source: TraceSource,
    *,
    agent: str,
    where: Sequence[tuple[str, str]] = (),
    limit: int,
    pool: int | None = None,
    seed: str = "tuneloop",
    workers: int = 8,
) -> Sample:
    """Up to ``limit`` readable production runs of ``agent``, newest first.

    Args:
        source: where runs are read.
        agent: the agent.
        where: trace-search parameters (`parse_where`).
        limit: runs wanted.
        pool: pick from this many of the newest matching runs, by a seeded hash of
            their trace ids (a spread-out sample); None: simply the newest readable runs.
        seed: picks the same runs from the same pool.
        workers: traces fetched at once.

    Raises:
        InvalidInputError: ``limit`` or ``pool`` is not positive, or ``pool < limit``.
    """
    if limit < 1 or (pool is not None and pool < limit):
        raise InvalidInputError(f"need 1 <= limit <= pool, got limit {limit} and pool {pool}")
    chosen: list[ProductionRun] = []
    skipped = listed = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as executor:

        def take(batch: Sequence[Mapping[str, Any]]) -> None:
            nonlocal skipped
            for trace in executor.map(lambda item: source.trace(item["trace_id"]), batch):
                run = read_production_run(trace)
                if run is None:
                    skipped += 1
                else:
                    chosen.append(run)

        if pool is None:
            # The newest runs, paging on past those without a readable input.
            for page in _pages(source, agent, where, None, page_size=min(_PAGE, limit)):
                listed += len(page)
                take(page[: limit - len(chosen)])
                if len(chosen) >= limit:
                    break
        else:
            pages = _pages(source, agent, where, pool, page_size=_PAGE)
            everything = [item for page in pages for item in page]
            listed = len(everything)
            ranked = sorted(everything, key=lambda item: _rank(seed, str(item["trace_id"])))
            start = 0
            while len(chosen) < limit and start < len(ranked):
                batch = ranked[start : start + limit - len(chosen)]
                start += len(batch)
                take(batch)
    newest_first = sorted(chosen, key=lambda run: (run.started_ms or 0, run.trace_id), reverse=True)
    return Sample(tuple(newest_first), listed, skipped)


def _pages(
    source: TraceSource,
    agent: str,
    where: Sequence[tuple[str, str]],
    most: int | None,
    *,
    page_size: int,
) -> Iterator[list[Mapping[str, Any]]]:
    """Pages of runs, newest first: ``most`` runs at most, or every one when None."""
    cursor: str | None = None
    seen = 0
    while most is None or seen < most:
        size = page_size if most is None else min(page_size, most - seen)
        params = [("agent", agent), *where, ("limit", str(size))]
        if cursor:
            params.append(("cursor", cursor))
        page = source.traces(params)
        items = list(page["items"])
        seen += len(items)
        if items:
            yield items
        cursor = page.get("next_cursor")
        if not cursor:
            return


def _rank(seed: str, trace_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{trace_id}".encode()).digest()


def to_case(
    run: ProductionRun, *, category: str = "production", expect_observed: bool = False
) -> dict[str, Any]:
    """One dataset case for a production run (see the module docstring)."""
    observed = {
        "output": json_safe(run.output),
        "tool_calls": [call.to_dict() for call in run.tool_calls],
    }
    metadata: dict[str, Any] = {
        "trace_id": run.trace_id,
        "agent": run.agent,
        "version": run.version,
        "outcome": run.outcome,
        "started_ms": run.started_ms,
        "latency_ms": run.latency_ms,
        "cost_usd": run.cost_usd,
        "tool_errors": run.tool_errors,
        "error_type": run.error_type,
        "observed": observed,
    }
    if run.truncated:
        metadata["truncated"] = True
    if run.feedback:
        metadata["feedback"] = json_safe(list(run.feedback))
    case: dict[str, Any] = {
        "id": f"trace-{run.trace_id}",
        "input": json_safe(run.input),
        "category": category,
        "tags": ["from-traces", f"outcome-{run.outcome or 'unknown'}"],
        "metadata": metadata,
    }
    if expect_observed:
        expected: dict[str, Any] = {
            "tool_calls": [{"name": c.name, "arguments": dict(c.arguments)} for c in run.tool_calls]
        }
        if run.output is not None:
            expected["output"] = observed["output"]
        case["expected"] = expected
    return case


def write_cases(path: Path, cases: Sequence[Mapping[str, Any]]) -> None:
    """Write cases as JSONL, one per line, in the form `tuneloop.evals.load_dataset` reads.

    Raises:
        InvalidInputError: the file cannot be written.
    """
    lines = [json.dumps(case, ensure_ascii=False, allow_nan=False) for case in cases]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(
            f"cannot write the dataset to {path}: {exc.strerror or exc}"
        ) from None

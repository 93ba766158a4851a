"""Which cases a stage runs.

``pre-merge``: a small fast subset; ``post-merge``: every non-adversarial case;
``production``: every case, adversarial ones included.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict

from tuneloop.errors import ConfigError
from tuneloop.evals.dataset import Case
from tuneloop.evals.suite import StageSpec, Suite


def select_cases(suite: Suite, stage: str) -> tuple[Case, ...]:
    """The cases ``stage`` runs, in dataset order (see `StageSpec` for the rules).

    Raises:
        ConfigError: the suite defines no such stage, or the stage selects no case.
    """
    spec = suite.stages.get(stage)
    if spec is None:
        raise ConfigError(
            f"suite {suite.path}: unknown stage {stage!r}; stages: {', '.join(suite.stages)}"
        )
    pool = [
        case
        for case in suite.cases
        if (spec.adversarial or not suite.is_adversarial(case))
        and (spec.categories is None or case.category in spec.categories)
    ]
    chosen = _choose(pool, spec)
    if not chosen:
        raise ConfigError(
            f"suite {suite.path}: stage {stage!r} selects no case (tags {spec.tags}, "
            f"categories {spec.categories}, adversarial {spec.adversarial})"
        )
    return tuple(chosen)


def _choose(pool: list[Case], spec: StageSpec) -> list[Case]:
    if spec.tags:
        tagged = [case for case in pool if set(case.tags) & set(spec.tags)]
        if tagged:
            return tagged
    if spec.sample is not None:
        return deterministic_sample(pool, spec.sample, seed=spec.seed)
    return pool


def deterministic_sample(cases: list[Case], fraction: float, *, seed: str) -> list[Case]:
    """``ceil(fraction * n)`` cases of each category, at least one, by a seeded hash of the id.

    The same ids are picked run after run, and adding a case moves at most one pick per
    category, so a pre-merge sample is stable while a dataset grows.
    """
    by_category: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_category[case.category].append(case)
    picked: set[str] = set()
    for members in by_category.values():
        count = max(1, math.ceil(fraction * len(members)))
        ranked = sorted(members, key=lambda case: _rank(seed, case.id))
        picked.update(case.id for case in ranked[:count])
    return [case for case in cases if case.id in picked]


def _rank(seed: str, case_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{case_id}".encode()).digest()

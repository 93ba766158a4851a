"""Eval runs: the list, one run's per-category pass rates and pass^k, a per-case diff of two.

The pages read `EvalRepository` (``store.evals``) as ``/api/v1/eval-runs`` does; the
diff is `diff_runs` with `comparability_warnings`, what `EvalRepository.diff` answers
and the CI gate uses (an exact test per case).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import URL

from tuneloop.errors import InvalidInputError
from tuneloop.evals.compare import Change, comparability_warnings, diff_runs
from tuneloop.server.dashboard.routing import DashboardRoute, session_of
from tuneloop.server.dashboard.site import NavEntry, dashboard_of
from tuneloop.store import Store

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
NAV = NavEntry("Evals", "/ui/evals", ("/ui/evals",))
PAGE = 50
CASE_ROWS = 500
# Worst first: what a reviewer of a diff wants to read before the rest.
CHANGE_ORDER: tuple[Change, ...] = ("regressed", "worse_within_noise", "removed", "added",
                                    "better_within_noise", "improved", "unchanged")  # fmt: skip
CHANGE_CSS = {"regressed": "bad", "worse_within_noise": "warn", "removed": "idle",
              "added": "info", "better_within_noise": "info", "improved": "good",
              "unchanged": "idle"}  # fmt: skip


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def version_labels(store: Store, project_id: str, agents: set[str]) -> dict[str, str]:
    """Version labels by hash for the agents a page lists (config tables are small)."""
    labels: dict[str, str] = {}
    for agent in sorted(agents):
        labels.update(
            {v.hash: v.label for v in store.configs.list_versions(project_id, agent, limit=200)}
        )
    return labels


def _text(value: str, name: str) -> str | None:
    value = value.strip()
    if len(value) > 256:
        raise InvalidInputError(f"{name} is at most 256 characters")
    return value or None


@router.get("/ui/evals")
def evals_page(
    request: Request, agent: str = "", suite: str = "", cursor: str | None = None
) -> Response:
    """Stored eval runs, newest upload first, with a form to diff two of them."""
    session = session_of(request)
    wanted_agent, wanted_suite = _text(agent, "agent"), _text(suite, "suite")
    store = _store(request)
    runs, next_cursor = store.evals.list_runs(
        session.project_id, agent=wanted_agent, suite=wanted_suite, limit=PAGE, cursor=cursor
    )
    kept = {k: v for k, v in (("agent", wanted_agent), ("suite", wanted_suite)) if v}
    return dashboard_of(request).render(
        request,
        "evals.html",
        {
            "runs": runs,
            "labels": version_labels(store, session.project_id, {r.agent for r in runs}),
            "agent": agent,
            "suite": suite,
            "next_url": str(URL("/ui/evals").include_query_params(**kept, cursor=next_cursor))
            if next_cursor
            else None,
            "first_url": str(URL("/ui/evals").include_query_params(**kept)) if cursor else None,
        },
    )


@router.get("/ui/evals/diff")
def diff_form(request: Request, baseline: str = "", current: str = "") -> Response:
    """The compare form's target: on to the diff of the two runs chosen."""
    if not baseline or not current:
        raise InvalidInputError("choose two runs to compare: a baseline and a current run")
    return RedirectResponse(f"/ui/evals/{baseline}/diff/{current}", status_code=303)


@router.get("/ui/evals/{run_id}")
def eval_run_page(request: Request, run_id: str) -> Response:
    """One run: overall and per-category pass rates, pass^k, its gate, and every case."""
    session = session_of(request)
    store = _store(request)
    stored = store.evals.get_run(session.project_id, run_id)
    run = stored.run
    cases = sorted(run.cases, key=lambda case: (case.pass_rate, case.category, case.case_id))
    categories = sorted(run.categories.values(), key=lambda agg: agg.scope)
    return dashboard_of(request).render(
        request,
        "eval_run.html",
        {
            "summary": stored.summary,
            "labels": version_labels(store, session.project_id, {stored.summary.agent}),
            "run": run,
            "categories": categories,
            "bars": [(agg.scope, agg.pass_rate) for agg in categories],
            "cases": cases[:CASE_ROWS],
            "more_cases": max(len(cases) - CASE_ROWS, 0),
            "pass_hat": pass_hat_items,
        },
    )


@router.get("/ui/evals/{baseline_id}/diff/{current_id}")
def eval_diff_page(request: Request, baseline_id: str, current_id: str) -> Response:
    """Per-case changes from a baseline run to a current one, regressions first."""
    session = session_of(request)
    store = _store(request)
    baseline, current = (
        store.evals.get_run(session.project_id, run_id) for run_id in (baseline_id, current_id)
    )
    # What EvalRepository.diff answers, from the two runs read once for the summaries too.
    diff = diff_runs(baseline.run, current.run)
    warnings = comparability_warnings(baseline.run, current.run)
    order = {change: i for i, change in enumerate(CHANGE_ORDER)}
    cases = sorted(diff.cases, key=lambda case: (order[case.change], case.category, case.case_id))
    counts = diff.counts()
    return dashboard_of(request).render(
        request,
        "eval_diff.html",
        {
            "diff": diff,
            "warnings": warnings,
            "cases": cases[:CASE_ROWS],
            "more_cases": max(len(cases) - CASE_ROWS, 0),
            "counts": [(change, counts.get(change, 0)) for change in CHANGE_ORDER],
            "change_css": CHANGE_CSS,
            "baseline": baseline.summary,
            "current": current.summary,
        },
    )


def pass_hat_items(aggregate: Any) -> list[tuple[int, float]]:
    """pass^j for j = 1..k, in order."""
    return sorted((int(j), float(v)) for j, v in aggregate.pass_hat.items())

"""The quality-loop pages over HTTP on SQLite and PostgreSQL: what they show and what they do.

One seeded server per engine for the module (`loop_seed`). The read-only tests come
first; the tests that act (dismiss, reject, pause, approve, abort, stop and conclude)
come after them, each on its own object. The last test checks the SQLite query plans of
every statement the pages run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.dashboard.conftest import DashServer, csrf_of, make_server, sign_in
from tests.dashboard.loop_seed import (
    EXPERIMENT,
    EXPERIMENT_SUCCESSES,
    EXPERIMENT_UNITS,
    Loop,
    seed_loop,
)
from tuneloop.server.dashboard import (
    AREAS,
    pages_alerts,
    pages_evals,
    pages_experiments,
    pages_recommendations,
    pages_review,
    pages_rollouts,
)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def loop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DashServer, Loop]]:
    from tests.conftest import _wipe
    from tuneloop.store import Store

    home = tmp_path_factory.mktemp("dashboard-loop")
    if request.param == "sqlite":
        store: Any = Store.open(f"sqlite:///{home / 'tuneloop.db'}")
    else:
        store = request.getfixturevalue("_postgres_store")
    server, thread, running = make_server(store, home)
    try:
        yield running, seed_loop(running, server.config.app)
    finally:
        server.should_exit = True
        thread.join(10)
        if request.param == "sqlite":
            store.close()
        else:
            _wipe(store)


@pytest.fixture
def ui(loop: tuple[DashServer, Loop]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=loop[0].url, timeout=30) as client:
        assert sign_in(client, loop[0].admin_key).status_code == 303
        yield client


def text_of(html: str) -> str:
    html = re.sub(r"<(script|style|title)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def element(html: str, tag: str, attribute: str, value: str) -> str:
    """The whole element ``<tag ... attribute="value" ...>...</tag>`` (not nested in itself)."""
    found = re.search(
        rf'<{tag}\b[^>]*{attribute}="{re.escape(value)}"[^>]*>.*?</{tag}>', html, re.S
    )
    assert found, f"no <{tag} {attribute}={value!r}>"
    return found.group(0)


def field(html: str, name: str) -> str:
    found = re.search(rf'data-field="{name}"[^>]*>(.*?)</', html, re.S)
    assert found, f"no field {name}"
    return text_of(found.group(1))


def post(ui: httpx.Client, page: str, action: str, **data: str) -> httpx.Response:
    """Submit a form of ``page`` with the page's CSRF token."""
    token = csrf_of(ui.get(page).text)
    return ui.post(action, data={"csrf": token, **data})


# -- navigation and pages ---------------------------------------------------------------


def test_every_loop_page_is_in_the_navigation_in_order(ui: httpx.Client) -> None:
    nav = re.search(r'<nav class="mainnav".*?</nav>', ui.get("/ui/").text, re.S)
    assert nav is not None
    assert re.findall(r">([A-Za-z]+)</a>", nav.group(0)) == [
        "Overview", "Traces", "Experiments", "Rollouts", "Recommendations", "Evals", "Review",
        "Alerts",
    ]  # fmt: skip
    for area in (pages_experiments, pages_rollouts, pages_recommendations, pages_evals,
                 pages_review, pages_alerts):  # fmt: skip
        assert area in AREAS
    active = re.search(r'<a href="/ui/rollouts" class="active"', ui.get("/ui/rollouts").text)
    assert active is not None


def test_the_overview_links_the_running_experiment_and_rollout(
    ui: httpx.Client, loop: tuple[DashServer, Loop]
) -> None:
    html = ui.get("/ui/").text
    assert f'href="/ui/experiments/{EXPERIMENT}"' in element(
        html, "article", "data-agent", "triage"
    )
    orders = element(html, "article", "data-agent", "orders")
    assert f'href="/ui/rollouts/{loop[1].rollout_id}"' in orders


def test_the_experiment_shows_lifts_with_intervals_srm_and_guardrails(ui: httpx.Client) -> None:
    listing = ui.get("/ui/experiments?status=running").text
    row = element(listing, "tr", "data-experiment", EXPERIMENT)
    assert "triage" in row and 'data-state="running"' in row
    assert "control 1.0.0 · 50 %" in text_of(row)
    assert ui.get("/ui/experiments?status=draft").text.count("data-experiment=") == 0

    html = ui.get(f"/ui/experiments/{EXPERIMENT}").text
    control, concise = (s / EXPERIMENT_UNITS for s in EXPERIMENT_SUCCESSES.values())
    lift = concise / control - 1
    success = element(html, "tr", "data-variant", "concise")
    assert 'data-metric="task_success"' in success
    assert field(success, "value") == f"{concise * 100:.1f} %"
    assert field(success, "lift") == f"+{lift * 100:.1f} %"
    # Sequential: the interval is the confidence sequence, wide at 48 units, around the lift.
    low, high = re.findall(r"([-+][\d.]+) %", field(success, "interval"))
    assert float(low) < lift * 100 < float(high)
    assert field(success, "result") == "no significant difference"
    assert '<svg class="ci"' in success
    assert text_of(element(html, "li", "data-field", "srm")).startswith("Sample ratio ok p = 1.000")
    assert field(html, "srm") != ""
    guard = element(html, "li", "data-guardrail", "error_rate")
    # One error in 24 units on each side: no difference, but 48 units cannot show it is
    # within 5 points with always-valid bounds.
    assert 'data-verdict="inconclusive"' in guard
    assert "worse by +0.00 pp (bounds -" in text_of(guard) and "margin +5.00 pp" in text_of(guard)
    recommendation = element(html, "p", "data-field", "recommendation")
    assert 'data-action="keep_running"' in recommendation
    assert re.search(r'<figure class="panel" id="sequential">.*?<svg class="chart"', html, re.S)
    assert 'data-action="stop"' in html and 'data-action="conclude"' not in html


def test_the_rollout_shows_its_steps_and_the_guard_figures_of_each_evaluation(
    ui: httpx.Client, loop: tuple[DashServer, Loop]
) -> None:
    rollout = loop[1].rollout_id
    listing = ui.get("/ui/rollouts").text
    assert "10 %" in text_of(element(listing, "tr", "data-rollout", rollout))
    html = ui.get(f"/ui/rollouts/{rollout}").text
    assert field(html, "weight") == "10 %"
    assert field(html, "step") == "1 of 3"
    states = re.findall(r'data-step="(\d)" data-state="([^"]+)"', html)
    assert states == [("1", "current"), ("2", "needs approval"), ("3", "to come")]
    start = element(html, "li", "data-decision", "start")
    assert "rollout of 1.1.0 started against 1.0.0: 10 % of units on the candidate" in start
    hold = element(html, "li", "data-decision", "hold")
    assert "candidate 24 units / 24 runs · stable 24 units / 24 runs" in text_of(hold)
    success = element(hold, "tr", "data-guard", "task_success_rate")
    # One candidate run of 24 failed: 95.83 % against 100 %, worse by 4.17 points.
    assert "95.83 %" in success and "100.00 %" in success and "worse by +4.17 pp" in success
    errors = element(hold, "tr", "data-guard", "error_rate")
    assert 'data-verdict="non_inferior"' in errors
    assert 'data-action="approve"' in html and "Approve step 2 (50 %)" in html


def test_recommendations_show_evidence_with_links_to_example_traces(
    ui: httpx.Client, loop: tuple[DashServer, Loop]
) -> None:
    server, seeded = loop
    html = ui.get("/ui/recommendations").text  # the agent with open findings is chosen
    timeout = element(html, "article", "data-rec", seeded.recommendations["raise_timeout"])
    assert "Raise data_fetch's timeout to 6 s" in text_of(timeout)
    assert field(timeout, "confidence") == "confidence 82 %"
    impact = text_of(element(timeout, "p", "data-field", "impact"))
    assert impact.startswith("Expected: data_fetch error rate 11.7 % → ~3.0 %")
    for name in ("escalated", "failure"):
        trace = server.seeded.traces[name]
        assert f'href="/ui/traces/{trace}"' in timeout
        assert ui.get(f"/ui/traces/{trace}").status_code == 200
    assert '"path": "/tools/data_fetch/timeout_ms"' in unescape(timeout)
    assert "support (2 open)" in text_of(html)
    # Most confident first.
    assert html.index(seeded.recommendations["raise_timeout"]) < html.index(
        seeded.recommendations["retry"]
    )


def test_an_eval_run_shows_per_category_pass_rates_and_pass_k(ui: httpx.Client) -> None:
    listing = ui.get("/ui/evals?agent=support").text
    assert re.findall(r'<tr data-run="([^"]+)"', listing) == ["eval-current", "eval-baseline"]
    html = ui.get("/ui/evals/eval-baseline").text
    orders = element(html, "tr", "data-category", "orders")
    # order-1 passed 3 of 3 trials, order-2 2 of 3: pass^1 = (1 + 2/3) / 2, pass^2 =
    # (1 + C(2,2)/C(3,2)) / 2, pass^3 = one case of two.
    assert field(orders, "pass-rate") == "83.3 %"
    assert field(orders, "pass-2") == "66.7 %"
    assert field(orders, "pass-3") == "50.0 %"
    assert field(element(html, "tr", "data-category", "refunds"), "pass-rate") == "100.0 %"
    assert field(html, "gate") == "gate passed"
    assert text_of(element(html, "tr", "data-case", "order-2")).startswith("order-2 orders")


def test_the_per_case_diff_of_two_eval_runs_puts_regressions_first(ui: httpx.Client) -> None:
    jump = ui.get("/ui/evals/diff?baseline=eval-baseline&current=eval-current")
    assert jump.status_code == 303
    html = ui.get(jump.headers["location"]).text
    changes = re.findall(r'<tr data-case="([^"]+)" data-change="([^"]+)"', html)
    assert changes[0] == ("refund-1", "regressed")
    assert dict(changes) == {
        "refund-1": "regressed", "order-2": "better_within_noise", "order-3": "added",
        "refund-2": "unchanged", "order-1": "unchanged",
    }  # fmt: skip
    regressed = element(html, "tr", "data-case", "refund-1")
    assert "3 / 3" in regressed and "0 / 3" in regressed and "0.050" in regressed
    assert text_of(element(html, "li", "data-change", "regressed")) == "regressed 1"


def test_the_review_queue_lists_pending_approvals_and_samples(ui: httpx.Client) -> None:
    html = ui.get("/ui/review").text
    refund = element(html, "article", "data-review", "rv-refund")
    assert "Tool call refund" in text_of(refund)
    assert field(refund, "source") == "tool needs approval"
    assert '"amount": 40' in unescape(refund)
    sample = element(html, "article", "data-review", "rv-sample")
    assert field(sample, "source") == "sample"
    assert "Your order 1234 ships tomorrow." in sample
    assert html.index("rv-refund") < html.index("rv-sample")  # oldest first


def test_alerts_show_what_fires_and_what_resolved(ui: httpx.Client) -> None:
    html = ui.get("/ui/alerts").text
    firing = element(html, "section", "id", "firing")
    assert "support escalations" in firing and field(firing, "value") == "25.0 %"
    assert "support completion" not in firing
    history = re.findall(r'data-status="(firing|resolved)" data-name="([^"]+)"', html)
    assert history[0] == ("resolved", "support completion")
    assert sorted(history) == [
        ("firing", "support completion"), ("firing", "support escalations"),
        ("resolved", "support completion"),
    ]  # fmt: skip
    only = ui.get("/ui/alerts?status=resolved").text
    assert re.findall(r'data-status="(firing|resolved)" data-name', only) == ["resolved"]


def test_bad_filters_and_unknown_objects_get_an_html_error(ui: httpx.Client) -> None:
    for path, status, message in (
        ("/ui/experiments?status=won", 400, "unknown status 'won'"),
        ("/ui/experiments/nope", 404, "nope"),
        ("/ui/rollouts/ro-nope", 404, "no rollout 'ro-nope'"),
        ("/ui/recommendations?status=maybe", 400, "unknown status 'maybe'"),
        ("/ui/evals/missing", 404, "no eval run 'missing'"),
        ("/ui/review?status=later", 400, "unknown review status 'later'"),
        ("/ui/alerts?status=loud", 400, "unknown event status 'loud'"),
    ):
        response = ui.get(path)
        assert response.status_code == status, path
        assert response.headers["content-type"].startswith("text/html")
        assert message in text_of(response.text), path


# -- actions ----------------------------------------------------------------------------


def test_a_post_without_its_csrf_token_changes_nothing(
    ui: httpx.Client, loop: tuple[DashServer, Loop]
) -> None:
    for action in (
        "/ui/review/rv-sample/reject",
        f"/ui/rollouts/{loop[1].rollout_id}/abort",
        f"/ui/experiments/{EXPERIMENT}/stop",
        f"/ui/recommendations/support/{loop[1].recommendations['retry']}/accept",
    ):
        assert ui.post(action, data={"reason": "x"}).status_code == 403, action
    assert loop[0].store.runtime.get_review(loop[0].project, "rv-sample").status == "pending"
    assert loop[0].store.rollouts.get(loop[0].project, loop[1].rollout_id).status == "running"


def test_dismissing_needs_a_reason_and_is_recorded(
    ui: httpx.Client, loop: tuple[DashServer, Loop]
) -> None:
    server, seeded = loop
    rec = seeded.recommendations["retry"]
    action = f"/ui/recommendations/support/{rec}/dismiss"
    refused = post(ui, "/ui/recommendations", action, reason="  ")
    assert refused.status_code == 400 and "a dismissal needs a reason" in text_of(refused.text)
    done = post(ui, "/ui/recommendations", action, reason="retries would double-charge")
    assert done.status_code == 303
    stored = server.store.recommendations.get(server.project, "support", rec)
    assert (stored["status"], stored["reason"]) == ("dismissed", "retries would double-charge")
    html = ui.get("/ui/recommendations?agent=support&status=dismissed").text
    assert "retries would double-charge" in element(html, "article", "data-rec", rec)


def test_rejecting_a_review_item_records_the_reviewer_and_the_override(
    ui: httpx.Client, loop: tuple[DashServer, Loop]
) -> None:
    server, _ = loop
    done = post(ui, "/ui/review", "/ui/review/rv-sample/reject", reason="wrong order number")
    assert done.status_code == 303
    item = server.store.runtime.get_review(server.project, "rv-sample")
    assert (item.status, item.decision_reason) == ("rejected", "wrong order number")
    assert item.reviewer is not None and item.reviewer != ""
    again = post(ui, "/ui/review", "/ui/review/rv-sample/approve")
    assert again.status_code == 409 and "a decision is final" in text_of(again.text)
    trace = ui.get(f"/ui/traces/{server.seeded.traces['first']}").text
    assert "human_override" in trace  # the feedback the API's decision attaches
    html = ui.get("/ui/review?status=all").text
    assert field(element(html, "article", "data-review", "rv-sample"), "decision").startswith(
        "Rejected by"
    )


def test_pausing_resuming_approving_and_aborting_a_rollout(
    ui: httpx.Client, loop: tuple[DashServer, Loop]
) -> None:
    server, seeded = loop
    page = f"/ui/rollouts/{seeded.rollout_id}"
    paused = post(ui, page, f"{page}/pause", reason="checking the refund flow")
    assert paused.status_code == 303
    html = ui.get(paused.headers["location"]).text
    assert field(html, "notice") == "Rollout paused."
    assert field(html, "reason") == "checking the refund flow"
    assert 'data-action="resume"' in html and 'data-action="pause"' not in html
    assert post(ui, page, f"{page}/resume").status_code == 303
    assert post(ui, page, f"{page}/approve", step="2").status_code == 303
    again = post(ui, page, f"{page}/approve", step="2")
    assert again.status_code == 400 and "already approved" in text_of(again.text)
    record = server.store.rollouts.get(server.project, seeded.rollout_id)
    assert (record.status, sorted(record.approved_steps)) == ("running", [1])
    html = ui.get(page).text
    assert re.findall(r'data-step="(\d)" data-state="([^"]+)"', html)[1] == ("2", "approved")
    assert post(ui, page, f"{page}/abort", reason="wrong candidate").status_code == 303
    html = ui.get(page).text
    decisions = re.findall(r'<li data-seq="\d+" data-decision="(\w+)"', html)
    assert decisions[:4] == ["abort", "approve", "resume", "pause"]
    assert 'data-action="abort"' not in html and field(html, "weight") == "0 %"


def test_stopping_and_concluding_the_experiment(
    ui: httpx.Client, loop: tuple[DashServer, Loop]
) -> None:
    server, _ = loop
    page = f"/ui/experiments/{EXPERIMENT}"
    assert post(ui, page, f"{page}/stop", reason="enough").status_code == 303
    refused = post(ui, page, f"{page}/conclude", decision="ship", variant="control")
    assert refused.status_code == 400 and "ship names a treatment" in text_of(refused.text)
    done = post(ui, page, f"{page}/conclude", decision="ship", variant="concise", reason="+67 %")
    assert done.status_code == 303
    record = server.store.experiments.get(server.project, EXPERIMENT)
    assert (record.status, record.decision, record.winner) == ("concluded", "ship", "concise")
    html = ui.get(page).text
    decision = text_of(element(html, "p", "data-field", "decision"))
    assert decision.startswith("ship concise by key") and decision.endswith(": +67 %")
    assert re.findall(r'data-event="(\w+)"', html) == [
        "conclude", "stop", "start", "create"
    ]  # fmt: skip


# -- query plans -------------------------------------------------------------------------

LARGE = ("runs", "spans", "tool_calls", "feedback", "config_audit", "config_versions")


# The plans checked are SQLite's: PostgreSQL's depend on its table statistics.
@pytest.mark.parametrize("loop", ["sqlite"], indirect=True)
def test_the_loop_pages_search_indexes_of_the_large_tables(
    loop: tuple[DashServer, Loop], tmp_path: Path
) -> None:
    server, seeded = loop
    assert server.store.dialect == "sqlite"
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
        captured.append((statement, params))

    pages = [
        "/ui/experiments", f"/ui/experiments/{EXPERIMENT}?interval=hour", "/ui/rollouts",
        f"/ui/rollouts/{seeded.rollout_id}", "/ui/recommendations?status=all", "/ui/evals",
        "/ui/evals/eval-current", "/ui/evals/eval-baseline/diff/eval-current",
        "/ui/review?status=all", "/ui/alerts",
    ]  # fmt: skip
    engine: sa.Engine = server.store.engine
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert sign_in(client, server.admin_key).status_code == 303
        sa.event.listen(engine, "before_cursor_execute", capture)
        try:
            for path in pages:
                assert client.get(path).status_code == 200, path
        finally:
            sa.event.remove(engine, "before_cursor_execute", capture)
    selects = [(s, p) for s, p in captured if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) > 20
    searched: set[str] = set()
    with engine.connect() as conn:
        for statement, params in selects:
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params):
                step = row[-1]
                scanned = re.match(r"SCAN (\w+)", step)
                if scanned and scanned.group(1) in LARGE:
                    pytest.fail(f"{step!r} reads all of {scanned.group(1)}:\n{statement}")
                found = re.match(r"SEARCH (\w+) USING (?:COVERING )?INDEX (\w+)", step)
                if found:
                    searched.add(found.group(1))
    assert "runs" in searched  # the experiment's units: ix_runs_agent_time, not a scan

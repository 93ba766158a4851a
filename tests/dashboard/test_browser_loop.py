"""The quality-loop pages in a real browser: Playwright driving Debian's Chromium.

One server (SQLite) seeded by `conftest.seed` and `loop_seed`, shared by the module's
tests in file order. Each page is screenshotted into ``test-artifacts/screenshots/``.
Without Chromium these tests are skipped locally and fail in CI, as test_browser's are.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.dashboard.conftest import DashServer, make_server
from tests.dashboard.loop_seed import EXPERIMENT, Loop, seed_loop
from tests.dashboard.test_browser import _need_chromium, browser_context, page, shot, sign_in

pytestmark = pytest.mark.slow
__all__ = ["browser_context", "page"]  # fixtures, used by name


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DashServer, Loop]]:
    from tuneloop.store import Store

    _need_chromium()
    home = tmp_path_factory.mktemp("dashboard-browser-loop")
    store = Store.open(f"sqlite:///{home / 'tuneloop.db'}")
    uvicorn_server, thread, running = make_server(store, home)
    try:
        yield running, seed_loop(running, uvicorn_server.config.app)
    finally:
        uvicorn_server.should_exit = True
        thread.join(10)
        store.close()


@pytest.fixture(scope="module")
def server(loop: tuple[DashServer, Loop]) -> DashServer:
    return loop[0]


@pytest.fixture(scope="module", autouse=True)
def signed_in(browser_context: Any, server: DashServer) -> None:
    """Sign the module's browser in once, through the login form."""
    login = browser_context.new_page()
    try:
        login.goto("/ui/login")
        sign_in(login, server.admin_key)
        login.wait_for_url(re.compile(r"/ui/$"))
    finally:
        login.close()


def accept_dialogs(page: Any) -> list[str]:
    seen: list[str] = []

    def answer(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    return seen


def test_from_the_overview_to_the_experiment_and_its_figures(page: Any) -> None:
    page.goto("/ui/")
    page.click(f'article[data-agent="triage"] a[href="/ui/experiments/{EXPERIMENT}"]')
    page.wait_for_url(re.compile(rf"/ui/experiments/{EXPERIMENT}$"))
    concise = page.locator('tr[data-metric="task_success"][data-variant="concise"]')
    assert concise.locator('[data-field="value"]').inner_text() == "83.3 %"
    assert concise.locator('[data-field="lift"]').inner_text() == "+66.7 %"
    assert concise.locator("svg.ci circle").count() == 1
    assert page.locator('[data-field="srm"]').get_attribute("data-flagged") == "false"
    assert page.locator('[data-guardrail="error_rate"]').get_attribute("data-verdict") == (
        "inconclusive"
    )
    assert page.inner_text('[data-field="recommendation"]').startswith(
        "Keep running: no significant"
    )
    assert page.locator("#sequential svg.chart").count() == 1
    shot(page, "experiment")
    page.click("text=Experiments")
    page.wait_for_url(re.compile(r"/ui/experiments$"))
    assert page.locator(f'tr[data-experiment="{EXPERIMENT}"]').get_attribute("data-status") == (
        "running"
    )
    shot(page, "experiments")


def test_approving_and_pausing_a_rollout(page: Any, loop: tuple[DashServer, Loop]) -> None:
    server, seeded = loop
    page.goto("/ui/")
    page.click(f'article[data-agent="orders"] a[href="/ui/rollouts/{seeded.rollout_id}"]')
    page.wait_for_url(re.compile(rf"/ui/rollouts/{seeded.rollout_id}$"))
    assert page.inner_text('[data-field="weight"]') == "10 %"
    hold = page.locator('li[data-decision="hold"]').first
    success = hold.locator('tr[data-guard="task_success_rate"]')
    assert "95.83 %" in success.inner_text() and "100.00 %" in success.inner_text()
    shot(page, "rollout")
    dialogs = accept_dialogs(page)
    page.click('button[data-action="approve"]')
    page.wait_for_url(re.compile(r"done=approved"))
    assert dialogs == ["Approve step 2 (50 %)?"]
    assert page.locator('[data-step="2"]').get_attribute("data-state") == "approved"
    page.fill("#pause-reason", "watching refunds")
    page.click('button[data-action="pause"]')
    page.wait_for_url(re.compile(r"done=paused"))
    assert page.inner_text('[data-field="reason"]') == "watching refunds"
    assert page.locator('button[data-action="resume"]').is_visible()
    record = server.store.rollouts.get(server.project, seeded.rollout_id)
    assert (record.status, sorted(record.approved_steps)) == ("paused", [1])
    page.goto("/ui/rollouts")
    assert (
        page.locator(f'tr[data-rollout="{seeded.rollout_id}"]').get_attribute("data-status")
        == "paused"
    )
    shot(page, "rollouts")


def test_following_a_trace_from_a_recommendation_then_accepting_it(
    page: Any, loop: tuple[DashServer, Loop]
) -> None:
    server, seeded = loop
    rec = seeded.recommendations["raise_timeout"]
    escalated = server.seeded.traces["escalated"]
    page.goto("/ui/recommendations")
    card = page.locator(f'article[data-rec="{rec}"]')
    assert card.locator('[data-field="confidence"]').inner_text() == "confidence 82 %"
    shot(page, "recommendations")
    card.locator(f'a[data-trace="{escalated}"]').click()
    page.wait_for_url(re.compile(rf"/ui/traces/{escalated}$"))
    assert page.locator(".wf-row").count() == 4  # agent, guardrail, llm, tool
    page.go_back()
    dialogs = accept_dialogs(page)
    page.locator(f'article[data-rec="{rec}"] button[data-action="accept"]').click()
    page.wait_for_url(re.compile(rf"accepted={rec}"))
    assert len(dialogs) == 1 and dialogs[0].startswith("Accept ")
    stored = server.store.recommendations.get(server.project, "support", rec)
    assert stored["status"] == "accepted" and stored["candidate_version"]
    candidate = server.store.configs.get_version(
        server.project, "support", stored["candidate_version"]
    )
    assert candidate.config["tools"]["data_fetch"]["timeout_ms"] == 6000
    notice = page.inner_text('[data-field="notice"]')
    assert f"bundle {stored['bundle_id']}" in notice
    assert page.inner_text('[data-field="candidate"]') == candidate.label
    assert page.locator(f'article[data-rec="{rec}"]').get_attribute("data-status") == "accepted"
    shot(page, "recommendation-accepted")


def test_an_eval_run_and_the_diff_of_two(page: Any) -> None:
    page.goto("/ui/evals")
    assert page.locator("#eval-runs tbody tr").count() == 2
    shot(page, "evals")
    page.select_option("#c-baseline", "eval-baseline")
    page.select_option("#c-current", "eval-current")
    page.click("form.compare button")
    page.wait_for_url(re.compile(r"/ui/evals/eval-baseline/diff/eval-current$"))
    first = page.locator("#case-diff tbody tr").first
    assert first.get_attribute("data-case") == "refund-1"
    assert first.get_attribute("data-change") == "regressed"
    shot(page, "eval-diff")
    page.click('a[href="/ui/evals/eval-current"]')
    page.wait_for_url(re.compile(r"/ui/evals/eval-current$"))
    refunds = page.locator('tr[data-category="refunds"] [data-field="pass-rate"]')
    assert refunds.inner_text() == "50.0 %"
    shot(page, "eval-run")


def test_approving_a_review_item(page: Any, loop: tuple[DashServer, Loop]) -> None:
    server, _ = loop
    page.goto("/ui/review")
    assert page.inner_text('[data-total="pending"]') == "2"
    shot(page, "review")
    refund = page.locator('article[data-review="rv-refund"]')
    refund.locator('input[name="reason"]').first.fill("customer verified")
    refund.locator('button[data-action="approve"]').click()
    page.wait_for_url(re.compile(r"done=rv-refund"))
    assert page.inner_text('[data-field="notice"]') == "Review rv-refund approved."
    assert page.inner_text('[data-total="pending"]') == "1"
    assert page.inner_text('[data-total="approved"]') == "1"
    assert page.locator('article[data-review="rv-refund"]').count() == 0  # no longer pending
    item = server.store.runtime.get_review(server.project, "rv-refund")
    assert (item.status, item.decision_reason) == ("approved", "customer verified")


def test_alerts_firing_and_resolved(page: Any) -> None:
    page.goto("/ui/alerts")
    firing = page.locator("#firing li")
    assert firing.count() == 1 and "support escalations" in firing.inner_text()
    statuses = page.locator("#history tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.status + ' ' + r.dataset.name)"
    )
    assert statuses[0] == "resolved support completion"
    assert sorted(statuses) == [
        "firing support completion", "firing support escalations", "resolved support completion",
    ]  # fmt: skip
    shot(page, "alerts")

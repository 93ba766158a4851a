"""The dashboard in a real browser: Playwright driving Debian's Chromium.

One seeded server (SQLite) for the module; the tests run in file order and the rollback
comes last because it moves the production channel. Each page is screenshotted into
``test-artifacts/screenshots/``. Without Chromium these tests are skipped locally and
fail in CI (``CI=true``), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.conftest import SUPPORT_RUNS, DashServer, make_server

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parents[2] / "test-artifacts" / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

EXPECTED_REFUSAL = re.compile(r"status of (401|403|409) ")

pytestmark = pytest.mark.slow


def _need_chromium() -> None:
    if shutil.which(CHROMIUM) is None:
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (.ci/run installs it)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashServer]:
    from tuneloop.store import Store

    _need_chromium()
    home = tmp_path_factory.mktemp("dashboard-browser")
    store = Store.open(f"sqlite:///{home / 'tuneloop.db'}")
    uvicorn_server, thread, running = make_server(store, home)
    try:
        yield running
    finally:
        uvicorn_server.should_exit = True
        thread.join(10)
        store.close()


@pytest.fixture(scope="module")
def browser_context(server: DashServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1360, "height": 900},
            base_url=server.url,
        )
        context.set_default_timeout(15_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def console(message: Any) -> None:
        # Refusals the tests provoke (401, 403, 409) are logged by Chromium too.
        if message.type == "error" and not EXPECTED_REFUSAL.search(message.text):
            errors.append(message.text)

    page.on("console", console)
    try:
        yield page
    finally:
        page.close()
    assert errors == [], f"the page logged errors: {errors}"


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, key: str) -> None:
    page.fill("#key", key)
    page.click("button[type=submit]")


def test_a_page_without_a_session_goes_to_login_and_back(server: DashServer, page: Any) -> None:
    page.context.clear_cookies()
    page.goto("/ui/agents/support")
    assert page.url.endswith("/ui/login?next=/ui/agents/support")
    shot(page, "login")
    sign_in(page, server.ingest_key)
    assert "needs an admin key" in page.inner_text(".alert")
    sign_in(page, server.admin_key)
    page.wait_for_url(re.compile(r"/ui/agents/support$"))
    assert page.inner_text("h1").startswith("support")


def test_the_overview_shows_health_cards(server: DashServer, page: Any) -> None:
    page.goto("/ui/")
    support = page.locator('article[data-agent="support"]')
    assert support.locator('[data-field="runs"]').inner_text() == f"{SUPPORT_RUNS} runs"
    assert support.locator('[data-metric="success"] dd').inner_text() == "50.0 %"
    assert support.locator('[data-metric="escalation"] dd').inner_text() == "25.0 %"
    assert support.locator('[data-metric="cost"] dd').inner_text() == "$0.002"
    assert support.get_attribute("data-status") == "bad"
    assert support.locator('[data-field="production"]').inner_text() == "1.1.0"
    billing = page.locator('article[data-agent="billing"]')
    assert billing.locator('[data-metric="success"] dd').inner_text() == "100.0 %"
    assert billing.get_attribute("data-status") == "good"
    # The card's colour comes from the stylesheet (served, applied: no inline styles).
    border = support.evaluate("el => getComputedStyle(el).borderTopColor")
    assert border == "rgb(201, 42, 42)"
    assert page.locator("svg.spark").count() == 12
    shot(page, "overview")


def test_from_the_agent_page_to_a_trace_waterfall(server: DashServer, page: Any) -> None:
    page.goto("/ui/")
    page.click('article[data-agent="support"] a.cardtitle')
    page.wait_for_url(re.compile(r"/ui/agents/support\?window=24h$"))
    escalated = server.seeded.traces["escalated"]
    page.click(f'#recent tr[data-trace="{escalated}"] a[href="/ui/traces/{escalated}"]')
    page.wait_for_url(re.compile(rf"/ui/traces/{escalated}$"))
    kinds = page.locator(".wf-row").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds == ["agent", "guardrail", "llm", "tool"]
    assert page.locator("[data-verdict=block]").inner_text() == "block"
    tool = page.locator('.wf-row[data-kind="tool"]')
    assert not tool.locator('[data-field="tool-input"]').is_visible()
    tool.locator("summary").click()
    tool_input = tool.locator('[data-field="tool-input"]')
    assert tool_input.is_visible()
    assert '"amount": 40' in tool_input.inner_text()
    assert "refund service unavailable" in tool.inner_text()
    assert page.locator('[data-field="tools"]').inner_text() == "1 (1 failed)"
    shot(page, "trace")


def test_trace_search_and_the_session_view(server: DashServer, page: Any) -> None:
    page.goto("/ui/traces")
    assert page.locator("table.runs tbody tr").count() == 6
    page.select_option("#f-outcome", "escalated")  # applies on change (app.js)
    page.wait_for_url(re.compile(r"outcome=escalated"))
    assert page.locator("table.runs tbody tr").count() == 1
    shot(page, "traces")
    page.goto(f"/ui/traces/{server.seeded.traces['first']}")
    llm = page.locator('.wf-row[data-kind="llm"]')
    llm.locator("summary").click()
    assert "Order 1234 ships tomorrow." in llm.inner_text()
    page.click('a[href="/ui/sessions/sess-42"]')
    page.wait_for_url(re.compile(r"/ui/sessions/sess-42$"))
    turns = page.locator("li.turn")
    assert turns.count() == 2
    assert "Where is my order 1234?" in turns.nth(0).inner_text()
    assert turns.nth(1).locator("[data-outcome]").inner_text() == "escalated"
    shot(page, "session")


def test_the_diff_between_two_versions(server: DashServer, page: Any) -> None:
    page.goto("/ui/agents/support")
    page.select_option("#d-from", label="1.0.0")
    page.select_option("#d-to", label="1.1.0")
    page.click(".diffform button")
    page.wait_for_url(re.compile(r"/ui/agents/support/diff\?from=\w+&to=\w+"))
    assert page.inner_text("h1") == "1.0.0 → 1.1.0"
    row = page.locator('tr[data-path="/params/temperature"]')
    assert row.locator("pre.before").inner_text() == "0.7"
    assert row.locator("pre.after").inner_text() == "0.3"
    assert page.locator("pre.udiff .add").count() >= 1
    shot(page, "diff")


def test_a_post_without_the_csrf_token_is_refused(server: DashServer, page: Any) -> None:
    page.goto("/ui/agents/support")
    status = page.evaluate(
        """async () => {
            const response = await fetch('/ui/agents/support/channels/production/rollback', {
                method: 'POST',
                headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                body: 'expected_version=' + document.querySelector(
                    'input[name=expected_version]').value,
            });
            return response.status;
        }"""
    )
    assert status == 403
    page.reload()
    assert page.locator('[data-channel="production"] [data-field="label"]').inner_text() == "1.1.0"


def test_rolling_back_production_from_the_agent_page(server: DashServer, page: Any) -> None:
    page.goto("/ui/agents/support")
    production = page.locator('[data-channel="production"]')
    assert production.locator('[data-field="label"]').inner_text() == "1.1.0"
    shot(page, "agent")
    dialogs: list[str] = []

    def answer(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss() if len(dialogs) == 1 else dialog.accept()

    page.on("dialog", answer)
    production.locator("button.danger").click()  # dismissed: nothing moves
    assert production.locator('[data-field="label"]').inner_text() == "1.1.0"
    production.locator("button.danger").click()
    page.wait_for_url(re.compile(r"rolled_back=production"))
    assert dialogs == ["Roll production back from 1.1.0?"] * 2
    assert "it now serves 1.0.0" in page.inner_text('[data-field="notice"]')
    assert page.locator('[data-channel="production"] [data-field="label"]').inner_text() == "1.0.0"
    assert page.locator("tr[data-action]").first.get_attribute("data-action") == "rollback"
    with server.api() as api:
        channels = api.get("/api/v1/agents/support/channels").json()["items"]
    assert [(c["channel"], c["label"]) for c in channels] == [("production", "1.0.0")]
    shot(page, "agent-after-rollback")


def test_signing_out(server: DashServer, page: Any) -> None:
    page.goto("/ui/")
    page.click("text=Sign out")
    page.wait_for_url(re.compile(r"/ui/login$"))
    page.goto("/ui/traces")
    assert "/ui/login" in page.url

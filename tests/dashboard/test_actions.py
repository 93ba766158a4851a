"""Dashboard actions that change what the server holds, each on a server of its own."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.dashboard.conftest import DashServer, csrf_of, sign_in
from tests.dashboard.test_pages import text_of


@pytest.fixture
def ui(dash: DashServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dash.url, timeout=10) as client:
        assert sign_in(client, dash.admin_key).status_code == 303
        yield client


def test_rolling_back_from_the_agent_page_moves_the_channel_once(
    dash: DashServer, ui: httpx.Client
) -> None:
    page = ui.get("/ui/agents/support")
    form = {
        "csrf": csrf_of(page.text),
        "expected_version": dash.seeded.versions["1.1.0"],
        "version": dash.seeded.versions["1.0.0"],
    }
    done = ui.post("/ui/agents/support/channels/production/rollback", data=form)
    assert done.status_code == 303
    assert done.headers["location"] == "/ui/agents/support?rolled_back=production#channels"
    after = ui.get(done.headers["location"].split("#")[0])
    assert "production rolled back: it now serves 1.0.0" in text_of(after.text)
    assert re.findall(r'<tr data-action="(\w+)">', after.text)[0] == "rollback"
    with dash.api() as api:
        channels = api.get("/api/v1/agents/support/channels").json()["items"]
    assert [(c["channel"], c["label"]) for c in channels] == [("production", "1.0.0")]
    # The same form again is stale: production is no longer on 1.1.0.
    stale = ui.post("/ui/agents/support/channels/production/rollback", data=form)
    assert stale.status_code == 409
    assert "moved since you read it" in text_of(stale.text)
    assert "No earlier version to roll back to" in text_of(stale.text)

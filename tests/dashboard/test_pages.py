"""Dashboard pages over HTTP on SQLite and PostgreSQL: what they show, who may see them."""

from __future__ import annotations

import re
import time
from html import unescape

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.dashboard.conftest import BILLING_RUNS, SUPPORT_RUNS, DashServer, csrf_of, sign_in
from tuneloop.server.dashboard import AREAS, auth, pages_traces
from tuneloop.server.dashboard.routing import DashboardRoute


def text_of(html: str) -> str:
    """The visible text, whitespace collapsed."""
    html = re.sub(r"<(script|style|title)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def card(html: str, agent: str) -> str:
    found = re.search(rf'<article class="card[^"]*" data-agent="{agent}".*?</article>', html, re.S)
    assert found, f"no card for {agent}"
    return found.group(0)


def kpi(fragment: str, metric: str) -> str:
    found = re.search(rf'data-metric="{metric}">\s*<dt>[^<]*</dt>\s*<dd>([^<]*)</dd>', fragment)
    assert found, f"no {metric} figure"
    return unescape(found.group(1))


# -- access ---------------------------------------------------------------------------


def test_pages_without_a_session_redirect_to_the_login_form(shared: DashServer) -> None:
    with httpx.Client(base_url=shared.url) as client:
        root = client.get("/")
        assert (root.status_code, root.headers["location"]) == (307, "/ui/")
        for path in ("/ui/", "/ui/traces?outcome=failure", "/ui/agents/support"):
            response = client.get(path)
            assert response.status_code == 303
            assert response.headers["location"].startswith("/ui/login?next=")
        assert "outcome%3Dfailure" in client.get("/ui/traces?outcome=failure").headers["location"]
        login = client.get("/ui/login")
        assert login.status_code == 200 and "Admin API key" in login.text
        assert client.get("/ui/static/app.css").status_code == 200  # assets need no session


def test_signing_in_sets_a_strict_session_cookie_and_goes_where_the_user_was_headed(
    shared: DashServer,
) -> None:
    with httpx.Client(base_url=shared.url) as client:
        form = client.get("/ui/login?next=/ui/agents/support")
        response = client.post(
            "/ui/login",
            data={
                "csrf": csrf_of(form.text),
                "key": shared.admin_key,
                "next": "/ui/agents/support",
            },
        )
        assert (response.status_code, response.headers["location"]) == (303, "/ui/agents/support")
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith("tl_session=")
        )
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/ui", "max-age=43200"} <= attributes
        assert shared.admin_key not in cookie
        assert client.get("/ui/agents/support").status_code == 200
        signed_in = client.get("/ui/login?next=/ui/traces")
        assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/ui/traces")
    with httpx.Client(base_url=shared.url) as client:  # only dashboard paths are followed
        form = client.get("/ui/login")
        elsewhere = client.post(
            "/ui/login",
            data={
                "csrf": csrf_of(form.text),
                "key": shared.admin_key,
                "next": "https://evil.test/",
            },
        )
        assert elsewhere.headers["location"] == "/ui/"


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [
        ("ingest", 403, "needs an admin key"),
        ("tlk_aaaaaaaaaaaa_" + "b" * 43, 401, "invalid API key"),
        ("not a key", 401, "malformed API key"),
    ],
)
def test_wrong_keys_are_refused_with_a_reason(
    shared: DashServer, key: str, status: int, message: str
) -> None:
    with httpx.Client(base_url=shared.url) as client:
        response = sign_in(client, shared.ingest_key if key == "ingest" else key)
        assert response.status_code == status
        assert message in text_of(response.text)
        assert "tl_session" not in client.cookies
        assert client.get("/ui/").status_code == 303


def test_a_login_post_without_its_form_token_is_refused(shared: DashServer) -> None:
    with httpx.Client(base_url=shared.url) as client:
        response = client.post("/ui/login", data={"key": shared.admin_key})
        assert response.status_code == 403
        assert "did not come from this server" in text_of(response.text)
        assert "tl_session" not in client.cookies


def test_a_revoked_key_ends_its_sessions_and_a_forged_cookie_is_no_session(
    shared: DashServer,
) -> None:
    now = int(time.time() * 1000)
    key = shared.store.keys.create_key("acme", "admin", name="revoked soon", now_ms=now)
    with httpx.Client(base_url=shared.url) as client:
        assert sign_in(client, key.secret).status_code == 303
        assert client.get("/ui/").status_code == 200
        shared.store.keys.revoke_key(key.info.key_id, now_ms=now)
        assert client.get("/ui/").status_code == 303
    with httpx.Client(base_url=shared.url, cookies={"tl_session": "e30.forged"}) as forged:
        assert forged.get("/ui/").status_code == 303


def test_signing_out_needs_the_csrf_token_and_ends_the_session(ui: httpx.Client) -> None:
    page = ui.get("/ui/")
    assert ui.post("/ui/logout", data={}).status_code == 403
    assert ui.get("/ui/").status_code == 200
    out = ui.post("/ui/logout", data={"csrf": csrf_of(page.text)})
    assert (out.status_code, out.headers["location"]) == (303, "/ui/login")
    assert ui.get("/ui/").status_code == 303


def test_every_state_changing_dashboard_route_refuses_a_form_without_csrf(
    shared: DashServer, ui: httpx.Client
) -> None:
    routers = [auth.router, auth.public_router, *(area.router for area in AREAS)]
    routes = [route for router in routers for route in router.routes]
    assert all(isinstance(route, DashboardRoute) for route in routes)
    posts = [
        route.path
        for route in routes
        if isinstance(route, APIRoute) and route.methods - {"GET", "HEAD"}
    ]
    assert "/ui/agents/{agent}/channels/{channel}/rollback" in posts
    assert "/ui/logout" in posts
    before = shared.store.configs.list_channels("acme", "support")
    for path in posts:
        if path == "/ui/login":
            continue  # its own token, tested above
        url = path.replace("{agent}", "support").replace("{channel}", "production")
        for data in ({}, {"csrf": "wrong"}, {"csrf": ""}):
            response = ui.post(url, data=data)
            assert response.status_code == 403, (url, data)
            assert "CSRF" in text_of(response.text)
        json_post = ui.post(url, json={"csrf": "x"})
        assert json_post.status_code == 415
    assert shared.store.configs.list_channels("acme", "support") == before


def test_pages_carry_security_headers(ui: httpx.Client) -> None:
    headers = ui.get("/ui/").headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "style-src 'self';" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"


# -- overview ---------------------------------------------------------------------------


def test_the_overview_shows_each_agents_health(shared: DashServer, ui: httpx.Client) -> None:
    page = ui.get("/ui/")
    assert page.status_code == 200
    support = card(page.text, "support")
    assert f"{SUPPORT_RUNS} runs" in text_of(support)
    assert kpi(support, "success") == "50.0 %"  # success, escalated, failure, success
    assert kpi(support, "escalation") == "25.0 %"
    assert kpi(support, "cost") == "$0.002"  # (0.004 + 0.002 + 0.001 + 0.001) / 4
    assert kpi(support, "errors") == "0.0 %"
    assert 'data-status="bad"' in support  # completion under 80 %
    assert 'data-field="production">1.1.0<' in support
    allocations = re.search(r'data-field="allocations">(.*?)</footer>', support, re.S)
    assert allocations is not None
    assert text_of(allocations.group(1)) == (
        "experiment support-prompt : control 50 % · concise 50 %"
    )
    billing = card(page.text, "billing")
    assert kpi(billing, "success") == "100.0 %"
    assert kpi(billing, "cost") == "$0.01"
    assert 'data-status="good"' in billing
    assert f'data-total="runs">{SUPPORT_RUNS + BILLING_RUNS}<' in page.text
    assert page.text.count('class="spark"') == 12  # six figures per card, two agents
    assert ui.get("/ui/?window=7d").status_code == 200
    bad = ui.get("/ui/?window=1y")
    assert bad.status_code == 400 and "choose one of 24h, 7d, 30d" in text_of(bad.text)


# -- traces -----------------------------------------------------------------------------


def rows(html: str) -> list[str]:
    return re.findall(r'<tr data-trace="([0-9a-f]{32})">', html)


def test_trace_search_filters_runs(shared: DashServer, ui: httpx.Client) -> None:
    traces = shared.seeded.traces
    everything = rows(ui.get("/ui/traces").text)
    assert len(everything) == SUPPORT_RUNS + BILLING_RUNS
    assert rows(ui.get("/ui/traces?outcome=escalated").text) == [traces["escalated"]]
    assert set(rows(ui.get("/ui/traces?session_id=sess-42&since=all").text)) == {
        traces["first"],
        traces["escalated"],
    }
    assert len(rows(ui.get("/ui/traces?agent=billing").text)) == BILLING_RUNS
    assert rows(ui.get("/ui/traces?agent=support&version=1.0.0&outcome=failure").text) == [
        traces["failure"]
    ]
    assert rows(ui.get("/ui/traces?unit_id=user-2").text) == [traces["failure"]]
    assert rows(ui.get("/ui/traces?agent=nobody").text) == []
    jump = ui.get(f"/ui/traces?q={traces['plain'].upper()}")
    assert (jump.status_code, jump.headers["location"]) == (303, f"/ui/traces/{traces['plain']}")
    assert ui.get("/ui/traces?q=nope").status_code == 400
    assert ui.get("/ui/traces?since=forever").status_code == 400
    assert ui.get("/ui/traces?attr=novalue").status_code == 400


def test_trace_search_pages_with_a_cursor(
    ui: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages_traces, "PAGE", 4)
    first = ui.get("/ui/traces")
    older = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert older, "no link to older runs"
    second = ui.get(unescape(older.group(1)))
    assert len(rows(first.text)) == 4 and len(rows(second.text)) == 2
    assert not set(rows(first.text)) & set(rows(second.text))
    assert 'rel="next"' not in second.text


def test_a_trace_is_a_waterfall_with_tool_io_verdicts_and_events(
    shared: DashServer, ui: httpx.Client
) -> None:
    page = ui.get(f"/ui/traces/{shared.seeded.traces['escalated']}")
    assert page.status_code == 200
    kinds = re.findall(r'data-kind="(\w+)"', page.text)
    assert kinds == ["agent", "guardrail", "llm", "tool"]
    visible = text_of(page.text)
    assert 'data-verdict="block"' in page.text
    assert '"amount": 40' in unescape(page.text)  # the tool's arguments, indented JSON
    assert "refund service unavailable" in visible
    assert "retries 2" in visible
    assert "1 failed" in visible
    first = ui.get(f"/ui/traces/{shared.seeded.traces['first']}")
    shown = text_of(first.text)
    assert "Where is my order 1234?" in shown and "Order 1234 ships tomorrow." in shown
    assert '"eta": "tomorrow"' in unescape(first.text)
    assert re.search(r'run\.state</td>.*?from=<span class="mono">planning</span>', first.text, re.S)
    assert "thumbs" in shown and "quick answer" in shown  # feedback
    assert 'href="/ui/sessions/sess-42"' in first.text


def test_missing_and_malformed_traces_are_html_errors(ui: httpx.Client) -> None:
    missing = ui.get("/ui/traces/" + "ab" * 16)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "no trace" in text_of(missing.text)
    assert ui.get("/ui/traces/xyz").status_code == 400


def test_a_session_lists_its_runs_in_order_with_what_was_asked(
    shared: DashServer, ui: httpx.Client
) -> None:
    page = ui.get("/ui/sessions/sess-42")
    assert page.status_code == 200
    turns = re.findall(r'<li class="turn" data-trace="([0-9a-f]{32})">', page.text)
    assert turns == [shared.seeded.traces["first"], shared.seeded.traces["escalated"]]
    assert "2 runs" in text_of(page.text)
    assert "Where is my order 1234?" in text_of(page.text)
    assert ui.get("/ui/sessions/no-such-session").status_code == 404


# -- agents -----------------------------------------------------------------------------


def test_the_agent_page_shows_versions_channels_figures_and_audit(
    shared: DashServer, ui: httpx.Client
) -> None:
    page = ui.get("/ui/agents/support")
    assert page.status_code == 200
    html = page.text
    assert re.findall(r'<tr data-version="(\d+\.\d+\.\d+)">\s*<td><strong>', html) == [
        "1.1.0",
        "1.0.0",
    ]
    channel = re.search(r'data-channel="production".*?data-field="label">([^<]+)<', html, re.S)
    assert channel and channel.group(1) == "1.1.0"
    assert f'name="expected_version" value="{shared.seeded.versions["1.1.0"]}"' in html
    assert f'value="{shared.seeded.versions["1.0.0"]}" selected' in html  # the previous one
    assert re.findall(r'<tr data-action="(\w+)">', html) == [
        "allocation_set",
        "move",
        "create",
        "move",
        "create",
    ]
    assert "experiment support-prompt" in text_of(html)
    assert "control 50 % (1.0.0) · concise 50 % (1.1.0)" in text_of(html)
    assert set(re.findall(r'data-tool="(\w+)"', html)) == {"lookup_order", "issue_refund"}
    assert re.search(r'data-tool="issue_refund">.*?100\.0 %', html, re.S)
    versions_seen = re.findall(r'<tr data-version="([^"]*)"><td class="mono">', html)
    assert sorted(versions_seen) == ["1.0.0", "1.1.0"]  # runs per version in the window
    assert len(rows(html)) == SUPPORT_RUNS
    billing = ui.get("/ui/agents/billing")
    assert billing.status_code == 200 and "No versions yet" in text_of(billing.text)
    assert ui.get("/ui/agents/nobody").status_code == 404
    assert ui.get("/ui/agents/bad%20name").status_code == 400


def test_the_diff_page_shows_what_a_version_changed(shared: DashServer, ui: httpx.Client) -> None:
    page = ui.get("/ui/agents/support/diff?from=1.0.0&to=1.1.0")
    assert page.status_code == 200
    paths = re.findall(r'data-path="([^"]+)"', page.text)
    assert "/params/temperature" in paths and "/tools/data_fetch/timeout_ms" in paths
    assert re.search(r'data-path="/params/temperature">.*?0\.7.*?0\.3', page.text, re.S)
    assert '<span class="hunk">@@' in page.text  # the router prompt's unified diff
    default = ui.get("/ui/agents/support/diff")  # production against its parent
    assert re.findall(r'data-path="([^"]+)"', default.text) == paths
    same = ui.get("/ui/agents/support/diff?from=1.0.0&to=1.0.0")
    assert "hold the same config" in text_of(same.text)
    assert ui.get("/ui/agents/support/diff?from=9.9.9&to=1.0.0").status_code == 404

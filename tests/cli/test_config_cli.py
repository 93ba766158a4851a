"""The config commands against a real server on both engines: the README walk-through."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from tests.conftest import LiveServer
from tuneloop.cli.main import app
from tuneloop.config.canonical import content_hash
from tuneloop.config.loading import load_config_file
from tuneloop.store.schema import config_audit, config_versions

runner = CliRunner(env={"COLUMNS": "160"})
EXAMPLES = Path(__file__).parents[2] / "examples" / "support"


def run(server: LiveServer, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--url", server.url, "--api-key", server.admin_key])
    return result.exit_code, result.output


def database_url(server: LiveServer) -> str:
    return server.store.engine.url.render_as_string(hide_password=False)  # type: ignore[attr-defined]


def test_push_apply_diff_set_rollback_export_verify(
    live_server: LiveServer, tmp_path: Path
) -> None:
    code, out = run(
        live_server, "config", "push", str(EXAMPLES / "agent.yaml"), "--agent", "support"
    )
    assert code == 0, out
    v1 = re.search(r"created support 1\.0\.0 \(([0-9a-f]{12})\)", out)
    assert v1, out
    code, out = run(live_server, "config", "push", str(EXAMPLES / "agent.yaml"), "-a", "support")
    assert code == 0 and f"unchanged: support already has this config as 1.0.0 ({v1[1]})" in out

    code, out = run(live_server, "bundle", "apply", str(EXAMPLES / "bundle.yaml"), "--agent",
                    "support", "--dry-run")  # fmt: skip
    assert code == 0 and "dry run: agent-quality-loop-v1 on 1.0.0" in out
    assert "/tools/data_fetch/timeout_ms" in out and "6000" in out
    code, out = run(live_server, "bundle", "apply", str(EXAMPLES / "bundle.yaml"), "--agent",
                    "support", "-m", "quality loop")  # fmt: skip
    assert code == 0, out
    v2 = re.search(r"created support 1\.1\.0 \(([0-9a-f]{12})\) from 1\.0\.0", out)
    assert v2, out

    code, out = run(live_server, "config", "diff", "support", "1.0.0", v2[1])
    assert code == 0, out
    assert "/params/temperature" in out and "0.7" in out and "0.3" in out
    assert "--- 1.0.0/prompts/router\n+++ 1.1.0/prompts/router\n" in out
    assert "+A message that mentions money back is a refund" in out

    code, out = run(live_server, "channel", "set", "support", "production", "1.1.0")
    assert code == 0 and f"support production moved 1.1.0 ({v2[1]})" in out
    code, out = run(live_server, "channel", "set", "support", "production", "1.0.0",
                    "--expected", "1.0.0")  # fmt: skip
    assert code == 1 and "409" in out and "it moved since you read it" in out
    code, out = run(live_server, "channel", "rollback", "support", "production")
    assert code == 0 and f"rolled back support production to 1.0.0 ({v1[1]})" in out
    code, out = run(live_server, "channel", "list", "support")
    assert code == 0 and re.search(r"production\s+1\.0\.0\s+" + v1[1], out)

    code, out = run(live_server, "config", "versions", "support")
    assert code == 0 and "agent-quality-loop-v1@1.0.0" in out and "production" in out

    code, out = run(live_server, "config", "export", "support", "1.1.0", "--out", str(tmp_path))
    assert code == 0 and "agent.yaml" in out and "router.txt" in out
    exported = load_config_file(tmp_path / "agent.yaml")
    assert content_hash(exported.to_data()).startswith(v2[1])
    code, out = run(live_server, "config", "export", "support", "1.1.0", "--out", str(tmp_path))
    assert code == 1 and "export would overwrite" in out and "--force" in out

    code, out = run(live_server, "audit", "list", "--agent", "support")
    assert code == 0 and "rollback" in out
    code, out = run(live_server, "audit", "verify")
    assert code == 0 and "acme: ok, 5 rows" in out


def test_audit_verify_on_the_database_finds_a_tampered_row(live_server: LiveServer) -> None:
    code, out = run(live_server, "config", "push", str(EXAMPLES / "agent.yaml"), "-a", "support")
    assert code == 0, out
    url = database_url(live_server)
    ok = runner.invoke(app, ["audit", "verify", "--database-url", url])
    assert ok.exit_code == 0 and "acme: ok, 2 rows" in ok.output
    with live_server.store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(config_audit.update().where(config_audit.c.seq == 1).values(key_id="x"))
        conn.execute(config_versions.update().values(message="rewritten"))
    bad = runner.invoke(app, ["audit", "verify", "--database-url", url])
    assert bad.exit_code == 1
    assert "acme: TAMPERED" in bad.output
    assert "row 1 (create support): its content does not match its hash" in bad.output
    assert "row 2: prev_hash" not in bad.output  # row 2 still links to row 1's stored hash
    over_http = runner.invoke(
        app, ["audit", "verify", "--url", live_server.url, "--api-key", live_server.admin_key]
    )
    assert over_http.exit_code == 1 and "TAMPERED" in over_http.output


def test_bad_files_are_reported_before_anything_is_sent(
    live_server: LiveServer, tmp_path: Path
) -> None:
    broken = tmp_path / "agent.yaml"
    broken.write_text("model: {provider: openai, name: x}\ntools:\n  a: {timeout_ms: -1}\n")
    code, out = run(live_server, "config", "push", str(broken), "--agent", "support")
    assert code == 1 and "tools.a.timeout_ms: Input should be greater than 0" in out
    broken.write_text("model: {provider: openai\n")
    code, out = run(live_server, "config", "push", str(broken), "--agent", "support")
    assert code == 1 and "invalid YAML at line 2, column 1" in out
    bundle = tmp_path / "bundle.yaml"
    bundle.write_text("bundle_id: b\nversion: 1.0.0\nrecommendations:\n"
                      "  - {type: budget, target: run, change: {op: replace, "
                      "path: /budget/run_usd, value: -1}}\n")  # fmt: skip
    run(live_server, "config", "push", str(EXAMPLES / "agent.yaml"), "--agent", "support")
    code, out = run(live_server, "bundle", "apply", str(bundle), "--agent", "support")
    assert code == 1
    assert "recommendation 0 (budget on 'run'): budget.run_usd: Input should be greater than 0" in (
        out.replace("\n", " ")
    )
    with live_server.store.engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute(sa.select(sa.func.count()).select_from(config_versions)).scalar() == 1

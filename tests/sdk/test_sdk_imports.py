"""The SDK's import path stays slim and the global provider is left alone by default."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import tuneloop.sdk


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_public_names() -> None:
    assert sorted(tuneloop.sdk.__all__) == [
        "Client",
        "ClientStats",
        "ConfigStats",
        "Guardrail",
        "LlmCall",
        "ResolvedConfig",
        "RetryPolicy",
        "Run",
        "ToolCall",
    ]


def test_import_does_not_pull_the_server_stack() -> None:
    out = run_python(
        """
        import sys
        import tuneloop.sdk
        heavy = ("fastapi", "sqlalchemy", "scipy", "uvicorn")
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    assert out == "[]"


def test_global_provider_is_installed_only_on_request() -> None:
    out = run_python(
        """
        import httpx
        from opentelemetry import trace
        from tuneloop.sdk import Client

        ok = httpx.MockTransport(lambda request: httpx.Response(200))
        with Client("http://t.test", transport=ok) as quiet:
            print(trace.get_tracer_provider() is quiet.tracer_provider)
        with Client("http://t.test", transport=ok, install_global=True) as loud:
            print(trace.get_tracer_provider() is loud.tracer_provider)
        """
    )
    assert out.split() == ["False", "True"]

"""Importing the runtime loads no provider SDK and no server stack; the extras name themselves."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


def test_runtime_import_is_slim_and_the_extras_name_themselves() -> None:
    out = run_python(
        """
        import builtins
        import sys

        import tuneloop.runtime
        heavy = ("openai", "anthropic", "httpx2", "fastapi", "sqlalchemy", "scipy")
        print(sorted(name for name in heavy if name in sys.modules))

        real_import = builtins.__import__

        def without_openai(name, *args, **kwargs):
            if name == "openai" or name.startswith("openai."):
                raise ImportError("No module named 'openai'")
            return real_import(name, *args, **kwargs)

        builtins.__import__ = without_openai
        try:
            import tuneloop.runtime.providers.openai
        except ImportError as exc:
            print(exc)
        """
    )
    assert out.splitlines() == [
        "[]",
        "tuneloop.runtime.providers.openai needs the openai extra: pip install 'tuneloop[openai]'",
    ]

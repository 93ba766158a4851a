"""The README's agent example runs as printed (twice: its runs.db survives) and prints it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def section_blocks(fence: str) -> list[str]:
    text = README.read_text()
    start = text.index("## The agent runtime")
    end = text.index("\n## ", start + 1)
    section = text[start:end]
    blocks = []
    position = 0
    while (open_at := section.find(f"```{fence}\n", position)) != -1:
        body_at = open_at + len(fence) + 4
        close_at = section.index("```\n", body_at)
        blocks.append(section[body_at:close_at])
        position = close_at + 4
    return blocks


def test_the_agent_example_prints_what_the_readme_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    example = section_blocks("python")[0]
    expected = section_blocks("console")[0]
    for _ in range(2):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(example, "README.md", "exec"), {"__name__": "readme_agent_example"})
        assert out.getvalue() == expected
    assert (tmp_path / "runs.db").exists()

"""The README's runtime example runs as printed and prints what the README shows."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def section_blocks(fence: str) -> list[str]:
    text = README.read_text()
    start = text.index("## Runtime building blocks")
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


def test_the_runtime_example_prints_what_the_readme_says() -> None:
    example = section_blocks("python")[0]
    expected = section_blocks("console")[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, "README.md", "exec"), {"__name__": "readme_example"})
    assert out.getvalue() == expected

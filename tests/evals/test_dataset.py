"""Datasets: both file formats, both forms of `expected`, and errors naming line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneloop.errors import InvalidInputError
from tuneloop.evals.dataset import load_dataset


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_jsonl_cases_with_every_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cases.jsonl",
        '{"id": "a", "input": "hi", "expected": "hello", "category": "faq", "tags": ["smoke"],'
        ' "difficulty": "easy"}\n'
        "\n"
        '{"id": 7, "input": {"message": "x"}, "expected": {"contains": ["x"], "refuse": false}}\n',
    )
    first, second = load_dataset(path)
    assert (first.id, first.input, first.category, first.tags, first.difficulty) == (
        "a", "hi", "faq", ("smoke",), "easy"
    )  # fmt: skip
    assert first.expected.get("output") == "hello" and first.line == 1
    assert second.id == "7" and second.line == 3 and second.category == "default"
    assert second.expected.get("contains") == ["x"] and second.expected.get("refuse") is False
    assert not second.expected.has("output")


def test_yaml_list_and_cases_mapping_keep_line_numbers(tmp_path: Path) -> None:
    listed = write(
        tmp_path,
        "a.yaml",
        "- id: one\n  input: hi\n  expected: {output: {reply: hi}}\n- id: two\n  input: yo\n",
    )
    one, two = load_dataset(listed)
    assert one.expected.get("output") == {"reply": "hi"} and (one.line, two.line) == (1, 4)
    wrapped = write(tmp_path, "b.yml", "cases:\n  - {id: x, input: 1}\n  - {id: y, input: 2}\n")
    assert [c.line for c in load_dataset(wrapped)] == [2, 3]


def test_a_mapping_without_expectation_keys_is_a_literal_output(tmp_path: Path) -> None:
    path = write(tmp_path, "c.jsonl", '{"id": "a", "input": 1, "expected": {"reply": "hi"}}\n')
    (only,) = load_dataset(path)
    assert only.expected.get("output") == {"reply": "hi"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": "a", "input": 1}\n{"id": "b", "input": 2,,}\n', "line 2: invalid JSON"),
        ('{"id": "a", "input": 1}\n{"id": "b"}\n', "line 2: field 'input' is required"),
        ('{"input": 1}\n', "line 1: field 'id' is required"),
        ('{"id": "a", "input": 1, "expcted": 2}\n', "line 1: unknown field 'expcted'"),
        ('{"id": "a", "input": 1, "tags": "smoke"}\n', "line 1: field 'tags'"),
        ('["a", 1]\n', "line 1: a case must be a mapping"),
        (
            '{"id": "a", "input": 1, "expected": {"contains": "x", "reply": 1}}\n',
            "line 1: field 'expected' mixes expectation keys ['contains'] with other keys "
            "['reply']",
        ),
        ('{"id": "", "input": 1}\n', "line 1: field 'id'"),
    ],
)
def test_malformed_jsonl_names_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "bad.jsonl", text)
    with pytest.raises(InvalidInputError) as caught:
        load_dataset(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "- id: a\n  input: 1\n- id: b\n  input: [1, 2\n")
    with pytest.raises(InvalidInputError, match=r"bad.yaml line \d+: invalid YAML"):
        load_dataset(path)
    field = write(tmp_path, "field.yaml", "- id: a\n  input: 1\n- id: b\n  inptu: 2\n")
    with pytest.raises(InvalidInputError, match="line 3: field 'input' is required"):
        load_dataset(field)


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dup.jsonl",
        '{"id": "a", "input": 1}\n{"id": "b", "input": 1}\n{"id": "a", "input": 2}\n',
    )
    with pytest.raises(InvalidInputError, match="duplicate case id 'a' at lines 1 and 3"):
        load_dataset(path)


def test_missing_empty_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read dataset"):
        load_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(InvalidInputError, match="has no cases"):
        load_dataset(write(tmp_path, "empty.jsonl", "\n"))
    with pytest.raises(InvalidInputError, match=r"unknown format '\.csv'"):
        load_dataset(write(tmp_path, "x.csv", "id,input\n"))
    with pytest.raises(InvalidInputError, match="expected a list of cases"):
        load_dataset(write(tmp_path, "scalar.yaml", "just text\n"))

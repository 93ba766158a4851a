"""Suite files, stages and the evaluator registry: bad input names the file and the evaluator."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.evals.helpers import write_suite
from tuneloop.errors import ConfigError, InvalidInputError
from tuneloop.evals.pipeline import build_evaluators, load_target, run_suite_sync
from tuneloop.evals.stages import deterministic_sample, select_cases
from tuneloop.evals.suite import load_suite

ECHO = "async def echo(text, config):\n    return text\n"


def basic(tmp_path: Path, **suite: Any) -> Path:
    cases = [
        {"id": "a", "input": "x", "expected": "x", "category": "orders", "tags": ["smoke"]},
        {"id": "b", "input": "y", "expected": "y", "category": "orders"},
        {"id": "c", "input": "z", "expected": {"refuse": True}, "category": "adversarial"},
        {"id": "d", "input": "w", "expected": "w", "category": "faq", "tags": ["adversarial"]},
    ]
    document = {
        "name": "s",
        "target": {"callable": "MODULE:echo"},
        "evaluators": [{"name": "exact_match"}],
        **suite,
    }
    return write_suite(tmp_path, cases=cases, suite=document, target_source=ECHO)


@pytest.mark.parametrize(
    ("evaluators", "message"),
    [
        ([{"name": "rouge"}], "evaluator 'rouge': unknown evaluator 'rouge'; known evaluators:"),
        (
            [{"name": "rouge_l", "params": {"treshold": 0.5}}],
            "evaluator 'rouge_l' (rouge_l): unknown parameter 'treshold' (parameters: threshold,",
        ),
        (
            [{"name": "latency", "id": "speed"}],
            "evaluator 'speed' (latency): parameter 'max_ms' is required",
        ),
        (
            [{"name": "regex", "params": {"pattern": "(unclosed"}}],
            "evaluator 'regex' (regex): parameter 'pattern': invalid regular expression",
        ),
        (
            [{"name": "json_schema", "params": {"schema": {"type": "nonsense"}}}],
            "parameter 'schema': invalid JSON schema",
        ),
        (
            [
                {
                    "name": "judge",
                    "params": {"provider": "openai", "model": "gpt-4o", "scale_max": 0},
                }
            ],
            "scale_max (0.0) must be above scale_min",
        ),
        (
            [{"name": "custom", "params": {"function": "no_such_module_xyz:f"}}],
            "cannot import module 'no_such_module_xyz'",
        ),
    ],
)
def test_bad_evaluators_name_the_suite_file_and_the_evaluator(
    tmp_path: Path, evaluators: list[dict[str, Any]], message: str
) -> None:
    suite = load_suite(basic(tmp_path, evaluators=evaluators))
    with pytest.raises(ConfigError) as caught:
        build_evaluators(suite)
    assert str(suite.path) in str(caught.value)
    assert message in str(caught.value)


def test_a_missing_optional_library_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rouge_score", None)  # as if not installed
    suite = load_suite(basic(tmp_path, evaluators=[{"name": "rouge_l"}]))
    with pytest.raises(ConfigError, match=r"needs rouge-score: pip install 'tuneloop\[evals\]'"):
        build_evaluators(suite)


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        ({"evaluators": []}, "evaluators: List should have at least 1 item"),
        ({"targte": {}}, "unknown key 'targte'"),
        ({"gates": {"categories": {"ordrs": {"pass_rate": 0.9}}}}, "unknown category 'ordrs'"),
        (
            {"gates": {"overall": {"evaluators": {"exact": 0.9}}}},
            "gates for 'overall' name unknown evaluator 'exact'",
        ),
        ({"gates": {"overall": {"pass_rate": 1.5}}}, "gates.overall.pass_rate"),
        (
            {"evaluators": [{"name": "exact_match"}, {"name": "exact_match"}]},
            "evaluator ids ['exact_match'] appear twice",
        ),
        ({"stages": {"nightly": {"categories": ["billing"]}}}, "unknown category 'billing'"),
    ],
)
def test_invalid_suites_name_the_file_and_the_problem(
    tmp_path: Path, suite: dict[str, Any], message: str
) -> None:
    path = basic(tmp_path, **suite)
    with pytest.raises(ConfigError) as caught:
        load_suite(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_unreadable_suite_and_broken_dataset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read suite"):
        load_suite(tmp_path / "missing.yaml")
    path = basic(tmp_path)
    (tmp_path / "cases.jsonl").write_text('{"id": "a", "input": 1}\n{"id": "a", "input": 2}\n')
    with pytest.raises(InvalidInputError, match="duplicate case id 'a' at lines 1 and 2"):
        load_suite(path)


def test_targets_that_cannot_be_imported(tmp_path: Path) -> None:
    suite = load_suite(basic(tmp_path, target={"callable": "MODULE:missing"}))
    with pytest.raises(ConfigError, match="has no attribute 'missing'"):
        load_target(suite)
    suite = load_suite(basic(tmp_path, target={"callable": "not a path"}))
    with pytest.raises(ConfigError, match=r"is not an import path; write it as 'package\.module"):
        load_target(suite)
    suite = load_suite(basic(tmp_path, target={"callable": "no_such_pkg_xyz.mod:f"}))
    with pytest.raises(ConfigError, match=r"cannot import module 'no_such_pkg_xyz\.mod'"):
        load_target(suite)


def test_stages_select_tagged_full_and_adversarial_cases(tmp_path: Path) -> None:
    suite = load_suite(basic(tmp_path))
    assert [c.id for c in select_cases(suite, "pre-merge")] == ["a"]
    assert [c.id for c in select_cases(suite, "post-merge")] == ["a", "b"]
    assert [c.id for c in select_cases(suite, "production")] == ["a", "b", "c", "d"]
    with pytest.raises(ConfigError, match="unknown stage 'nightly'; stages: pre-merge"):
        select_cases(suite, "nightly")
    custom = load_suite(
        basic(tmp_path, stages={"faq-only": {"categories": ["faq"], "adversarial": True}})
    )
    assert [c.id for c in select_cases(custom, "faq-only")] == ["d"]
    empty = load_suite(basic(tmp_path, stages={"none": {"categories": ["faq"]}}))
    with pytest.raises(ConfigError, match="selects no case"):
        select_cases(empty, "none")


def test_the_pre_merge_sample_is_deterministic_stratified_and_stable(tmp_path: Path) -> None:
    from tests.evals.helpers import case

    pool = [case(f"o{i}", category="orders") for i in range(40)] + [case("f0", category="faq")]
    first = deterministic_sample(pool, 0.1, seed="s")
    assert [c.id for c in first] == [c.id for c in deterministic_sample(pool, 0.1, seed="s")]
    assert sum(c.category == "orders" for c in first) == 4
    assert [c.id for c in first if c.category == "faq"] == ["f0"]  # at least one per category
    assert {c.id for c in first} != {c.id for c in deterministic_sample(pool, 0.1, seed="t")}
    grown = deterministic_sample([*pool, case("o40", category="orders")], 0.1, seed="s")
    assert len({c.id for c in first} - {c.id for c in grown}) <= 1


def test_untagged_pre_merge_falls_back_to_the_sample(tmp_path: Path) -> None:
    cases = [{"id": f"c{i}", "input": str(i), "expected": str(i)} for i in range(10)]
    path = write_suite(
        tmp_path,
        cases=cases,
        suite={
            "name": "s",
            "target": {"callable": "MODULE:echo"},
            "evaluators": [{"name": "exact_match"}],
        },
        target_source=ECHO,
    )
    selected = select_cases(load_suite(path), "pre-merge")
    assert len(selected) == 2  # the default 20 % sample


def test_a_baseline_of_another_suite_is_refused(tmp_path: Path) -> None:
    suite = load_suite(basic(tmp_path))
    other = run_suite_sync(suite, progress=False)
    renamed = type(other)(
        **{**{f: getattr(other, f) for f in other.__dataclass_fields__}, "suite": "x"}
    )
    with pytest.raises(ConfigError, match="is of suite 'x', not 's'"):
        run_suite_sync(suite, progress=False, baseline=renamed)

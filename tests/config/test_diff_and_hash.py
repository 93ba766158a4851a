"""Structural diffs are patches (A + diff(A, B) == B); hashes ignore key order; exports
load back to the same version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneloop.config.bundle import apply_bundle
from tuneloop.config.canonical import canonical_json, content_hash
from tuneloop.config.diff import diff_configs, prompt_diffs, structural_diff
from tuneloop.config.export import export_files, write_export
from tuneloop.config.loading import load_bundle_file, load_config_file

EXAMPLES = Path(__file__).parents[2] / "examples" / "support"

# Few distinct keys, so two documents share paths and diffs recurse; they include the
# characters JSON pointers escape ('/' and '~') and the empty key.
keys = st.sampled_from(["", "a", "b", "a/b", "~0", "~1/", "0"])
scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False,
    allow_infinity=False, width=32) | st.text(max_size=5)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)
documents = st.dictionaries(keys, json_values, max_size=5)


def same_json(a: Any, b: Any) -> bool:
    return canonical_json(a) == canonical_json(b)


@settings(max_examples=150, deadline=None)
@given(documents, documents)
def test_applying_the_diff_of_a_to_b_to_a_gives_b(a: dict[str, Any], b: dict[str, Any]) -> None:
    patch = [change.to_op() for change in structural_diff(a, b)]
    result = jsonpatch.apply_patch(a, patch, in_place=False)
    assert same_json(result, b)


@settings(max_examples=50, deadline=None)
@given(documents)
def test_a_document_has_no_diff_with_itself(a: dict[str, Any]) -> None:
    assert structural_diff(a, json.loads(json.dumps(a))) == ()


def test_one_and_one_point_zero_and_true_differ() -> None:
    changes = structural_diff({"a": 1, "b": True}, {"a": 1.0, "b": 1})
    assert [(c.op, c.path, c.before, c.after) for c in changes] == [
        ("replace", "/a", 1, 1.0),
        ("replace", "/b", True, 1),
    ]


def _shuffled(value: Any, rnd: Any) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _shuffled(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rnd) for v in value]
    return value


@settings(max_examples=100, deadline=None)
@given(documents, st.randoms(use_true_random=False))
def test_the_content_hash_does_not_depend_on_key_order(doc: dict[str, Any], rnd: Any) -> None:
    shuffled = _shuffled(doc, rnd)
    assert content_hash(shuffled) == content_hash(doc)
    assert canonical_json(shuffled) == canonical_json(doc)


def test_the_content_hash_changes_with_any_value() -> None:
    config = load_config_file(EXAMPLES / "agent.yaml").to_data()
    warmer = json.loads(json.dumps(config))
    warmer["params"]["temperature"] = 0.71
    assert content_hash(config) != content_hash(warmer)
    assert len(content_hash(config)) == 64


def test_a_diff_path_by_path_and_the_prompt_as_unified_text() -> None:
    config = load_config_file(EXAMPLES / "agent.yaml")
    result = apply_bundle(config, load_bundle_file(EXAMPLES / "bundle.yaml"))
    diff = diff_configs(config.to_data(), result.to_data(), old="1.0.0", new="1.1.0")
    assert [(c.op, c.path) for c in diff.changes] == [
        ("replace", "/params/temperature"),
        ("replace", "/prompts/router"),
        ("replace", "/tools/data_fetch/fallback"),
        ("replace", "/tools/data_fetch/timeout_ms"),
    ]
    assert (diff.changes[0].before, diff.changes[0].after) == (0.7, 0.3)
    assert list(diff.prompts) == ["router"]
    text = diff.prompts["router"]
    assert text.startswith("--- 1.0.0/prompts/router\n+++ 1.1.0/prompts/router\n")
    assert "-Answer with the intent only.\n" in text
    assert "+Answer with the intent only, in lower case.\n" in text
    assert jsonpatch.apply_patch(config.to_data(), diff.patch()) == result.to_data()


def test_added_and_removed_prompts_diff_against_nothing() -> None:
    diffs = prompt_diffs({"old": "gone\n"}, {"new": "here\n"})
    assert diffs["old"] == "--- a/prompts/old\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n"
    assert diffs["new"] == "--- /dev/null\n+++ b/prompts/new\n@@ -0,0 +1 @@\n+here\n"


def test_an_export_loads_back_to_the_same_version(tmp_path: Path) -> None:
    config = apply_bundle(
        load_config_file(EXAMPLES / "agent.yaml"), load_bundle_file(EXAMPLES / "bundle.yaml")
    )
    written = write_export(config, tmp_path, header="support 1.1.0")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "agent.yaml", "prompts/router.txt", "prompts/system.txt",
    ]  # fmt: skip
    text = (tmp_path / "agent.yaml").read_text()
    assert text.startswith("# support 1.1.0\nmodel:\n")
    assert "router: {file: prompts/router.txt}" in text or "file: prompts/router.txt" in text
    assert (tmp_path / "prompts" / "router.txt").read_text() == config.prompt("router")
    reloaded = load_config_file(tmp_path / "agent.yaml")
    assert content_hash(reloaded.to_data()) == content_hash(config.to_data())


def test_an_export_leaves_defaults_out_and_keeps_odd_prompt_names_inline() -> None:
    config = load_config_file(EXAMPLES / "agent.yaml").model_copy(
        update={"prompts": {"../escape": "inline text"}}
    )
    files = export_files(config)
    assert list(files) == ["agent.yaml"]
    assert "../escape: inline text" in files["agent.yaml"]
    assert "circuit_breaker" not in files["agent.yaml"]
    assert "timeout_ms: 4000" in files["agent.yaml"]

"""Config and bundle files: YAML and JSON, errors with line and column, prompt files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneloop.config.loading import config_from_text, load_bundle_file, load_config_file
from tuneloop.errors import ConfigError

EXAMPLES = Path(__file__).parents[2] / "examples" / "support"


def test_the_example_config_loads_with_its_prompt_files() -> None:
    config = load_config_file(EXAMPLES / "agent.yaml")
    assert config.prompt("system") == (EXAMPLES / "prompts" / "system.txt").read_text()
    assert config.prompt("router").startswith("Classify the customer's message")
    assert config.tool("refund").requires_approval is True
    assert config.routing.tiers["large"].name == "gpt-4o"


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("model:\n  provider: openai\n  name: [gpt-4o\nparams: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid YAML at line 4, column 7")


def test_a_key_written_twice_is_an_error_not_a_silent_override(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("model: {provider: openai, name: a}\nparams:\n  temperature: 0.1\n"
                    "  temperature: 0.9\n")  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    assert "line 4, column 3: key 'temperature' appears twice in one mapping (first at line 3)" in (
        str(caught.value)
    )


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    path.write_text('{\n  "model": {"provider": "openai", "name": "a"},\n  "params": {,}\n}')
    with pytest.raises(ConfigError, match=r"invalid JSON at line 3, column 14: Expecting"):
        load_config_file(path)


def test_json_configs_load_like_yaml(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    path.write_text('{"model": {"provider": "anthropic", "name": "claude-haiku-4"}}')
    assert load_config_file(path).model.provider == "anthropic"


def test_a_missing_prompt_file_names_the_prompt_and_the_path(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("model: {provider: openai, name: a}\nprompts:\n  system: {file: nope.txt}\n")
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    assert f"prompts.system: cannot read prompt file {str(tmp_path / 'nope.txt')!r}" in str(
        caught.value
    )


def test_a_prompt_reference_with_other_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("model: {provider: openai, name: a}\nprompts:\n  system: {path: x.txt}\n")
    with pytest.raises(ConfigError, match=r"prompts.system: a prompt is either text or"):
        load_config_file(path)


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ConfigError, match="an agent config is a mapping"):
        config_from_text("- just\n- a list\n", source="inline")


def test_the_example_bundle_reads_its_prompt_file() -> None:
    bundle = load_bundle_file(EXAMPLES / "bundle.yaml")
    assert bundle.bundle_id == "agent-quality-loop-v1"
    assert [r.type for r in bundle.recommendations] == [
        "tool_rearrangement", "prompt_optimization", "timeout_adjustment",
    ]  # fmt: skip
    router_op = bundle.recommendations[1].change[1]
    assert router_op.path == "/prompts/router"
    assert router_op.value == (EXAMPLES / "prompts" / "router_v2.txt").read_text()


def test_bundle_files_report_bad_fields_by_path(tmp_path: Path) -> None:
    path = tmp_path / "bundle.yaml"
    path.write_text(
        "bundle_id: b\nversion: one\nrecommendations:\n"
        "  - {type: vibes, target: x, change: {op: add, path: /a}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_bundle_file(path)
    lines = [line.strip() for line in str(caught.value).splitlines()]
    assert "version: Value error, 'one' is not a semantic version such as 1.0.0" not in lines
    assert "version: 'one' is not a semantic version such as 1.0.0" in lines
    assert any(line.startswith("recommendations.0.type: Input should be") for line in lines)
    assert "recommendations.0.change.0: op 'add' needs a `value`" in lines

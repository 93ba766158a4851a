"""Applying bundles: the result validates, and failures name the recommendation and path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tuneloop.config.bundle import Bundle, apply_bundle
from tuneloop.config.loading import load_bundle_file, load_config_file
from tuneloop.config.model import AgentConfig
from tuneloop.errors import ConfigError

EXAMPLES = Path(__file__).parents[2] / "examples" / "support"


@pytest.fixture
def config() -> AgentConfig:
    return load_config_file(EXAMPLES / "agent.yaml")


def bundle(*recommendations: dict[str, Any]) -> Bundle:
    return Bundle.from_data(
        {"bundle_id": "test-bundle", "version": "1.0.0", "recommendations": list(recommendations)}
    )


def rec(
    change: Any, type_: str = "timeout_adjustment", target: str = "data_fetch"
) -> dict[str, Any]:
    return {"type": type_, "target": target, "change": change}


def test_the_example_bundle_changes_exactly_what_it_says(config: AgentConfig) -> None:
    result = apply_bundle(config, load_bundle_file(EXAMPLES / "bundle.yaml"))
    fetch = result.tool("data_fetch")
    assert fetch.fallback is not None
    assert (fetch.fallback.kind, fetch.fallback.max_age_s) == ("cache", 600)
    assert fetch.timeout_ms == 6000
    assert result.params.temperature == 0.3
    assert "money back is a refund" in result.prompt("router")
    # Everything else is untouched.
    assert result.prompt("system") == config.prompt("system")
    assert result.tool("refund") == config.tool("refund")
    assert result.params.max_tokens == config.params.max_tokens


def test_the_original_config_is_not_modified(config: AgentConfig) -> None:
    before = config.to_data()
    apply_bundle(config, bundle(rec({"op": "replace", "path": "/params/temperature", "value": 1})))
    assert config.to_data() == before


def test_an_operation_on_a_missing_tool_names_the_recommendation_and_what_exists(
    config: AgentConfig,
) -> None:
    broken = bundle(
        rec({"op": "replace", "path": "/params/temperature", "value": 0.2}),
        rec({"op": "add", "path": "/tools/data_fetcher/fallback", "value": {"kind": "cache"}},
            type_="tool_rearrangement", target="data_fetcher"),
    )  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        apply_bundle(config, broken)
    assert str(caught.value) == (
        "bundle 'test-bundle': recommendation 1 (tool_rearrangement on 'data_fetcher'): "
        "add /tools/data_fetcher/fallback: /tools has no key 'data_fetcher'; "
        "it has: data_fetch, refund"
    )


def test_replace_needs_the_path_to_exist(config: AgentConfig) -> None:
    with pytest.raises(ConfigError, match=r"/params has no key 'temprature'; it has: "):
        apply_bundle(
            config, bundle(rec({"op": "replace", "path": "/params/temprature", "value": 1}))
        )


def test_a_list_index_past_the_end_is_explained(config: AgentConfig) -> None:
    with pytest.raises(ConfigError, match=r"/guardrails has no item '5' \(it has 2 items\)"):
        apply_bundle(config, bundle(rec({"op": "remove", "path": "/guardrails/5"})))


def test_a_value_out_of_bounds_is_blamed_on_its_recommendation(config: AgentConfig) -> None:
    broken = bundle(
        rec({"op": "replace", "path": "/tools/data_fetch/timeout_ms", "value": 2000}),
        rec({"op": "replace", "path": "/params/temperature", "value": 3.5},
            type_="prompt_optimization", target="router"),
    )  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        apply_bundle(config, broken)
    assert str(caught.value) == (
        "bundle 'test-bundle' makes the config invalid:\n"
        "  recommendation 1 (prompt_optimization on 'router'): params.temperature: "
        "Input should be less than or equal to 2"
    )


def test_a_type_error_and_an_unknown_key_are_blamed_too(config: AgentConfig) -> None:
    broken = bundle(
        rec({"op": "replace", "path": "/tools/data_fetch/timeout_ms", "value": "soon"}),
        rec({"op": "add", "path": "/tools/data_fetch/retries", "value": 3}, type_="retry_policy"),
    )
    with pytest.raises(ConfigError) as caught:
        apply_bundle(config, broken)
    lines = str(caught.value).splitlines()[1:]
    assert lines == [
        "  recommendation 0 (timeout_adjustment on 'data_fetch'): tools.data_fetch.timeout_ms: "
        "Input should be a valid integer, unable to parse string as an integer",
        "  recommendation 1 (retry_policy on 'data_fetch'): tools.data_fetch.retries: "
        "unknown key; remove it or check its spelling",
    ]


def test_a_cross_field_problem_names_the_recommendation_that_caused_it(
    config: AgentConfig,
) -> None:
    broken = bundle(
        rec({"op": "replace", "path": "/routing/default_tier", "value": "medium"},
            type_="model_routing", target="routing"),
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"recommendation 0 \(model_routing on 'routing'\): "
                       r"routing.default_tier: names unknown tier 'medium'"):  # fmt: skip
        apply_bundle(config, broken)


def test_a_failed_test_operation_stops_the_bundle(config: AgentConfig) -> None:
    guarded = bundle(
        rec([
            {"op": "test", "path": "/tools/data_fetch/timeout_ms", "value": 3000},
            {"op": "replace", "path": "/tools/data_fetch/timeout_ms", "value": 6000},
        ])
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"test failed: the value is 4000, not 3000"):
        apply_bundle(config, guarded)


def test_move_and_copy_operations_work(config: AgentConfig) -> None:
    result = apply_bundle(
        config,
        bundle(
            rec({"op": "copy", "from": "/tools/data_fetch", "path": "/tools/data_fetch_eu"}),
            rec({"op": "move", "from": "/prompts/router", "path": "/prompts/classifier"},
                type_="prompt_optimization", target="router"),
        ),
    )  # fmt: skip
    assert result.tool("data_fetch_eu") == config.tool("data_fetch")
    assert result.prompt("classifier") == config.prompt("router")
    assert "router" not in result.prompts


def test_a_bundle_needs_recommendations_and_a_semver() -> None:
    with pytest.raises(ConfigError) as caught:
        Bundle.from_data({"bundle_id": "b c", "version": "1.0", "recommendations": []})
    lines = [line.strip() for line in str(caught.value).splitlines()[1:]]
    assert lines == [
        "bundle_id: use 1-128 letters, digits, '_', '.' or '-'",
        "version: '1.0' is not a semantic version such as 1.0.0",
        "recommendations: List should have at least 1 item after validation, not 0",
    ]


def test_bundles_serialize_as_rfc6902_operations() -> None:
    data = bundle(
        rec({"op": "remove", "path": "/tools/data_fetch/fallback"}),
        rec({"op": "move", "from": "/a", "path": "/b"}),
    ).to_data()
    assert data["recommendations"][0]["change"] == [
        {"op": "remove", "path": "/tools/data_fetch/fallback"}
    ]
    assert data["recommendations"][1]["change"] == [{"op": "move", "path": "/b", "from": "/a"}]
    assert Bundle.from_data(data).to_data() == data

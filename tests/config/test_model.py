"""AgentConfig: the agreed shape, unknown keys and bad values named by path, accessors."""

from __future__ import annotations

from typing import Any

import pytest

from tuneloop.config.model import AgentConfig, ToolSettings
from tuneloop.errors import ConfigError


def minimal(**overrides: Any) -> dict[str, Any]:
    return {"model": {"provider": "openai", "name": "gpt-4o-mini"}, **overrides}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        AgentConfig.from_data(data)
    return [line.strip() for line in str(caught.value).splitlines()[1:]]


def test_defaults_fill_the_effective_config() -> None:
    config = AgentConfig.from_data(minimal(tools={"data_fetch": {}}))
    tool = config.tool("data_fetch")
    assert tool.timeout_ms == 30_000
    assert tool.retry.max_attempts == 1
    assert tool.retry.retry_on == ["timeout", "rate_limit", "server_error", "connection"]
    assert tool.side_effect == "read" and tool.fallback is None
    assert config.limits.max_steps == 10 and config.review.sample_rate == 0.0
    data = config.to_data()
    assert data["params"]["temperature"] is None
    assert data["tools"]["data_fetch"]["retry"]["backoff_ms"] == 200


def test_unknown_keys_are_errors_with_their_path() -> None:
    found = problems(minimal(tools={"data_fetch": {"timout_ms": 5}}, temprature=0.1))
    assert "tools.data_fetch.timout_ms: unknown key; remove it or check its spelling" in found
    assert "temprature: unknown key; remove it or check its spelling" in found


def test_values_out_of_bounds_name_the_path_and_the_bound() -> None:
    found = problems(
        minimal(
            params={"temperature": 2.5, "top_p": -0.1},
            tools={"data_fetch": {"retry": {"max_attempts": 0}}},
            review={"sample_rate": 1.5},
        )
    )
    assert found == [
        "params.temperature: Input should be less than or equal to 2",
        "params.top_p: Input should be greater than or equal to 0",
        "tools.data_fetch.retry.max_attempts: Input should be greater than or equal to 1",
        "review.sample_rate: Input should be less than or equal to 1",
    ]


def test_a_config_needs_a_model() -> None:
    assert problems({}) == ["model: Field required"]


def test_fallback_to_an_unknown_tool_and_unknown_tiers_are_caught() -> None:
    found = problems(
        minimal(
            tools={"a": {"fallback": {"kind": "tool", "tool": "nope"}}},
            routing={
                "tiers": {"small": {"provider": "openai", "name": "gpt-4o-mini"}},
                "default_tier": "big",
                "rules": [{"tier": "small"}, {"tier": "medium"}],
                "failover": ["small", "huge"],
            },
        )
    )
    assert found == [
        "tools.a.fallback.tool: names unknown tool 'nope'; known tools: a",
        "routing.default_tier: names unknown tier 'big'; known tiers: small",
        "routing.rules.1.tier: names unknown tier 'medium'; known tiers: small",
        "routing.failover.1: names unknown tier 'huge'; known tiers: small",
    ]


def test_fallback_fields_must_match_their_kind() -> None:
    found = problems(minimal(tools={"a": {"fallback": {"kind": "cache", "tool": "b"}}}))
    assert found == ["tools.a.fallback: `tool:` is only read by kind 'tool', not 'cache'"]
    found = problems(minimal(tools={"a": {"fallback": {"kind": "tool"}}}))
    assert found == [
        "tools.a.fallback: a fallback of kind 'tool' needs `tool:` naming the tool to call"
    ]


def test_retry_backoff_cap_and_guardrail_names() -> None:
    found = problems(
        minimal(
            tools={"a": {"retry": {"backoff_ms": 500, "max_backoff_ms": 100}}},
            guardrails=[
                {"name": "pii", "kind": "pii", "hops": ["output"]},
                {"name": "pii", "kind": "length", "hops": ["input"]},
                {"name": "x", "kind": "telepathy", "hops": []},
            ],
        )
    )
    assert found[0].startswith("tools.a.retry: max_backoff_ms (100) is below backoff_ms (500)")
    assert any(p.startswith("guardrails.2.kind: Input should be 'pii'") for p in found)
    assert "guardrails.2.hops: List should have at least 1 item after validation, not 0" in found


def test_duplicate_guardrail_names_are_refused() -> None:
    found = problems(
        minimal(
            guardrails=[
                {"name": "pii", "kind": "pii", "hops": ["output"]},
                {"name": "pii", "kind": "length", "hops": ["input"]},
            ]
        )
    )
    assert found == [
        "guardrails.1.name: 'pii' is already the name of guardrail 0; names must be unique"
    ]


def test_prompt_and_tool_accessors_name_what_exists() -> None:
    config = AgentConfig.from_data(
        minimal(prompts={"system": "Be brief.", "router": "Classify."}, tools={"lookup": {}})
    )
    assert config.prompt("system") == "Be brief."
    with pytest.raises(
        ConfigError, match=r"no prompt named 'sytem'.*known prompts: router, system"
    ):
        config.prompt("sytem")
    with pytest.raises(ConfigError, match=r"no tool named 'refund'.*known tools: lookup"):
        config.tool("refund")
    assert config.tool_or_default("refund") == ToolSettings()


def test_configs_are_immutable() -> None:
    config = AgentConfig.from_data(minimal())
    with pytest.raises(ValueError, match="frozen"):
        config.model = config.model  # type: ignore[misc]

"""Tool contracts: schemas from type hints, validation both ways, the envelope."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.runtime.tools_fixtures import Address, degraded_search, lookup_order, ship_to
from tuneloop.errors import ConfigError, ToolOutputError
from tuneloop.runtime.tools import Tool, ToolContext, ToolResult, tool

pytestmark = pytest.mark.anyio


def test_schema_comes_from_the_signature_and_docstring() -> None:
    assert lookup_order.name == "lookup_order"
    assert lookup_order.description == "Look up an order by its id."
    schema = lookup_order.schema()
    assert schema["type"] == "object"
    assert schema["required"] == ["order_id"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["order_id"]["type"] == "string"
    assert schema["properties"]["order_id"]["description"] == "the order's id, such as ``A-1234``."
    assert schema["properties"]["include_items"] == {
        "default": False,
        "description": "also return the line items.",
        "title": "Include Items",
        "type": "boolean",
    }
    spec = lookup_order.spec("Find an order (config wording).")
    assert spec.description == "Find an order (config wording)."
    assert spec.parameters == schema


def test_pydantic_parameters_nest_and_context_is_hidden() -> None:
    schema = ship_to.schema()
    assert set(schema["properties"]) == {"order_id", "address"}
    assert "context" not in json.dumps(schema)
    assert schema["$defs"]["Address"]["required"] == ["street", "city"]
    assert ship_to.side_effect == "write"
    assert ship_to.name == "ship-to"


@pytest.mark.parametrize(
    ("raw", "kind", "where"),
    [
        ('{"order_id": "A-1"', "json_invalid", ""),
        ("[1, 2]", "object_type", ""),
        ("{}", "missing", "order_id"),
        ('{"order_id": 12}', "string_type", "order_id"),
        ('{"order_id": "A-1", "include_items": "maybe"}', "bool_parsing", "include_items"),
        ('{"order_id": "A-1", "drop_table": true}', "extra_forbidden", "drop_table"),
    ],
)
def test_malformed_arguments_are_described_not_raised(raw: str, kind: str, where: str) -> None:
    check = lookup_order.check_arguments(raw)
    assert not check.ok
    assert [(p["type"], p["loc"]) for p in check.problems] == [(kind, where)]


def test_valid_arguments_validate_into_values_and_json() -> None:
    check = ship_to.check_arguments(
        {"order_id": "A-1", "address": {"street": "1 Rue", "city": "Lyon"}}
    )
    assert check.ok
    assert isinstance(check.values.address, Address)  # type: ignore[union-attr]
    assert check.data == {"order_id": "A-1", "address": {"street": "1 Rue", "city": "Lyon"}}
    assert lookup_order.check_arguments("").ok is False  # order_id still required


async def test_invoke_passes_validated_values_and_context() -> None:
    check = ship_to.check_arguments(
        {"order_id": "A-1", "address": {"street": "1 Rue", "city": "Lyon"}}
    )
    assert check.values is not None
    value = await ship_to.invoke(check.values, ToolContext("ship-to", "call_1", "idem:abc", 1))
    assert value == {"order_id": "A-1", "city": "Lyon", "key": "idem:abc"}


def test_output_is_validated_against_the_return_type() -> None:
    good = lookup_order.check_output(
        {"order_id": "A-1", "status": "shipped", "total_cents": "4200"}
    )
    assert good == ToolResult(
        "success", {"order_id": "A-1", "status": "shipped", "total_cents": 4200}
    )
    with pytest.raises(ToolOutputError, match=r"total_cents: Field required"):
        lookup_order.check_output({"order_id": "A-1", "status": "shipped"})
    with pytest.raises(ToolOutputError, match="wrong shape"):
        lookup_order.check_output(["not", "an", "order"])


def test_a_tool_may_report_partial_itself() -> None:
    result = degraded_search.check_output(degraded_search("refund policy"))
    assert result.status == "partial"
    assert result.data == ["refund policy"]
    assert result.metadata == {"note": "index is rebuilding"}


def test_untyped_output_must_be_json() -> None:
    @tool
    def leaky() -> Any:
        """Returns something JSON cannot carry."""
        return object()

    with pytest.raises(ToolOutputError, match="not JSON"):
        leaky.check_output(leaky())


def test_tool_stays_callable_as_the_function() -> None:
    assert (
        ship_to("A-1", Address(street="s", city="Oslo"), ToolContext("t", "c", "k", 1))["city"]
        == "Oslo"
    )


def test_envelope_round_trips_and_reads_as_a_tool_message() -> None:
    error = ToolResult.error("timeout", "too slow", retryable=True, attempts=3)
    assert ToolResult.from_dict(error.to_dict()) == error
    assert error.error_kind == "timeout"
    message = error.to_message("call_5", name="lookup_order")
    assert message.role == "tool"
    assert message.tool_call_id == "call_5"
    assert json.loads(message.text) == {
        "status": "error",
        "data": None,
        "error": {"type": "timeout", "message": "too slow", "retryable": True},
    }
    assert json.loads(ToolResult.success({"a": 1}, attempts=1).to_content()) == {
        "status": "success",
        "data": {"a": 1},
    }


def test_signatures_json_cannot_call_are_config_errors() -> None:
    def star(*ids: str) -> None:
        """Varargs."""

    def positional(order_id: str, /) -> None:
        """Positional-only."""

    with pytest.raises(ConfigError, match="cannot be passed by name"):
        Tool(star)
    with pytest.raises(ConfigError, match="cannot be passed by name"):
        Tool(positional)
    with pytest.raises(ConfigError, match="tool name"):
        Tool(lambda: None, name="has spaces")

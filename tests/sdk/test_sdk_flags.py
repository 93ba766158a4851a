"""Feature flags: rules in order, then a percentage by hash of salt and unit, else off."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.sdk.state_fakes import StateServer, state
from tuneloop import semconv
from tuneloop.assign import unit_point
from tuneloop.config.flags import CompiledFlag, evaluate_flag
from tuneloop.config.state import Flag
from tuneloop.sdk import Client


def flag(**fields: Any) -> Flag:
    return Flag.model_validate({"key": "new_refund_flow", "salt": "flag-salt", **fields})


def rule(attribute: str, op: str, values: list[Any], value: bool = True) -> dict[str, Any]:
    return {"attribute": attribute, "op": op, "values": values, "value": value}


@pytest.mark.parametrize(
    ("op", "values", "actual", "matches"),
    [
        ("eq", ["pro"], "pro", True),
        ("eq", ["pro"], "free", False),
        ("eq", [1], 1.0, True),
        ("eq", [1], True, False),  # a boolean is not the number 1
        ("eq", [True], True, True),
        ("in", ["de", "fr"], "fr", True),
        ("in", ["de", "fr"], "us", False),
        ("neq", ["free"], "pro", True),
        ("neq", ["free"], "free", False),
        ("not_in", ["de", "fr"], "us", True),
        ("not_in", ["de", "fr"], "de", False),
        ("not_in", ["de"], ["de"], False),  # a list is neither in nor out: no match
        ("contains", ["@acme.com"], "ann@acme.com", True),
        ("contains", ["@acme.com"], "ann@other.org", False),
        ("contains", ["beta"], ["alpha", "beta"], True),
        ("contains", [3], [1, 2], False),
        ("contains", ["x"], 42, False),
        ("gt", [100], 101, True),
        ("gt", [100], 100, False),
        ("gte", [100], 100, True),
        ("lt", [2.5], 2, True),
        ("lte", [2], 2.0, True),
        ("lte", [2], 3, False),
        ("gt", [100], "101", False),  # text is never a number
        ("gt", [100], True, False),
        ("gt", ["abc"], 5, False),
        ("gt", [0], math.nan, False),
    ],
)
def test_each_operator(op: str, values: list[Any], actual: Any, matches: bool) -> None:
    result = evaluate_flag(flag(rules=[rule("a", op, values)]), None, {"a": actual})
    assert (result.value, result.reason) == (
        (True, "targeting_match") if matches else (False, "default")
    )


def test_rules_are_tried_in_order_and_a_rule_can_turn_the_flag_off() -> None:
    compiled = CompiledFlag(
        flag(
            percentage=100.0,
            rules=[rule("plan", "eq", ["free"], value=False), rule("country", "eq", ["de"])],
        )
    )
    free = compiled.evaluate("u1", {"plan": "free", "country": "de"})
    assert (free.value, free.reason, free.rule, free.variant) == (
        False,
        "targeting_match",
        0,
        "off",
    )
    german = compiled.evaluate("u1", {"plan": "pro", "country": "de"})
    assert (german.value, german.reason, german.rule) == (True, "targeting_match", 1)
    other = compiled.evaluate("u1", {"plan": "pro"})
    assert (other.value, other.reason, other.rule) == (True, "split", None)


def test_a_missing_attribute_matches_no_rule_not_even_a_negative_one() -> None:
    compiled = CompiledFlag(flag(rules=[rule("plan", "neq", ["free"])]))
    assert compiled.evaluate("u1", {"country": "de"}).value is False
    assert compiled.evaluate("u1", None).reason == "default"


def test_a_disabled_flag_is_off_whatever_its_rules_and_percentage() -> None:
    compiled = CompiledFlag(flag(enabled=False, percentage=100.0, rules=[rule("a", "eq", [1])]))
    result = compiled.evaluate("u1", {"a": 1})
    assert (result.value, result.reason) == (False, "disabled")


def test_the_percentage_is_the_hash_of_salt_and_unit() -> None:
    compiled = CompiledFlag(flag(percentage=30.0))
    for i in range(2000):
        unit = f"user-{i}"
        assert compiled.evaluate(unit).value is (unit_point("flag-salt", unit) < 0.30)
    on = sum(compiled.evaluate(f"user-{i}").value for i in range(20_000))
    assert on == pytest.approx(6000, abs=5 * math.sqrt(20_000 * 0.3 * 0.7))


def test_without_a_unit_only_a_full_percentage_is_on() -> None:
    assert CompiledFlag(flag(percentage=99.0)).evaluate(None).value is False
    assert CompiledFlag(flag(percentage=100.0)).evaluate(None).value is True
    assert CompiledFlag(flag(percentage=0.0)).evaluate("u1").value is False


@settings(max_examples=50, deadline=None)
@given(
    salt=st.text(min_size=1, max_size=12), ramp=st.lists(st.floats(0, 100), min_size=2).map(sorted)
)
def test_raising_the_percentage_never_turns_the_flag_off_for_anyone(
    salt: str, ramp: list[float]
) -> None:
    units = [f"u{i}" for i in range(1000)]
    previous: set[str] = set()
    for percentage in ramp:
        compiled = CompiledFlag(Flag(key="f", salt=salt, percentage=percentage))
        on = {u for u in units if compiled.evaluate(u).value}
        assert previous <= on
        previous = on


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_client_flags_come_from_the_agent_state_and_record_an_event(
    tmp_path: Path, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    backend = StateServer()
    backend.put(
        state(
            flags=[
                flag(percentage=0.0, rules=[rule("plan", "eq", ["pro"])]),
                Flag(key="everyone", salt="s", percentage=100.0),
            ]
        )
    )
    with Client(
        "http://t.test", transport=backend.transport, agents=["support"], state_dir=tmp_path
    ) as client:
        assert client.wait_for_state(5.0)
        provider, exporter = spans
        with provider.get_tracer("t").start_as_current_span("work"):
            assert client.flag("new_refund_flow", unit_id="u1", attributes={"plan": "pro"})
            assert not client.flag("new_refund_flow", unit_id="u1", attributes={"plan": "free"})
            assert client.flag("everyone", session_id="s-1", agent="support")
            assert not client.flag("no_such_flag", unit_id="u1")
        assert client.config_stats.unknown_flags == 1
    (span,) = exporter.get_finished_spans()
    events = [_event(span, i) for i in range(len(span.events))]
    assert events == [
        ("new_refund_flow", "on", "targeting_match"),
        ("new_refund_flow", "off", "default"),
        ("everyone", "on", "split"),
    ]


def _event(span: ReadableSpan, index: int) -> tuple[Any, Any, Any]:
    event = span.events[index]
    assert event.name == semconv.FEATURE_FLAG_EVALUATION_EVENT
    attributes = event.attributes or {}
    return (
        attributes[semconv.FEATURE_FLAG_KEY],
        attributes[semconv.FEATURE_FLAG_RESULT_VARIANT],
        attributes[semconv.FEATURE_FLAG_RESULT_REASON],
    )


def test_flags_are_off_while_no_state_is_known(tmp_path: Path, closed_port: int) -> None:
    with Client(
        f"http://127.0.0.1:{closed_port}", agents=["support"], state_dir=tmp_path
    ) as client:
        assert client.flag("new_refund_flow", unit_id="u1") is False
        assert client.config_stats.unknown_flags == 1


def test_an_agent_named_for_a_flag_is_fetched_from_then_on(tmp_path: Path) -> None:
    backend = StateServer()
    backend.put(state("billing", flags=[Flag(key="f", salt="s", percentage=100.0)]))
    with Client("http://t.test", transport=backend.transport, state_dir=tmp_path) as client:
        assert client.flag("f", unit_id="u1", agent="billing") is False  # not fetched yet
        assert client.wait_for_state(5.0, agent="billing")
        assert client.flag("f", unit_id="u1", agent="billing") is True
        assert client.flag("f", unit_id="u1") is True  # billing is now a known agent

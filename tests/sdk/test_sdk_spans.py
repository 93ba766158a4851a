"""Span helpers: names, GenAI attributes, parent/child links, outcomes, exceptions."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus
from opentelemetry.sdk.trace import TracerProvider

from tests.sdk.sdk_fakes import FakeServer, attrs, by_name
from tuneloop import semconv
from tuneloop.errors import InvalidInputError
from tuneloop.sdk import Client

ERROR = PbStatus.StatusCode.STATUS_CODE_ERROR
UNSET = PbStatus.StatusCode.STATUS_CODE_UNSET


def exported(client: Client, server: FakeServer) -> dict[str, PbSpan]:
    assert client.flush(timeout_s=5.0)
    return by_name(server.spans())


def test_run_root_span_carries_run_attributes(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client(
        service_name="support-bot", resource_attributes={"deployment.environment": "prod"}
    )
    with client.run(
        "support",
        unit_id="user-7",
        session_id="sess-1",
        config_version="v3",
        variant="treatment",
        experiment="prompt-v2",
        attributes={"tenant": "acme", semconv.GEN_AI_AGENT_NAME: "not-me"},
    ) as run:
        pass

    root = exported(client, server)["invoke_agent support"]
    assert root.trace_id.hex() == run.trace_id
    assert len(run.trace_id) == 32
    assert root.parent_span_id == b""
    assert root.kind == PbSpan.SpanKind.SPAN_KIND_INTERNAL
    assert root.status.code == UNSET
    assert attrs(root.attributes) == {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT,
        semconv.GEN_AI_AGENT_NAME: "support",
        semconv.TL_UNIT_ID: "user-7",
        semconv.TL_SESSION_ID: "sess-1",
        semconv.GEN_AI_CONVERSATION_ID: "sess-1",
        semconv.TL_CONFIG_VERSION: "v3",
        semconv.FEATURE_FLAG_KEY: "prompt-v2",
        semconv.FEATURE_FLAG_RESULT_VARIANT: "treatment",
        semconv.TL_RUN_OUTCOME: "success",
        "tenant": "acme",
    }
    resource = attrs(server.exports()[0].resource_spans[0].resource.attributes)
    assert resource[semconv.SERVICE_NAME] == "support-bot"
    assert resource["deployment.environment"] == "prod"


def test_run_omits_attributes_not_given(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    with client.run("support"):
        pass
    root = exported(client, server)["invoke_agent support"]
    assert set(attrs(root.attributes)) == {
        semconv.GEN_AI_OPERATION_NAME,
        semconv.GEN_AI_AGENT_NAME,
        semconv.TL_RUN_OUTCOME,
    }


def test_llm_tool_and_guardrail_spans_are_children_with_genai_attributes(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    question = [{"role": "user", "parts": [{"type": "text", "content": "where is order 42?"}]}]
    answer = [{"role": "assistant", "parts": [{"type": "text", "content": "shipped"}]}]
    with client.run("support") as run:
        with run.guardrail("pii", verdict="pass"):
            pass
        with run.llm_call("gpt-4o", "openai", temperature=0.2, input_messages=question) as call:
            call.usage(input_tokens=812, output_tokens=95, cost_usd=0.003)
            call.response(
                model="gpt-4o-2024-08-06", finish_reasons=["tool_calls"], output_messages=answer
            )
        with run.tool_call("lookup_order", {"order_id": 42}, call_id="call-1") as tool:
            tool.retries(2)
            tool.result("partial", data={"status": "shipped"})

    spans = exported(client, server)
    root = spans["invoke_agent support"]
    llm, tool_span, guard = (
        spans["chat gpt-4o"],
        spans["execute_tool lookup_order"],
        spans["guardrail pii"],
    )
    for child in (llm, tool_span, guard):
        assert child.trace_id == root.trace_id
        assert child.parent_span_id == root.span_id
    assert llm.kind == PbSpan.SpanKind.SPAN_KIND_CLIENT
    llm_attrs = attrs(llm.attributes)
    assert llm_attrs == {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        semconv.GEN_AI_INPUT_MESSAGES: llm_attrs[semconv.GEN_AI_INPUT_MESSAGES],
        semconv.GEN_AI_OUTPUT_MESSAGES: llm_attrs[semconv.GEN_AI_OUTPUT_MESSAGES],
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 812,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 95,
        semconv.TL_COST_USD: 0.003,
        semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["tool_calls"],
    }
    assert json.loads(llm_attrs[semconv.GEN_AI_INPUT_MESSAGES]) == question
    assert json.loads(llm_attrs[semconv.GEN_AI_OUTPUT_MESSAGES]) == answer
    tool_attrs = attrs(tool_span.attributes)
    assert tool_attrs == {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
        semconv.GEN_AI_TOOL_NAME: "lookup_order",
        semconv.GEN_AI_TOOL_CALL_ID: "call-1",
        semconv.GEN_AI_TOOL_CALL_ARGUMENTS: '{"order_id": 42}',
        semconv.GEN_AI_TOOL_CALL_RESULT: '{"status": "shipped"}',
        semconv.TL_TOOL_RETRIES: 2,
        semconv.TL_TOOL_STATUS: semconv.TOOL_STATUS_PARTIAL,
    }
    assert tool_span.status.code == UNSET
    assert attrs(guard.attributes) == {
        semconv.TL_SPAN_KIND: semconv.SPAN_KIND_GUARDRAIL,
        semconv.TL_GUARDRAIL_NAME: "pii",
        semconv.TL_GUARDRAIL_VERDICT: "pass",
    }


def test_guardrail_verdict_can_be_set_after_the_check(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    with client.run("support") as run, run.guardrail("toxicity") as check:
        check.verdict("block")
    guard = exported(client, server)["guardrail toxicity"]
    assert attrs(guard.attributes)[semconv.TL_GUARDRAIL_VERDICT] == "block"


def test_helpers_nest_through_the_opentelemetry_context(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    with client.run("support") as run, run.llm_call("gpt-4o") as call:
        with run.tool_call("search"):
            pass
        assert call.span.is_recording()
    spans = exported(client, server)
    assert spans["execute_tool search"].parent_span_id == spans["chat gpt-4o"].span_id
    assert spans["chat gpt-4o"].parent_span_id == spans["invoke_agent support"].span_id


def test_helper_used_from_another_thread_hangs_under_the_run(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    with client.run("support") as run:

        def work() -> None:
            with run.tool_call("in_thread"):
                pass

        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    spans = exported(client, server)
    assert spans["execute_tool in_thread"].parent_span_id == spans["invoke_agent support"].span_id


def test_exception_in_run_marks_failure_and_propagates(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    with pytest.raises(KeyError, match="order"), client.run("support"):
        raise KeyError("order")
    root = exported(client, server)["invoke_agent support"]
    root_attrs = attrs(root.attributes)
    assert root_attrs[semconv.TL_RUN_OUTCOME] == "failure"
    assert root_attrs[semconv.ERROR_TYPE] == "KeyError"
    assert root.status.code == ERROR
    [event] = root.events
    assert event.name == semconv.EXCEPTION_EVENT
    assert attrs(event.attributes)[semconv.EXCEPTION_TYPE] == "KeyError"


def test_outcome_set_before_an_exception_is_kept(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    with pytest.raises(RuntimeError), client.run("support") as run:
        run.outcome("escalated")
        raise RuntimeError("handing over to a human")
    root = exported(client, server)["invoke_agent support"]
    assert attrs(root.attributes)[semconv.TL_RUN_OUTCOME] == "escalated"
    assert root.status.code == ERROR


def test_explicit_outcome_without_exception(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    with client.run("support") as run:
        run.outcome("budget_exhausted")
    root = exported(client, server)["invoke_agent support"]
    assert attrs(root.attributes)[semconv.TL_RUN_OUTCOME] == "budget_exhausted"
    assert root.status.code == UNSET


def test_exception_in_tool_marks_tool_failed_and_propagates(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    with client.run("support") as run:
        with pytest.raises(TimeoutError), run.tool_call("lookup_order"):
            raise TimeoutError("upstream took 30 s")
        run.set_attribute("caught", True)
    spans = exported(client, server)
    tool = spans["execute_tool lookup_order"]
    tool_attrs = attrs(tool.attributes)
    assert tool_attrs[semconv.ERROR_TYPE] == "TimeoutError"
    assert tool_attrs[semconv.TL_TOOL_STATUS] == semconv.TOOL_STATUS_ERROR
    assert tool_attrs[semconv.TL_TOOL_RETRYABLE] is False
    assert tool.status.code == ERROR
    assert tool.status.message == "upstream took 30 s"
    # The host caught it: the run itself succeeded.
    assert attrs(spans["invoke_agent support"].attributes)[semconv.TL_RUN_OUTCOME] == "success"


def test_tool_fail_records_error_type_and_retryability(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    with client.run("support") as run, run.tool_call("lookup_order") as tool:
        tool.fail("503", retryable=True, message="orders API unavailable")
    tool_span = exported(client, server)["execute_tool lookup_order"]
    assert attrs(tool_span.attributes) == {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
        semconv.GEN_AI_TOOL_NAME: "lookup_order",
        semconv.ERROR_TYPE: "503",
        semconv.TL_TOOL_STATUS: semconv.TOOL_STATUS_ERROR,
        semconv.TL_TOOL_RETRYABLE: True,
    }
    assert tool_span.status.code == ERROR
    assert tool_span.status.message == "orders API unavailable"


def test_tool_without_result_ends_successful(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    with client.run("support") as run, run.tool_call("lookup_order"):
        pass
    tool_span = exported(client, server)["execute_tool lookup_order"]
    assert attrs(tool_span.attributes)[semconv.TL_TOOL_STATUS] == semconv.TOOL_STATUS_SUCCESS


def test_exception_in_llm_call_marks_it_errored(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    with pytest.raises(ConnectionError), client.run("support") as run, run.llm_call("gpt-4o"):
        raise ConnectionError("provider down")
    spans = exported(client, server)
    assert attrs(spans["chat gpt-4o"].attributes)[semconv.ERROR_TYPE] == "ConnectionError"
    assert spans["chat gpt-4o"].status.code == ERROR
    assert attrs(spans["invoke_agent support"].attributes)[semconv.TL_RUN_OUTCOME] == "failure"


def test_misuse_raises_a_usage_error(make_client: Callable[..., Client]) -> None:
    client = make_client()
    with client.run("support") as run:
        with pytest.raises(InvalidInputError, match="unknown run outcome 'done'"):
            run.outcome("done")  # type: ignore[arg-type]
        with run.tool_call("t") as tool:
            with pytest.raises(InvalidInputError, match="unknown tool status"):
                tool.result("error")  # type: ignore[arg-type]
            with pytest.raises(InvalidInputError, match="retries must be >= 0"):
                tool.retries(-1)


def test_run_starts_a_new_trace_linked_to_the_ambient_span(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    host_tracer = TracerProvider().get_tracer("host")
    with host_tracer.start_as_current_span("GET /chat") as ambient, client.run("support") as run:
        pass
    root = exported(client, server)["invoke_agent support"]
    ambient_context = ambient.get_span_context()
    assert run.trace_id != format(ambient_context.trace_id, "032x")
    assert root.parent_span_id == b""
    [link] = root.links
    assert link.trace_id == ambient_context.trace_id.to_bytes(16, "big")
    assert link.span_id == ambient_context.span_id.to_bytes(8, "big")


def test_unserializable_messages_are_recorded_not_raised(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client()
    circular: list[object] = []
    circular.append(circular)
    with client.run("support") as run:
        with run.llm_call("gpt-4o", input_messages=[{"role": "user", "content": object()}]):
            pass
        with run.tool_call("t", circular):
            pass
    spans = exported(client, server)
    messages = json.loads(attrs(spans["chat gpt-4o"].attributes)[semconv.GEN_AI_INPUT_MESSAGES])
    assert messages[0]["content"].startswith("<object object")
    assert (
        attrs(spans["execute_tool t"].attributes)[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] == "[[...]]"
    )


def test_unsampled_run_exports_nothing_but_has_a_trace_id(
    make_client: Callable[..., Client], server: FakeServer
) -> None:
    client = make_client(sample_rate=0.0)
    with client.run("support") as run, run.llm_call("gpt-4o", input_messages=[{"x": 1}]) as call:
        call.usage(input_tokens=1)
    assert not run.sampled
    assert len(run.trace_id) == 32
    assert run.trace_id != "0" * 32
    assert client.flush(timeout_s=2.0)
    assert server.requests == []
    assert client.stats.spans_exported == 0

"""Normalization: each attribute convention lands on the right span kind and run facts."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.otlp_factory import agent_run, new_span_id, new_trace_id, request, span
from tuneloop import semconv as sc
from tuneloop.settings import DEFAULT_PRICES
from tuneloop.telemetry.model import NormalizedSpan
from tuneloop.telemetry.normalize import NormalizedBatch, Normalizer, is_retryable
from tuneloop.telemetry.pricing import PriceTable
from tuneloop.telemetry.rows import PreparedSpans, prepare

GPT_4O = DEFAULT_PRICES["gpt-4o"]
GPT_4O_MINI = DEFAULT_PRICES["gpt-4o-mini"]


def run_counters(prepared: PreparedSpans) -> list[float]:
    """What the spans add to their run's fact row, summed as the writer sums them."""
    return [sum(column) for column in zip(*prepared.counters, strict=True)]


def normalize(*spans: Span, max_chars: int = 16_384, max_attrs: int = 512) -> NormalizedBatch:
    normalizer = Normalizer(
        prices=PriceTable(DEFAULT_PRICES),
        max_attribute_chars=max_chars,
        max_attributes_per_span=max_attrs,
    )
    return normalizer.normalize(request(*spans, service="svc"))


def one(
    attrs: dict[str, Any], *, root: bool = True, max_chars: int = 16_384, **kwargs: Any
) -> NormalizedSpan:
    """Normalize a single span (a root, or a child of some other span)."""
    parent = None if root else new_span_id()
    batch = normalize(
        span("s", trace_id=new_trace_id(), parent=parent, attrs=attrs, **kwargs),
        max_chars=max_chars,
    )
    assert batch.rejected.count == 0
    (normalized,) = batch.spans
    return normalized


def cost(price: Any, tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * price.input_per_1k + tokens_out * price.output_per_1k) / 1000


# -- OpenTelemetry GenAI, current names --------------------------------------------------


def test_genai_agent_run_gives_root_facts_llm_usage_and_tool_facts() -> None:
    run = agent_run(
        "support-bot",
        version="v7",
        llm=[("gpt-4o", 1000, 500)],
        tools=["search", ("lookup", "503")],
        attrs={sc.GEN_AI_CONVERSATION_ID: "conv-1"},
    )
    batch = normalize(*run.spans)
    root, chat, search, lookup = batch.spans

    assert root.kind == "agent"
    assert root.root is not None
    assert root.root.agent == "support-bot"
    assert root.root.config_version == "v7"
    assert root.root.session_id == "conv-1"
    assert root.root.outcome == "success"
    assert root.resource == {sc.SERVICE_NAME: "svc"}
    assert chat.kind == "llm"
    assert chat.root is None
    assert chat.llm is not None
    assert (chat.llm.model, chat.llm.input_tokens, chat.llm.output_tokens) == ("gpt-4o", 1000, 500)
    assert chat.llm.cost_usd == pytest.approx(cost(GPT_4O, 1000, 500))
    assert search.tool is not None
    assert (search.tool.tool, search.tool.status, search.tool.retryable) == (
        "search",
        "success",
        False,
    )
    assert lookup.tool is not None
    assert (lookup.tool.tool, lookup.tool.status, lookup.tool.error_type) == (
        "lookup",
        "error",
        "503",
    )
    assert lookup.tool.retryable is True

    prepared = prepare("p", batch.spans)
    llm_calls, tokens_in, tokens_out, _cost, tools, errors, retryable = run_counters(prepared)
    assert (llm_calls, tokens_in, tokens_out) == (1, 1000, 500)
    assert (tools, errors, retryable) == (2, 1, 1)
    (root_row,) = [root for root in prepared.roots if root is not None]
    assert root_row["root_span_id"] == run.root.span_id.hex()


def test_response_model_is_preferred_over_request_model_for_pricing() -> None:
    chat = one(
        {
            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 1000,
        },
        root=False,
    )
    assert chat.llm is not None
    assert chat.llm.model == "gpt-4o-mini-2024-07-18"
    assert chat.llm.cost_usd == pytest.approx(cost(GPT_4O_MINI, 1000, 1000))


# -- deprecated GenAI names -------------------------------------------------------------


def test_deprecated_genai_span_without_operation_name_is_a_priced_llm_call() -> None:
    # What instrumentations following semconv 1.26 emit: no gen_ai.operation.name.
    chat = one(
        {
            sc.GEN_AI_SYSTEM: "openai",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_USAGE_PROMPT_TOKENS: 300,
            sc.GEN_AI_USAGE_COMPLETION_TOKENS: 20,
        },
        root=False,
    )
    assert chat.kind == "llm"
    assert chat.llm is not None
    assert (chat.llm.input_tokens, chat.llm.output_tokens) == (300, 20)
    assert chat.llm.cost_usd == pytest.approx(cost(GPT_4O, 300, 20))


def test_current_token_names_win_over_deprecated_ones() -> None:
    chat = one(
        {
            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
            sc.GEN_AI_USAGE_INPUT_TOKENS: 10,
            sc.GEN_AI_USAGE_PROMPT_TOKENS: 999,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
            sc.GEN_AI_USAGE_COMPLETION_TOKENS: 999,
        },
        root=False,
    )
    assert chat.llm is not None
    assert (chat.llm.input_tokens, chat.llm.output_tokens) == (10, 5)


def test_gen_ai_system_does_not_override_an_explicit_operation() -> None:
    tool = one(
        {
            sc.GEN_AI_SYSTEM: "openai",
            sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
            sc.GEN_AI_TOOL_NAME: "search",
        },
        root=False,
    )
    assert tool.kind == "tool"
    assert tool.llm is None


# -- OpenInference ----------------------------------------------------------------------


def test_openinference_agent_llm_and_tool_spans() -> None:
    trace_id = new_trace_id()
    agent = span(
        "agent",
        trace_id=trace_id,
        attrs={
            sc.OI_SPAN_KIND: sc.OI_KIND_AGENT,
            sc.OI_AGENT_NAME: "oi-agent",
            sc.OI_SESSION_ID: "session-9",
            sc.OI_USER_ID: "user-3",
        },
    )
    llm = span(
        "ChatCompletion",
        trace_id=trace_id,
        parent=agent.span_id,
        attrs={
            sc.OI_SPAN_KIND: "llm",  # case-insensitive
            sc.OI_LLM_MODEL_NAME: "openai/gpt-4o-2024-08-06",
            sc.OI_LLM_TOKEN_COUNT_PROMPT: 2000,
            sc.OI_LLM_TOKEN_COUNT_COMPLETION: 100,
        },
    )
    tool = span(
        "tool call",
        trace_id=trace_id,
        parent=agent.span_id,
        attrs={sc.OI_SPAN_KIND: sc.OI_KIND_TOOL, sc.OI_TOOL_NAME: "weather"},
        error="TimeoutError",
    )
    root, chat, weather = normalize(agent, llm, tool).spans

    assert root.kind == "agent"
    assert root.root is not None
    assert (root.root.agent, root.root.session_id, root.root.unit_id) == (
        "oi-agent",
        "session-9",
        "user-3",
    )
    assert chat.kind == "llm"
    assert chat.llm is not None
    assert (chat.llm.input_tokens, chat.llm.output_tokens) == (2000, 100)
    assert chat.llm.cost_usd == pytest.approx(cost(GPT_4O, 2000, 100))
    assert weather.kind == "tool"
    assert weather.tool is not None
    assert (weather.tool.tool, weather.tool.status, weather.tool.retryable) == (
        "weather",
        "error",
        True,
    )


@pytest.mark.parametrize(
    ("oi_kind", "expected"),
    [
        (sc.OI_KIND_GUARDRAIL, "guardrail"),
        (sc.OI_KIND_RETRIEVER, "retrieval"),
        (sc.OI_KIND_EMBEDDING, "embedding"),
        (sc.OI_KIND_CHAIN, "other"),
    ],
)
def test_other_openinference_kinds(oi_kind: str, expected: str) -> None:
    assert one({sc.OI_SPAN_KIND: oi_kind}, root=False).kind == expected


# -- feature flags and tuneloop.* -----------------------------------------------------------


def test_feature_flags_give_experiment_variant_and_version_fallback() -> None:
    root = one(
        {
            sc.FEATURE_FLAG_KEY: "prompt-test",
            sc.FEATURE_FLAG_RESULT_VARIANT: "treatment",
            sc.FEATURE_FLAG_VERSION: "flag-v3",
        }
    ).root
    assert root is not None
    assert (root.experiment, root.variant, root.config_version) == (
        "prompt-test",
        "treatment",
        "flag-v3",
    )


def test_tuneloop_version_wins_over_feature_flag_version() -> None:
    root = one({sc.TL_CONFIG_VERSION: "cfg-2", sc.FEATURE_FLAG_VERSION: "flag-v3"}).root
    assert root is not None
    assert root.config_version == "cfg-2"


def test_tuneloop_attributes_set_kind_outcome_unit_and_tool_details() -> None:
    root = one(
        {
            sc.TL_SPAN_KIND: "agent",
            sc.TL_RUN_OUTCOME: "escalated",
            sc.TL_UNIT_ID: "customer-42",
            sc.TL_SESSION_ID: "s-1",
            sc.OI_USER_ID: "ignored",
        }
    )
    assert root.kind == "agent"
    assert root.root is not None
    assert (root.root.outcome, root.root.unit_id, root.root.session_id) == (
        "escalated",
        "customer-42",
        "s-1",
    )

    partial = one(
        {
            sc.TL_SPAN_KIND: "tool",
            sc.GEN_AI_TOOL_NAME: "crm",
            sc.TL_TOOL_STATUS: sc.TOOL_STATUS_PARTIAL,
            sc.TL_TOOL_RETRIES: 2,
        },
        root=False,
    )
    assert partial.tool is not None
    assert (partial.tool.status, partial.tool.retries, partial.tool.error_type) == (
        "partial",
        2,
        None,
    )


def test_explicit_retryable_flag_wins_over_the_guess() -> None:
    tool = one(
        {
            sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL,
            sc.ERROR_TYPE: "ValueError",
            sc.TL_TOOL_RETRYABLE: True,
        },
        root=False,
        error="bad",
    )
    assert tool.tool is not None
    assert tool.tool.retryable is True


def test_tool_name_falls_back_to_the_span_name() -> None:
    trace_id = new_trace_id()
    tool = span(
        "execute_tool fetch_invoice",
        trace_id=trace_id,
        parent=new_span_id(),
        attrs={sc.GEN_AI_OPERATION_NAME: sc.OP_EXECUTE_TOOL},
    )
    (normalized,) = normalize(tool).spans
    assert normalized.tool is not None
    assert normalized.tool.tool == "fetch_invoice"


def test_root_agent_name_falls_back_to_service_then_span_name() -> None:
    root = one({sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT}).root
    assert root is not None
    assert root.agent == "svc"
    bare = Normalizer(prices=PriceTable({})).normalize(
        request(span("handle", trace_id=new_trace_id()), service=None)
    )
    assert bare.spans[0].root is not None
    assert bare.spans[0].root.agent == "handle"


def test_agent_span_with_remote_parent_is_the_root_of_its_run() -> None:
    agent = {sc.GEN_AI_OPERATION_NAME: sc.OP_INVOKE_AGENT}
    remote = span("invoke_agent", trace_id=new_trace_id(), parent=new_span_id(), attrs=agent)
    remote.flags = 0x100 | 0x200  # "is remote" is known, and true
    local = span("invoke_agent", trace_id=new_trace_id(), parent=new_span_id(), attrs=agent)
    local.flags = 0x100  # known, and false: a sub-agent inside the same run
    remote_n, local_n = normalize(remote, local).spans
    assert remote_n.root is not None
    assert local_n.root is None


# -- outcome and error type ------------------------------------------------------------------


def test_error_status_makes_a_failed_run_with_the_status_message_as_error_type() -> None:
    root = one({}, error="upstream exploded").root
    assert root is not None
    assert (root.status, root.outcome, root.error_type) == ("error", "failure", "upstream exploded")


def test_error_type_prefers_attribute_then_exception_event() -> None:
    from_attr = one({sc.ERROR_TYPE: "RateLimitError"}, error="msg").root
    from_event = one(
        {}, error="msg", events=[(sc.EXCEPTION_EVENT, {sc.EXCEPTION_TYPE: "KeyError"})]
    ).root
    assert from_attr is not None
    assert from_event is not None
    assert from_attr.error_type == "RateLimitError"
    assert from_event.error_type == "KeyError"


@pytest.mark.parametrize(
    ("error_type", "retryable"),
    [
        ("503", True),
        ("429", True),
        ("HTTP 502 Bad Gateway", True),
        ("TimeoutError", True),
        ("httpx.ReadTimeout", True),
        ("openai.RateLimitError", True),
        ("ServiceUnavailable", True),
        ("ConnectionResetError", True),
        ("400", False),
        ("404 Not Found", False),
        ("ValueError", False),
        ("KeyError", False),
        ("PermissionError", False),
        ("", False),
        (None, False),
    ],
)
def test_is_retryable(error_type: str | None, retryable: bool) -> None:
    assert is_retryable(error_type) is retryable


# -- cost ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4o", GPT_4O),
        ("gpt-4o-2024-08-06", GPT_4O),
        ("gpt-4o-mini-2024-07-18", GPT_4O_MINI),
        ("openai/gpt-4o-mini", GPT_4O_MINI),
        ("GPT-4o", GPT_4O),
    ],
)
def test_price_table_matches_the_longest_known_prefix(model: str, price: Any) -> None:
    assert PriceTable(DEFAULT_PRICES).cost(model, 1000, 1000) == pytest.approx(
        cost(price, 1000, 1000)
    )


def test_unknown_or_missing_model_costs_nothing() -> None:
    table = PriceTable(DEFAULT_PRICES)
    assert table.cost("my-own-llama", 1000, 1000) == 0.0
    assert table.cost(None, 1000, 1000) == 0.0


@pytest.mark.parametrize("explicit", [0.5, 0.0, "0.25"])
def test_explicit_cost_wins_over_the_price_table(explicit: object) -> None:
    chat = one(
        {
            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            sc.TL_COST_USD: explicit,
        },
        root=False,
    )
    assert chat.llm is not None
    assert chat.llm.cost_usd == float(explicit)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), -1.0, "lots"])
def test_unusable_explicit_cost_falls_back_to_the_price_table(bad: object) -> None:
    chat = one(
        {
            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            sc.TL_COST_USD: bad,
        },
        root=False,
    )
    assert chat.llm is not None
    assert chat.llm.cost_usd == pytest.approx(cost(GPT_4O, 1000, 0))


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), 1e300, 2**62, -5, "many", True])
def test_absurd_token_counts_are_ignored_not_stored(bad: object) -> None:
    chat = one(
        {
            sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT,
            sc.GEN_AI_USAGE_INPUT_TOKENS: bad,
            sc.GEN_AI_USAGE_PROMPT_TOKENS: 7,
        },
        root=False,
    )
    assert chat.llm is not None
    assert chat.llm.input_tokens == 7


def test_root_reports_its_own_usage_and_deltas_count_only_llm_spans() -> None:
    run = agent_run(
        llm=[("gpt-4o", 100, 10)],
        attrs={sc.GEN_AI_USAGE_INPUT_TOKENS: 1000, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100},
    )
    batch = normalize(*run.spans)
    root = batch.spans[0].root
    assert root is not None
    assert (root.input_tokens, root.output_tokens) == (1000, 100)
    llm_calls, tokens_in, tokens_out, *_ = run_counters(prepare("p", batch.spans))
    # The agent-level total is kept apart: the query layer uses it only without LLM spans.
    assert (llm_calls, tokens_in, tokens_out) == (1, 100, 10)


# -- limits and hostile input ------------------------------------------------------------


def test_long_values_and_keys_are_truncated_with_a_marker() -> None:
    long_key = "k" * 300
    normalized = one(
        {"big": "x" * 100, "list": ["y" * 100], long_key: 1, "fits": "z" * 64},
        max_chars=64,
    )
    attrs = normalized.attributes
    assert attrs["big"] == "x" * 64 + sc.TL_TRUNCATED_MARKER
    assert attrs["list"] == ["y" * 64 + sc.TL_TRUNCATED_MARKER]
    assert attrs["fits"] == "z" * 64
    assert attrs["k" * 256 + sc.TL_TRUNCATED_MARKER] == 1


def test_attributes_beyond_the_cap_are_dropped_and_counted() -> None:
    attrs = [(f"a{i}", i) for i in range(10_000)]
    trace_id = new_trace_id()
    big = span("big", trace_id=trace_id, attrs=attrs)
    big.dropped_attributes_count = 3  # already dropped by the SDK
    (normalized,) = normalize(big, max_attrs=100).spans
    assert len(normalized.attributes) == 100
    assert normalized.attributes["a99"] == 99
    assert "a100" not in normalized.attributes
    assert normalized.dropped_attributes == 10_000 - 100 + 3


def test_nested_values_are_kept_to_a_bounded_depth() -> None:
    value: Any = "leaf"
    for _ in range(20):
        value = {"k": value}
    attrs = one({"deep": value}).attributes
    depth = 0
    node = attrs["deep"]
    while isinstance(node, dict):
        node = node["k"]
        depth += 1
    assert node == sc.TL_TRUNCATED_MARKER
    assert depth < 20


def test_nul_characters_are_replaced_so_every_engine_can_store_them() -> None:
    trace_id = new_trace_id()
    nul = span(
        "na\x00me",
        trace_id=trace_id,
        attrs={"k\x00": "v\x00", sc.GEN_AI_AGENT_NAME: "bot\x00"},
        error="bad\x00",
    )
    (normalized,) = normalize(nul).spans
    assert normalized.name == "na\ufffdme"
    assert normalized.attributes["k\ufffd"] == "v\ufffd"
    assert normalized.status_message == "bad\ufffd"
    assert normalized.root is not None
    assert normalized.root.agent == "bot\ufffd"


def test_root_identity_is_cut_to_the_width_its_column_holds() -> None:
    root = one({sc.TL_CONFIG_VERSION: "v" * 500, sc.FEATURE_FLAG_RESULT_VARIANT: "b" * 500}).root
    assert root is not None
    assert root.config_version == "v" * 128
    assert root.variant == "b" * 256


def test_invalid_spans_are_rejected_with_reasons_and_the_rest_kept() -> None:
    trace_id = new_trace_id()
    good = span("good", trace_id=trace_id)
    no_trace = span("no-trace", trace_id=b"")
    zero_trace = span("zero-trace", trace_id=bytes(16))
    short_span = span("short-span", trace_id=trace_id, span_id=b"\x01\x02")
    bad_parent = span("bad-parent", trace_id=trace_id, parent=b"\x01")
    no_start = span("no-start", trace_id=trace_id, start_ns=0)
    own_parent = span("own-parent", trace_id=trace_id)
    own_parent.parent_span_id = own_parent.span_id
    far_future = span("far-future", trace_id=trace_id, start_ns=2**63)

    batch = normalize(
        good, no_trace, zero_trace, short_span, bad_parent, no_start, own_parent, far_future
    )
    assert [s.name for s in batch.spans] == ["good"]
    assert batch.rejected.count == 7
    message = batch.rejected.message()
    assert "'no-trace' has no valid trace id" in message
    assert "'short-span' has no valid span id" in message
    assert "(and 2 more)" in message


def test_span_end_before_start_has_zero_duration() -> None:
    backwards = span("b", trace_id=new_trace_id(), start_ns=2_000_000_000)
    backwards.end_time_unix_nano = 1_000_000_000
    (normalized,) = normalize(backwards).spans
    assert normalized.duration_ms == 0
    assert normalized.root is not None
    assert normalized.root.duration_ms == 0


def test_span_kind_is_not_taken_from_the_otlp_span_kind_field() -> None:
    client = span("GET /", trace_id=new_trace_id(), parent=new_span_id())
    client.kind = Span.SPAN_KIND_CLIENT
    (normalized,) = normalize(client).spans
    assert normalized.kind == "other"
    assert normalized.llm is None
    assert normalized.tool is None

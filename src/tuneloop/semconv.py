"""Telemetry attribute names: the only module that spells them.

tuneloop reads OpenTelemetry GenAI semantic conventions first, the deprecated GenAI
names and OpenInference attributes as fallbacks, OpenTelemetry feature-flag attributes
for experiment variants, and defines ``tuneloop.*`` for what OpenTelemetry does not.
"""

from typing import Final

# --- OpenTelemetry GenAI (current) ---------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"

# Values of gen_ai.operation.name
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_CREATE_AGENT: Final = "create_agent"
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_EMBEDDINGS: Final = "embeddings"
OP_EXECUTE_TOOL: Final = "execute_tool"

# --- OpenTelemetry GenAI (deprecated names still emitted by many instrumentations) ----
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"

# --- OpenInference --------------------------------------------------------------------
OI_SPAN_KIND: Final = "openinference.span.kind"
OI_LLM_MODEL_NAME: Final = "llm.model_name"
OI_LLM_PROVIDER: Final = "llm.provider"
OI_LLM_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
OI_LLM_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
OI_TOOL_NAME: Final = "tool.name"
OI_SESSION_ID: Final = "session.id"
OI_USER_ID: Final = "user.id"
OI_AGENT_NAME: Final = "agent.name"
OI_INPUT_VALUE: Final = "input.value"
OI_INPUT_MIME_TYPE: Final = "input.mime_type"
OI_OUTPUT_VALUE: Final = "output.value"
OI_OUTPUT_MIME_TYPE: Final = "output.mime_type"
# Values of openinference.span.kind
OI_KIND_AGENT: Final = "AGENT"
OI_KIND_CHAIN: Final = "CHAIN"
OI_KIND_LLM: Final = "LLM"
OI_KIND_TOOL: Final = "TOOL"
OI_KIND_GUARDRAIL: Final = "GUARDRAIL"
OI_KIND_RETRIEVER: Final = "RETRIEVER"
OI_KIND_EMBEDDING: Final = "EMBEDDING"

# --- OpenTelemetry feature flags (experiment variants) ---------------------------------
FEATURE_FLAG_KEY: Final = "feature_flag.key"
FEATURE_FLAG_RESULT_VARIANT: Final = "feature_flag.result.variant"
FEATURE_FLAG_VERSION: Final = "feature_flag.version"
FEATURE_FLAG_RESULT_REASON: Final = "feature_flag.result.reason"
FEATURE_FLAG_EVALUATION_EVENT: Final = "feature_flag.evaluation"

# --- OpenTelemetry general -----------------------------------------------------------
SERVICE_NAME: Final = "service.name"
EXCEPTION_EVENT: Final = "exception"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"

# --- tuneloop ------------------------------------------------------------------------
TL_CONFIG_VERSION: Final = "tuneloop.config.version"
TL_UNIT_ID: Final = "tuneloop.unit.id"
TL_SESSION_ID: Final = "tuneloop.session.id"
TL_RUN_OUTCOME: Final = "tuneloop.run.outcome"
TL_SPAN_KIND: Final = "tuneloop.span.kind"
TL_TOOL_STATUS: Final = "tuneloop.tool.status"
TL_TOOL_RETRIES: Final = "tuneloop.tool.retries"
TL_TOOL_RETRYABLE: Final = "tuneloop.tool.retryable"
TL_COST_USD: Final = "tuneloop.cost.usd"
TL_GUARDRAIL_NAME: Final = "tuneloop.guardrail.name"
TL_GUARDRAIL_VERDICT: Final = "tuneloop.guardrail.verdict"
TL_CACHE_HIT: Final = "tuneloop.cache.hit"
# Runtime building blocks (tuneloop.runtime): tool resilience, guardrail hops, caches.
TL_TOOL_SIDE_EFFECT: Final = "tuneloop.tool.side_effect"
TL_TOOL_FALLBACK: Final = "tuneloop.tool.fallback"
TL_TOOL_CIRCUIT_STATE: Final = "tuneloop.tool.circuit_state"
TL_TOOL_IDEMPOTENT_REPLAY: Final = "tuneloop.tool.idempotent_replay"
TL_TOOL_ATTEMPT_FAILED_EVENT: Final = "tuneloop.tool.attempt_failed"
TL_TOOL_ATTEMPT: Final = "tuneloop.tool.attempt"
TL_TOOL_ERROR_MESSAGE: Final = "tuneloop.tool.error_message"
TL_GUARDRAIL_HOP: Final = "tuneloop.guardrail.hop"
TL_GUARDRAIL_REASON: Final = "tuneloop.guardrail.reason"
TL_CACHE_KIND: Final = "tuneloop.cache.kind"
# The agent runtime (tuneloop.runtime.agent): run state machine, review, budgets, routing.
TL_RUN_ID: Final = "tuneloop.run.id"
TL_RUN_STATE: Final = "tuneloop.run.state"
TL_RUN_STEPS: Final = "tuneloop.run.steps"
TL_RUN_SEGMENT: Final = "tuneloop.run.segment"
TL_RUN_STOP_REASON: Final = "tuneloop.run.stop_reason"
TL_RUN_CONFIDENCE: Final = "tuneloop.run.confidence"
TL_RUN_TRANSITION_EVENT: Final = "tuneloop.run.transition"
TL_RUN_STATE_FROM: Final = "tuneloop.run.state.from"
TL_RUN_STATE_TO: Final = "tuneloop.run.state.to"
TL_RUN_TRANSITION_REASON: Final = "tuneloop.run.transition.reason"
TL_RUN_HANDOFF_EVENT: Final = "tuneloop.run.handoff"
TL_RUN_HANDOFF_FROM: Final = "tuneloop.run.handoff.from"
TL_REVIEW_REQUESTED_EVENT: Final = "tuneloop.review.requested"
TL_REVIEW_ID: Final = "tuneloop.review.id"
TL_REVIEW_KIND: Final = "tuneloop.review.kind"
TL_REVIEW_SOURCE: Final = "tuneloop.review.source"
TL_REVIEW_REASON: Final = "tuneloop.review.reason"
TL_REVIEW_DECISION: Final = "tuneloop.review.decision"
TL_BUDGET_EXHAUSTED_EVENT: Final = "tuneloop.budget.exhausted"
TL_BUDGET_SCOPE: Final = "tuneloop.budget.scope"
TL_BUDGET_KIND: Final = "tuneloop.budget.kind"
TL_BUDGET_LIMIT: Final = "tuneloop.budget.limit"
TL_BUDGET_USED: Final = "tuneloop.budget.used"
TL_BUDGET_PHASE: Final = "tuneloop.budget.phase"
TL_ROUTING_TIER: Final = "tuneloop.routing.tier"
TL_ROUTING_REASON: Final = "tuneloop.routing.reason"
TL_ROUTING_INTENT: Final = "tuneloop.routing.intent"
TL_ROUTING_FAILOVER_EVENT: Final = "tuneloop.routing.failover"
# Offline evals (tuneloop.evals): a run span per case and trial identifies what it tested.
TL_EVAL_RUN_ID: Final = "tuneloop.eval.run_id"
TL_EVAL_SUITE: Final = "tuneloop.eval.suite"
TL_EVAL_STAGE: Final = "tuneloop.eval.stage"
TL_EVAL_CASE_ID: Final = "tuneloop.eval.case_id"
TL_EVAL_CATEGORY: Final = "tuneloop.eval.category"
TL_EVAL_TRIAL: Final = "tuneloop.eval.trial"
TL_EVAL_PASSED: Final = "tuneloop.eval.passed"
TL_TRUNCATED_MARKER: Final = "…[truncated by tuneloop]"

# Values of tuneloop.span.kind (set where gen_ai.operation.name has no value for it)
SPAN_KIND_GUARDRAIL: Final = "guardrail"

# Values of tuneloop.guardrail.verdict
GUARDRAIL_VERDICT_ALLOW: Final = "allow"
GUARDRAIL_VERDICT_REDACT: Final = "redact"
GUARDRAIL_VERDICT_BLOCK: Final = "block"
GUARDRAIL_VERDICT_REQUIRE_APPROVAL: Final = "require_approval"

# Values of tuneloop.cache.kind
CACHE_KIND_RESPONSE: Final = "response"
CACHE_KIND_TOOL: Final = "tool"

# Values of tuneloop.tool.status
TOOL_STATUS_SUCCESS: Final = "success"
TOOL_STATUS_PARTIAL: Final = "partial"
TOOL_STATUS_ERROR: Final = "error"

# --- Recommendations (tuneloop.analysis.recommend) ------------------------------------
# A routing / classification decision on a span (a router's chat span, say): which step
# decided and what. A span of the same run carrying the step and ``corrected=true`` says
# the decision was wrong (a re-route, an escalation, a human or eval label), with the
# right value when known; it may be the decision span itself or a later one (the run's).
TL_DECISION_STEP: Final = "tuneloop.decision.step"
TL_DECISION_VALUE: Final = "tuneloop.decision.value"
TL_DECISION_CORRECTED: Final = "tuneloop.decision.corrected"
TL_DECISION_CORRECTED_VALUE: Final = "tuneloop.decision.corrected_value"
# The config prompt (``prompts.<name>``) a model call was made with.
TL_PROMPT_NAME: Final = "tuneloop.prompt.name"
# Resource attribute: the SDK's head-sampling rate, so counts can be scaled back up.
TL_SAMPLE_RATE: Final = "tuneloop.sample_rate"
# On a span of a run whose guardrail blocked: a human let the run through anyway.
TL_GUARDRAIL_OVERRIDDEN: Final = "tuneloop.guardrail.overridden"

# Feedback names the analyzers read (``Client.feedback(trace_id, name, value)``).
FEEDBACK_THUMBS: Final = "thumbs"  # 1 up, 0 down
FEEDBACK_INCIDENT: Final = "incident"  # value > 0: the run caused a downstream incident
FEEDBACK_GUARDRAIL_OVERRIDE: Final = "guardrail_override"  # value > 0: a block was overridden
# ``decision.<step>``: an eval or human label of that step's decision, 1 right, 0 wrong.
FEEDBACK_DECISION_PREFIX: Final = "decision."

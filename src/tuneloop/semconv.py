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
TL_TRUNCATED_MARKER: Final = "…[truncated by tuneloop]"

# Values of tuneloop.span.kind (set where gen_ai.operation.name has no value for it)
SPAN_KIND_GUARDRAIL: Final = "guardrail"

# Values of tuneloop.tool.status
TOOL_STATUS_SUCCESS: Final = "success"
TOOL_STATUS_PARTIAL: Final = "partial"
TOOL_STATUS_ERROR: Final = "error"

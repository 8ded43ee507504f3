"""The one place that knows the attribute names of every LLM telemetry convention.

A span from OpenTelemetry GenAI (current and deprecated names), OpenLLMetry/Traceloop,
OpenInference, OpenLIT, Langfuse's OTel attributes or the llmlens SDK becomes the same
`LlmFacts`. The mapping is data (`FIELD_SOURCES`): for each normalised field, the attribute
keys to try in order, first present wins. Conventions whose facts need more than a key
lookup (JSON blobs, indexed message lists) have a small function each below the table.

Attribute values are plain Python values (str, int, float, bool, list, dict) as an OTel SDK
holds them or as the OTLP decoder produces them; numbers that arrive as strings are accepted.

Where app, department, user and session come from (span attributes first, then resource):
- app:        llmlens.app, gen_ai.application_name, langfuse.trace.metadata.app, service.namespace
- department: llmlens.department, department, langfuse.trace.metadata.department
- user:       user.id, enduser.id, gen_ai.user.id, gen_ai.request.user, langfuse.user.id, llm.user, gen_ai.user
- session:    session.id, gen_ai.conversation.id, langfuse.session.id, traceloop.association.properties.session_id
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

# --- Attribute names the llmlens SDK writes (GenAI semconv v1.41 where one exists) ----------
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"  # seconds
REQUEST_STREAM = "gen_ai.request.stream"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
CONVERSATION_ID = "gen_ai.conversation.id"
RESPONSE_ID = "gen_ai.response.id"
ERROR_TYPE = "error.type"
EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
EVALUATION_SCORE = "gen_ai.evaluation.score.value"
EVALUATION_LABEL = "gen_ai.evaluation.score.label"
EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"
LLMLENS_APP = "llmlens.app"
LLMLENS_DEPARTMENT = "llmlens.department"
LLMLENS_COST = "llmlens.cost_usd"
LLMLENS_SPAN_KIND = "llmlens.span.kind"
SCORE_TARGET_TRACE = "llmlens.score.trace_id"
SCORE_TARGET_SPAN = "llmlens.score.span_id"
USER_ID = "user.id"
SESSION_ID = "session.id"

# Operations that are a call to a model (what "requests" counts in LLM stats).
MODEL_OPERATIONS = ("chat", "text_completion", "generate_content", "embeddings", "responses", "rerank")


@dataclass(slots=True)
class LlmFacts:
    """Normalised facts of one LLM operation, whatever convention the span came in."""

    convention: str = ""
    operation: str = ""
    provider: str = ""
    request_model: str = ""
    response_model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None  # as reported by the instrumentor (OpenLIT, OpenInference, Langfuse)
    streaming: bool | None = None
    ttft_ms: float | None = None
    finish_reasons: list[str] = field(default_factory=list)
    tool_names: list[str] = field(default_factory=list)  # tools a model call asked for, or a tool step ran
    tokens_estimated: bool = False  # counted by the instrumentor, not read from the provider's usage
    provider_raw: str = ""  # the provider or model as the span spelled it, when normalising changed it
    request_model_raw: str = ""
    error_type: str = ""
    app: str = ""
    department: str = ""
    user_id: str = ""
    session_id: str = ""
    input: str = ""
    output: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- The mapping table: normalised field -> attribute keys, first present wins ------------
FIELD_SOURCES: dict[str, tuple[str, ...]] = {
    "provider": (
        PROVIDER, "gen_ai.system", "llm.provider", "llm.system", "langfuse.observation.model.provider",
        "ai.model.provider",
    ),
    "request_model": (
        REQUEST_MODEL, "llm.request.model_name", "langfuse.observation.model.name", "llm.model_name",
        "embedding.model_name", "ai.model.id",
    ),
    "response_model": (
        RESPONSE_MODEL, "llm.response.model_name", "llm.model_name", "embedding.model_name",
        "langfuse.observation.model.name", "ai.response.model",
    ),
    "input_tokens": (
        INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt", "llm.usage.prompt_tokens",
        "ai.usage.inputTokens", "ai.usage.promptTokens", "ai.usage.tokens",
    ),
    "output_tokens": (
        OUTPUT_TOKENS, "gen_ai.usage.completion_tokens", "llm.token_count.completion",
        "llm.usage.completion_tokens", "ai.usage.outputTokens", "ai.usage.completionTokens",
    ),
    "cached_input_tokens": (
        CACHE_READ_TOKENS, "gen_ai.usage.cache_read_input_tokens", "llm.token_count.prompt_details.cache_read",
        "gen_ai.usage.prompt_tokens_details.cached_tokens", "ai.usage.cachedInputTokens",
    ),
    "cache_creation_input_tokens": (
        CACHE_CREATION_TOKENS, "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write", "gen_ai.usage.prompt_tokens_details.cache_creation_tokens",
    ),
    "reasoning_tokens": (
        REASONING_TOKENS, "gen_ai.usage.reasoning_tokens", "llm.token_count.completion_details.reasoning",
        "gen_ai.usage.completion_tokens_details.reasoning_tokens", "llm.usage.reasoning_tokens",
        "ai.usage.reasoningTokens",
    ),
    "cost_usd": (LLMLENS_COST, "gen_ai.usage.cost", "llm.cost.total"),
    "streaming": (
        REQUEST_STREAM, "gen_ai.is_streaming", "llm.is_streaming", "gen_ai.request.is_stream",
    ),
    "finish_reasons": (FINISH_REASONS, "llm.finish_reason", "llm.response.finish_reason", "ai.response.finishReason"),
    "error_type": (ERROR_TYPE,),
    "app": (LLMLENS_APP, "gen_ai.application_name", "langfuse.trace.metadata.app", "service.namespace"),
    "department": (LLMLENS_DEPARTMENT, "department", "langfuse.trace.metadata.department"),
    "user_id": (
        USER_ID, "enduser.id", "gen_ai.user.id", "gen_ai.request.user", "langfuse.user.id", "llm.user", "gen_ai.user",
    ),
    "session_id": (
        SESSION_ID, CONVERSATION_ID, "langfuse.session.id", "traceloop.association.properties.session_id",
    ),
}

# Fields that may also come from resource attributes (set once per service by init()).
RESOURCE_FIELDS = ("app", "department", "user_id", "session_id")

# The table inverted: attribute key -> (field, rank) pairs. A span carries ~30 attributes and the
# table names ~70 keys; intersecting the two once is cheaper than looking every key up (ingest's
# hot path). Lowest rank wins, which is "first present key wins" read the other way round.
def _invert(sources: Mapping[str, Sequence[str]]) -> dict[str, list[tuple[str, int]]]:
    ranks: dict[str, list[tuple[str, int]]] = {}
    for name, keys in sources.items():
        for rank, key in enumerate(keys):
            ranks.setdefault(key, []).append((name, rank))
    return ranks


_SOURCE_RANKS = _invert(FIELD_SOURCES)
_SOURCE_KEYS = frozenset(_SOURCE_RANKS)

# Keys whose presence marks a span as an LLM operation, and the convention that uses them.
MARKERS: tuple[tuple[str, str], ...] = (
    ("ai.operationId", "vercel_ai"),
    ("mcp.method.name", "mcp"),
    ("langfuse.observation.type", "langfuse"),
    ("openinference.span.kind", "openinference"),
    ("llm.request.type", "openllmetry"),
    ("traceloop.span.kind", "openllmetry"),
    (LLMLENS_SPAN_KIND, "llmlens"),
    (OPERATION, "otel"),
    (PROVIDER, "otel"),
    ("gen_ai.system", "otel"),
    (REQUEST_MODEL, "otel"),
)

# Convention-specific operation names -> GenAI operation names.
OPENINFERENCE_KINDS = {
    "LLM": "chat", "EMBEDDING": "embeddings", "RETRIEVER": "retrieval", "TOOL": "execute_tool",
    "AGENT": "invoke_agent", "CHAIN": "chain", "RERANKER": "rerank", "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluation", "PROMPT": "prompt",
}
TRACELOOP_REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings",
                           "rerank": "rerank"}
TRACELOOP_SPAN_KINDS = {"workflow": "invoke_workflow", "task": "task", "agent": "invoke_agent",
                        "tool": "execute_tool"}
LANGFUSE_TYPES = {"generation": "chat", "embedding": "embeddings", "retriever": "retrieval", "tool": "execute_tool",
                  "agent": "invoke_agent", "chain": "chain", "evaluator": "evaluation", "guardrail": "guardrail",
                  "span": "span", "event": "event"}
OPERATION_ALIASES = {"completion": "text_completion", "embedding": "embeddings", "tool": "execute_tool",
                     "agent": "invoke_agent", "workflow": "invoke_workflow", "retriever": "retrieval"}
# Provider spellings of older releases and other conventions -> GenAI provider names.
PROVIDER_ALIASES = {
    "az.ai.inference": "azure.ai.inference", "az.ai.openai": "azure.ai.openai", "azure": "azure.ai.openai",
    "vertex_ai": "gcp.vertex_ai", "vertexai": "gcp.vertex_ai", "gemini": "gcp.gemini", "google": "gcp.gen_ai",
    "xai": "x_ai", "bedrock": "aws.bedrock", "aws": "aws.bedrock", "mistralai": "mistral_ai", "mistral": "mistral_ai",
}

MAX_TEXT = 16_384  # characters of prompt/response kept on the normalised row


def extract_llm_facts(
    attributes: Mapping[str, Any],
    resource: Mapping[str, Any] | None = None,
    *,
    span_name: str = "",
    scope_name: str = "",
    status_error: bool = False,
    events: Sequence[Any] = (),
    start_time_ns: int = 0,
    end_time_ns: int = 0,
    with_text: bool = True,
    resource_facts: Mapping[str, Any] | None = None,
) -> LlmFacts | None:
    """Normalise one span's attributes; None when the span is not an LLM operation.

    `events` items need `.name`, `.time_unix_nano` and `.attributes` (a mapping) — OTLP
    protobuf events after decoding, or the decoder's own event tuples. `with_text=False` leaves
    `input` and `output` empty (ingest reads them from the stored span when asked: `content`).
    `resource_facts`: `resource_fields(resource)`, for a caller that reads many spans of one resource.
    """
    convention = _convention(attributes, scope_name)
    if convention is None:
        return None
    facts = LlmFacts(convention=convention)
    found = _field_values(attributes)
    if resource_facts is None:
        resource_facts = resource_fields(resource or {})
    for name, value in resource_facts.items():
        if name not in found:
            _assign(facts, name, value)
    for name, (_, value) in found.items():  # _assign, inlined: ~7 a span on ingest's hot path
        setattr(facts, name, _FIELD_TYPES.get(name, _as_str)(value))
    facts.operation = _operation(attributes, span_name)
    explicit_stream = facts.streaming  # what the span's own attributes say, before any inference
    if convention == "openinference":
        _openinference(attributes, facts, span_name, scope_name)
    elif convention == "langfuse":
        _langfuse(attributes, facts, start_time_ns)
    elif convention == "vercel_ai":
        _vercel_ai(attributes, facts)
    elif convention == "mcp":
        _mcp(attributes, facts, span_name)
    elif convention == "litellm":
        _litellm(attributes, facts)
    elif convention == "logfire" and not status_error:
        _logfire(attributes, facts, span_name)
    _normalise_names(facts)
    ttft = _ttft_ms(attributes, events, start_time_ns)
    if ttft is not None and end_time_ns and ttft > (end_time_ns - start_time_ns) / 1e6 + 1:
        ttft = None  # a first chunk after the span ended is a clock the instrumentor got wrong
    facts.ttft_ms = ttft if ttft is not None else facts.ttft_ms
    if explicit_stream is False:
        facts.streaming = False
        facts.ttft_ms = None  # OpenLIT reports a "time to first token" for whole responses too
    elif facts.ttft_ms is not None or _has_first_chunk_event(events):
        facts.streaming = True  # only a stream has a first chunk, whatever a request parameter said
    elif explicit_stream is None and facts.operation in MODEL_OPERATIONS and "stream" in span_name.lower():
        facts.streaming = True  # "ai.streamText.doStream", "OpenAI.astream_chat", "streaming response from"
    facts.finish_reasons = [normalise_finish_reason(r) for r in facts.finish_reasons]
    if not facts.tool_names:
        facts.tool_names = [name for name, _ in tool_calls(attributes)]
    facts.tokens_estimated = _tokens_estimated(facts, scope_name)
    if facts.operation not in MODEL_OPERATIONS:
        _as_step(facts)
    if status_error and not facts.error_type:
        facts.error_type = _exception_type(events) or "_OTHER"
    if with_text:
        facts.input, facts.output = content(attributes)
    return facts


def resource_fields(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The RESOURCE_FIELDS a resource sets (raw values): what a span's own attributes may override."""
    found = {}
    for name in RESOURCE_FIELDS:
        value = _first(resource, FIELD_SOURCES[name])
        if value is not None:
            found[name] = value
    return found


def _as_step(facts: LlmFacts) -> None:
    """Agent, chain, tool, retrieval and workflow steps are no model calls: usage a framework sums
    onto them (an agent's total beside its model calls' own) is not theirs to count again."""
    facts.input_tokens = facts.output_tokens = facts.cached_input_tokens = 0
    facts.cache_creation_input_tokens = facts.reasoning_tokens = 0
    facts.cost_usd = None
    facts.tokens_estimated = False


# Instrumentors whose spans carry OTel GenAI names, told apart by their scope (for the record).
_SCOPE_CONVENTIONS = (("openlit", "openlit"), ("opentelemetry.instrumentation.openai.v1", "openllmetry"),
                      ("@traceloop/", "openllmetry"), ("pydantic-ai", "pydantic_ai"), ("logfire", "logfire"),
                      ("litellm", "litellm"))


def _convention(attributes: Mapping[str, Any], scope_name: str) -> str | None:
    for key, convention in MARKERS:
        if key in attributes:
            if convention in ("otel", "openllmetry"):
                for prefix, name in _SCOPE_CONVENTIONS:
                    if scope_name.startswith(prefix):
                        return name
                # OpenLIT and OpenLLMetry >= 0.5 write OTel names; tell them apart for the record.
                if "gen_ai.usage.cost" in attributes:
                    return "openlit"
                if "gen_ai.is_streaming" in attributes:
                    return "openllmetry"
            return convention
    return None


def _field_values(attributes: Mapping[str, Any]) -> dict[str, tuple[int, Any]]:
    """field -> (rank, value) of the best-ranked non-empty FIELD_SOURCES key present."""
    found: dict[str, tuple[int, Any]] = {}
    for key in _SOURCE_KEYS.intersection(attributes):
        value = attributes[key]
        if value is None or value == "":
            continue
        for name, rank in _SOURCE_RANKS[key]:
            best = found.get(name)
            if best is None or rank < best[0]:
                found[name] = (rank, value)
    return found


def _first(attributes: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            return value
    return None


def _assign(facts: LlmFacts, name: str, value: Any) -> None:
    setattr(facts, name, _FIELD_TYPES.get(name, _as_str)(value))


def _operation(attributes: Mapping[str, Any], span_name: str) -> str:
    vercel = attributes.get("ai.operationId")
    if vercel:
        return VERCEL_OPERATIONS.get(str(vercel).rsplit(".", 1)[-1], "invoke_workflow")
    if "mcp.method.name" in attributes:
        return "execute_tool" if attributes["mcp.method.name"] == "tools/call" else "mcp"
    op = attributes.get(OPERATION)
    if op:
        op = str(op)
        return OPERATION_ALIASES.get(op, op)
    kind = attributes.get("openinference.span.kind")
    if kind:
        return OPENINFERENCE_KINDS.get(str(kind).upper(), str(kind).lower())
    kind = attributes.get("langfuse.observation.type")
    if kind:
        return LANGFUSE_TYPES.get(str(kind).lower(), str(kind).lower())
    kind = attributes.get("llm.request.type")
    if kind:
        return TRACELOOP_REQUEST_TYPES.get(str(kind), str(kind))
    kind = attributes.get("traceloop.span.kind")
    if kind:
        return TRACELOOP_SPAN_KINDS.get(str(kind), str(kind))
    kind = attributes.get(LLMLENS_SPAN_KIND)
    if kind:
        # A pipeline step (@observe): keep its own kind, so a local "embedding" step is never
        # counted as a call to an embeddings model.
        return str(kind)
    # A span with a model but no operation: infer from its name ("openai.chat", "embeddings x").
    lowered = span_name.lower()
    if "embed" in lowered:
        return "embeddings"
    return "chat" if attributes.get(REQUEST_MODEL) or attributes.get("gen_ai.system") else ""


def _openinference(attributes: Mapping[str, Any], facts: LlmFacts, span_name: str, scope_name: str) -> None:
    params = _json_object(attributes.get("llm.invocation_parameters") or attributes.get("embedding.invocation_parameters"))
    model = params.get("model") or params.get("model_name")  # LangChain/OpenAI "model", LlamaIndex "model_name"
    if model:
        facts.request_model = str(model)
    if facts.streaming is None and params:  # the OpenAI instrumentor records the request's own arguments
        facts.streaming = _as_bool(params.get("stream", False))
    if not facts.provider:
        facts.provider = _as_str(attributes.get("llm.system", ""))
    if facts.operation == "chat" and scope_name.startswith("openinference.instrumentation.llama_index") and \
            span_name.rpartition(".")[2].startswith("_"):
        facts.operation = "prompt"  # LlamaIndex's private helpers (`OpenAI._prepare_chat_with_tools`) call no model
    output = attributes.get("output.value")
    if isinstance(output, str) and output.startswith('{"generations"'):
        _langchain_generations(output, facts)


def _langchain_generations(output: str, facts: LlmFacts) -> None:
    """LangChain's LLMResult: the model that answered (`llm.model_name` may only echo the request) and
    whether it came in chunks (LangChain's invocation parameters say `stream: false` for `.stream()`)."""
    try:
        generations = json.loads(output).get("generations") or []
        first = generations[0][0]
    except (ValueError, AttributeError, IndexError, KeyError, TypeError):
        return
    if not isinstance(first, dict):
        return
    info = first.get("generation_info") or {}
    if isinstance(info, dict) and info.get("model_name"):
        facts.response_model = str(info["model_name"])
    if first.get("type") == "ChatGenerationChunk":
        facts.streaming = True


# The Vercel AI SDK's operation ids (last part) -> GenAI operation names; the outer `ai.generateText`
# (the SDK call, which may loop over several model calls and tools) is a workflow step.
VERCEL_OPERATIONS = {"doGenerate": "chat", "doStream": "chat", "doEmbed": "embeddings", "toolCall": "execute_tool"}


def _vercel_ai(attributes: Mapping[str, Any], facts: LlmFacts) -> None:
    operation_id = str(attributes.get("ai.operationId", ""))
    if operation_id.endswith((".doStream", ".doGenerate")) and facts.streaming is None:
        facts.streaming = operation_id.endswith(".doStream")
    first_chunk_ms = as_float(attributes.get("ai.response.msToFirstChunk"))
    if first_chunk_ms is not None and first_chunk_ms > 0:
        facts.ttft_ms = first_chunk_ms
    if operation_id == "ai.toolCall" and attributes.get("ai.toolCall.name"):
        facts.tool_names = [str(attributes["ai.toolCall.name"])]


def _mcp(attributes: Mapping[str, Any], facts: LlmFacts, span_name: str) -> None:
    """OTel MCP conventions: `tools/call get_weather` is a tool step; sessions and other methods are
    steps too (never model calls)."""
    name = attributes.get("gen_ai.tool.name") or attributes.get("mcp.tool.name")
    if not name and attributes.get("mcp.method.name") == "tools/call" and " " in span_name:
        name = span_name.split(" ", 1)[1]
    if name:
        facts.tool_names = [str(name)]


def _litellm(attributes: Mapping[str, Any], facts: LlmFacts) -> None:
    routed = str(attributes.get("litellm.provider.model") or "")
    if not facts.provider and "/" in routed:
        facts.provider = routed.split("/", 1)[0]  # embeddings leave gen_ai.system empty


def _logfire(attributes: Mapping[str, Any], facts: LlmFacts, span_name: str) -> None:
    """Logfire reports a streamed call as two spans: the request (it ends when the stream opens, with no
    answer) and a `streaming response from ...` log record carrying answer, usage and response model,
    written after the stream ends under the caller's context (another trace when the caller had none).
    The record is the model call; the request half is kept as a step so the call is counted once."""
    if attributes.get("logfire.span_type") == "log" and span_name.startswith("streaming response"):
        facts.streaming = True
    elif facts.operation in MODEL_OPERATIONS and facts.streaming is None and not _has_outcome(attributes):
        facts.operation = "stream_request"
        facts.streaming = True


def _has_outcome(attributes: Mapping[str, Any]) -> bool:
    return any(key in attributes for key in (RESPONSE_ID, INPUT_TOKENS, OUTPUT_MESSAGES, FINISH_REASONS, ERROR_TYPE))


# Provider spellings that decorate a provider with its API ("openai.chat", "openai.responses").
_PROVIDER_API_SUFFIXES = {"chat", "completion", "completions", "responses", "embedding", "embeddings", "image",
                          "transcription", "speech", "messages"}
# Model prefixes that name a provider (LiteLLM's and gateways' "openai/gpt-4o-mini"), and only those:
# "meta-llama/Llama-3.1-8B" is a model name.
_MODEL_PROVIDER_PREFIXES = {"openai", "azure", "anthropic", "bedrock", "vertex_ai", "gemini", "groq", "mistral",
                            "cohere", "xai", "deepseek", "together_ai", "fireworks_ai", "ollama", "openrouter"}


def gateway_provider(model: str) -> str | None:
    """The provider a gateway's model id names (`anthropic/claude-haiku-4-5` -> `anthropic`), spelled as the
    GenAI conventions spell it; None for an id without a known provider prefix (`meta-llama/...` included)."""
    prefix, slash, rest = model.partition("/")
    if not (slash and rest):
        return None
    prefix = prefix.lower()
    return PROVIDER_ALIASES.get(prefix, prefix) if prefix in _MODEL_PROVIDER_PREFIXES else None


def _normalise_names(facts: LlmFacts) -> None:
    """Provider and model names as the GenAI conventions spell them; the raw value kept when it changed."""
    raw_provider = facts.provider
    provider = raw_provider.lower()
    head, _, tail = provider.partition(".")
    if tail in _PROVIDER_API_SUFFIXES:
        provider = head
    for model_field in ("request_model", "response_model"):
        model = getattr(facts, model_field)
        prefix, slash, rest = model.partition("/")
        if slash and rest and prefix.lower() in _MODEL_PROVIDER_PREFIXES:
            if model_field == "request_model":
                facts.request_model_raw = model
            setattr(facts, model_field, rest)
            provider = provider or prefix.lower()
    provider = PROVIDER_ALIASES.get(provider, provider)
    facts.provider = provider
    if raw_provider and raw_provider != provider:
        facts.provider_raw = raw_provider


# Finish reasons as other conventions and providers spell them -> the OpenAI/GenAI spelling.
FINISH_REASON_ALIASES = {"tool_call": "tool_calls", "tool-calls": "tool_calls", "tool_use": "tool_calls",
                         "function_call": "tool_calls", "end_turn": "stop", "stop_sequence": "stop",
                         "max_tokens": "length", "content-filter": "content_filter"}


def normalise_finish_reason(reason: str) -> str:
    lowered = reason.strip().lower()
    return FINISH_REASON_ALIASES.get(lowered, lowered)


def tool_calls(attributes: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(tool name, arguments as text) of the tools a model call asked for, or the tool a step ran,
    from whichever shape the convention uses; arguments are "" where not recorded."""
    found: list[tuple[str, str]] = []
    messages = _json_list(_unless_without(attributes.get(OUTPUT_MESSAGES), "tool_call"))
    for message in messages:
        for part in message.get("parts") or [] if isinstance(message, dict) else []:
            if isinstance(part, dict) and part.get("type") == "tool_call" and part.get("name"):
                found.append((str(part["name"]), _arguments(part.get("arguments"))))
    for item in _json_list(attributes.get("ai.response.toolCalls")):
        if isinstance(item, dict) and item.get("toolName"):
            found.append((str(item["toolName"]), _arguments(item.get("input", item.get("args")))))
    indexed = []
    for key in attributes if _may_have_indexed_tool_calls(attributes) else ():
        if key.startswith(_INDEXED_PREFIXES):
            match = _INDEXED_TOOL_NAME.match(key)
            if match:
                indices = tuple(int(g) for g in match.groups() if g is not None)
                arguments = attributes.get(key[: -len("name")] + "arguments")
                indexed.append((indices, str(attributes[key]), _arguments(arguments)))
    found += [(name, arguments) for _, name, arguments in sorted(indexed)]
    for name_key, args_key in _STEP_TOOLS:
        if attributes.get(name_key):
            found.append((str(attributes[name_key]), _arguments(attributes.get(args_key))))
            break
    unique: dict[tuple[str, str], None] = dict.fromkeys(found)
    return list(unique)


def _unless_without(value: Any, word: str) -> Any:
    """`value`, or None when it is JSON text that cannot contain `word` (not even \\u-escaped): most
    answers name no tool, and ingest need not parse each one to find that out."""
    if isinstance(value, str) and word not in value and "\\u" not in value:
        return None
    return value


def _may_have_indexed_tool_calls(attributes: Mapping[str, Any]) -> bool:
    """False when no key can be a flattened tool call's name: one substring search over the joined
    keys instead of a prefix test on every key (a span carries ~30)."""
    try:
        keys = "\n".join(attributes)
    except TypeError:  # a key that is no string: look at every key
        return True
    return ".tool_calls." in keys or ".function_call." in keys


# Flattened tool calls: OpenInference, OpenLLMetry (`gen_ai.completion.N.tool_calls.M.*`) and LiteLLM
# (`gen_ai.completion.N.function_call.*`).
_INDEXED_PREFIXES = ("llm.output_messages.", "gen_ai.completion.")
_INDEXED_TOOL_NAME = re.compile(
    r"llm\.output_messages\.(\d+)\.message\.tool_calls\.(\d+)\.tool_call\.function\.name$"
    r"|gen_ai\.completion\.(\d+)\.tool_calls\.(\d+)\.name$|gen_ai\.completion\.(\d+)\.function_call\.name$")
# A tool step's own tool: GenAI execute_tool, OpenInference TOOL, Vercel ai.toolCall, MCP.
_STEP_TOOLS = (("gen_ai.tool.name", "gen_ai.tool.call.arguments"), ("tool.name", "input.value"),
               ("ai.toolCall.name", "ai.toolCall.args"), ("mcp.tool.name", "gen_ai.tool.call.arguments"))


def _arguments(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if not isinstance(value, str) or not value.startswith("["):
        return []
    try:
        parsed = json.loads(value)
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


# Instrumentors that count a streamed call's tokens themselves (a tokenizer over the text) instead of
# reading the provider's usage: OpenLLMetry-JS's `enrichTokens` (on by default) replaces the usage of
# every streamed chat call it can tell is streamed.
_COUNTS_STREAM_TOKENS = ("@traceloop/instrumentation-openai",)


def _tokens_estimated(facts: LlmFacts, scope_name: str) -> bool:
    if not (facts.input_tokens or facts.output_tokens) or facts.operation not in MODEL_OPERATIONS:
        return False
    return bool(facts.streaming) and scope_name.startswith(_COUNTS_STREAM_TOKENS)


def _langfuse(attributes: Mapping[str, Any], facts: LlmFacts, start_time_ns: int) -> None:
    usage = _json_object(attributes.get("langfuse.observation.usage_details"))
    if usage:
        facts.input_tokens = _as_int(usage.get("input", usage.get("prompt_tokens", facts.input_tokens)))
        facts.output_tokens = _as_int(usage.get("output", usage.get("completion_tokens", facts.output_tokens)))
        # Langfuse keeps OpenAI's usage object as is: cached and reasoning counts may be nested.
        prompt_details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
        output_details = (usage.get("completion_tokens_details")
                          if isinstance(usage.get("completion_tokens_details"), dict) else {})
        cached = usage.get("input_cached_tokens", usage.get("cache_read_input_tokens", prompt_details.get("cached_tokens")))
        if cached is not None:
            facts.cached_input_tokens = _as_int(cached)
        reasoning = usage.get("output_reasoning_tokens", usage.get("output_reasoning",
                                                                     output_details.get("reasoning_tokens")))
        if reasoning is not None:
            facts.reasoning_tokens = _as_int(reasoning)
    cost = _json_object(attributes.get("langfuse.observation.cost_details"))
    if "total" in cost:
        facts.cost_usd = as_float(cost["total"])
    elif cost:
        facts.cost_usd = sum(as_float(v) or 0.0 for v in cost.values())
    params = _json_object(attributes.get("langfuse.observation.model.parameters"))
    if facts.streaming is None and "stream" in params:
        facts.streaming = _as_bool(params["stream"])
    # Langfuse JSON-encodes metadata values: '"length"', '"2026-01-01T00:00:00.1Z"'.
    reason = _json_scalar(attributes.get("langfuse.observation.metadata.finish_reason"))
    if reason and not facts.finish_reasons:
        facts.finish_reasons = [str(reason)]
    if start_time_ns:
        first = _iso_ns(_json_scalar(attributes.get("langfuse.observation.completion_start_time")))
        if first is not None:
            facts.ttft_ms = max(0.0, (first - start_time_ns) / 1e6)
            if facts.streaming is None:
                facts.streaming = True  # Langfuse records a completion start time for streams only


# Seconds to the first chunk, as each convention names it: GenAI (current and Pydantic AI's client name), OpenLIT.
_TTFT_SECONDS = (TIME_TO_FIRST_CHUNK, "gen_ai.client.operation.time_to_first_chunk", "gen_ai.server.time_to_first_token")
# Span events marking the first chunk: OpenInference, OpenLLMetry (one a chunk), Vercel AI SDK.
_FIRST_CHUNK_EVENTS = ("First Token Stream Event", "gen_ai.content.completion.chunk", "llm.first_token",
                       "ai.stream.firstChunk")


def _ttft_ms(attributes: Mapping[str, Any], events: Sequence[Any], start_time_ns: int) -> float | None:
    for key in _TTFT_SECONDS:
        value = attributes.get(key)  # as_float(None) is None: the call is skipped for absent keys
        seconds = None if value is None else as_float(value)
        if seconds is not None:
            return seconds * 1000.0 if seconds > 0 else None
    value = attributes.get("llmlens.ttft_ms")
    ms = None if value is None else as_float(value)
    if ms is None:
        value = attributes.get("ai.response.msToFirstChunk")  # Vercel AI SDK
        ms = None if value is None else as_float(value)
    if ms is not None:
        return ms if ms > 0 else None
    if start_time_ns and events:
        for event in events:
            if _event_name(event) in _FIRST_CHUNK_EVENTS:
                return max(0.0, (_event_time(event) - start_time_ns) / 1e6)
    return None


def _has_first_chunk_event(events: Sequence[Any]) -> bool:
    return any(_event_name(event) in _FIRST_CHUNK_EVENTS for event in events)


def _exception_type(events: Sequence[Any]) -> str:
    for event in events:
        if _event_name(event) == "exception":
            value = _event_attributes(event).get("exception.type")
            if value:
                return str(value)
    return ""


def content(attributes: Mapping[str, Any]) -> tuple[str, str]:
    """Prompt and response as readable text, from whichever shape the convention uses."""
    prompt = _first(attributes, (INPUT_MESSAGES, "input.value", "langfuse.observation.input", "gen_ai.prompt",
                                 "traceloop.entity.input", "gen_ai.retrieval.query.text", "gen_ai.tool.call.arguments"))
    if prompt is None:
        prompt = _indexed_messages(attributes, "gen_ai.prompt.", ".content") or _indexed_messages(
            attributes, "llm.input_messages.", ".message.content")
    system = attributes.get(SYSTEM_INSTRUCTIONS)
    if system and prompt is not None:
        prompt = f"{_text(system)}\n{_text(prompt)}"
    response = _first(attributes, (OUTPUT_MESSAGES, "output.value", "langfuse.observation.output", "gen_ai.completion",
                                   "traceloop.entity.output", "gen_ai.tool.call.result"))
    if response is None:
        response = _indexed_messages(attributes, "gen_ai.completion.", ".content") or _indexed_messages(
            attributes, "llm.output_messages.", ".message.content")
    return _cap(_text(prompt)), _cap(_text(response))


def _indexed_messages(attributes: Mapping[str, Any], prefix: str, suffix: str) -> str | None:
    parts = []
    for i in range(64):
        value = attributes.get(f"{prefix}{i}{suffix}")
        if value is None:
            break
        parts.append(str(value))
    return "\n".join(parts) if parts else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        if value[:1] in "[{":
            rendered = _render_messages(value)
            if rendered:
                return rendered
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _render_messages(value: str) -> str:
    """`[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]` -> `user: hi`.

    Also OpenInference's `{"messages": [{"role", "content"}]}`. Anything else: "" (caller keeps raw text).
    """
    try:
        parsed = json.loads(value)
    except ValueError:
        return ""
    if isinstance(parsed, dict):
        parsed = parsed.get("messages") if "messages" in parsed else [parsed] if "role" in parsed else None
    if not isinstance(parsed, list) or not parsed or not all(isinstance(m, dict) for m in parsed):
        return ""
    lines = []
    for message in parsed:
        role = message.get("role") or message.get("type") or ""
        content = message.get("content")
        if content is None and isinstance(message.get("parts"), list):
            texts = []
            for part in message["parts"]:
                if not isinstance(part, dict):
                    continue
                if "content" in part:
                    texts.append(str(part["content"]))
                elif part.get("type") == "tool_call":
                    texts.append(f"[tool call {part.get('name', '')}({json.dumps(part.get('arguments'))})]")
                elif "result" in part:
                    texts.append(f"[tool result {json.dumps(part.get('result'))}]")
            content = " ".join(texts)
        if content is None and message.get("tool_calls"):
            content = json.dumps(message["tool_calls"])
        if content is None:
            return ""
        lines.append(f"{role}: {content}" if role else str(content))
    return "\n".join(lines)


def _cap(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _event_name(event: Any) -> str:
    return event.name if hasattr(event, "name") else event[1]


def _event_time(event: Any) -> int:
    return event.time_unix_nano if hasattr(event, "time_unix_nano") else event[0]


def _event_attributes(event: Any) -> Mapping[str, Any]:
    attrs = event.attributes if hasattr(event, "attributes") else event[2]
    return attrs if isinstance(attrs, Mapping) else {}


def _json_scalar(value: Any) -> Any:
    """'"text"' -> 'text'; other values as they are."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == '"' == value[-1]:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _iso_ns(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _json_object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.startswith("{"):
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _as_int(value: Any) -> int:
    try:
        number = int(float(value)) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return min(max(number, 0), 2**63 - 1)


def as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return None
    if isinstance(value, int | float):
        return bool(value)
    return None


def _as_str(value: Any) -> str:
    return value if isinstance(value, str) else _text(value)


def _as_str_list(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    if isinstance(value, str):
        if value.startswith("["):
            try:
                parsed = json.loads(value)
                if isinstance(parsed, list):
                    return [str(v) for v in parsed]
            except ValueError:
                pass
        return [value] if value else []
    return [str(value)]


# How a raw attribute value becomes each typed field of LlmFacts (strings for the rest).
_FIELD_TYPES: dict[str, Callable[[Any], Any]] = {
    **{name: _as_int for name in FIELD_SOURCES if name.endswith("_tokens")},
    "cost_usd": as_float,
    "streaming": _as_bool,
    "finish_reasons": _as_str_list,
}


# --- Facts inherited within a trace ---------------------------------------------------------
# App, department, user and session set on an app's own span (a request handler's `session.id`)
# hold for the LLM calls under it: a call lacking one takes it from its nearest ancestor that has
# it, else from the trace's root span. A call's own attributes and its resource come first.
CONTEXT_FIELDS = ("app", "department", "user_id", "session_id")
_CONTEXT_KEYS = frozenset(key for name in CONTEXT_FIELDS for key in FIELD_SOURCES[name])


def context_facts(attributes: Mapping[str, Any]) -> dict[str, str] | None:
    """The context facts a span's own attributes set (None when it sets none: the common case, cheap)."""
    if _CONTEXT_KEYS.isdisjoint(attributes):
        return None
    found = {}
    for name in CONTEXT_FIELDS:
        value = _first(attributes, FIELD_SOURCES[name])
        if value is not None:
            found[name] = _as_str(value)
    return found or None


def inherited_context(parents: Mapping[str, str], facts: Mapping[str, Mapping[str, str]], span_id: str,
                      root_id: str | None) -> dict[str, str]:
    """Context facts a span inherits: per field, the nearest ancestor's (walking `parents`, span id ->
    parent span id, as far as it is known), else the root's. `facts`: span id -> its own context facts."""
    inherited: dict[str, str] = {}
    seen = {span_id}
    parent = parents.get(span_id, "")
    while parent and parent not in seen and len(inherited) < len(CONTEXT_FIELDS):
        seen.add(parent)
        for name, value in (facts.get(parent) or {}).items():
            inherited.setdefault(name, value)
        parent = parents.get(parent, "")
    if root_id is not None:
        for name, value in (facts.get(root_id) or {}).items():
            inherited.setdefault(name, value)
    return inherited


def reported_duration_ns(attributes: Mapping[str, Any], facts: LlmFacts) -> int:
    """A call's duration when its span is a record written after the call (Logfire's streamed-response
    log, zero-length, with the stream's `duration` in seconds); 0 when the span's own times hold."""
    if facts.convention == "logfire" and attributes.get("logfire.span_type") == "log":
        seconds = as_float(attributes.get("duration"))
        if seconds is not None and 0 < seconds < 86_400:
            return int(seconds * 1e9)
    return 0


# --- Prompt and response carried by events ----------------------------------------------------
# openai-v2 on its default conventions version writes messages as log events (body: JSON), one an
# event; OpenLIT writes span events holding the whole prompt and completion as attributes.
_PROMPT_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                  "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
_RESPONSE_EVENTS = ("gen_ai.choice",)
_SPAN_EVENT_TEXT = {"gen_ai.content.prompt": ("gen_ai.prompt", True), "gen_ai.content.completion": ("gen_ai.completion", False)}


def event_content(events: Sequence[tuple[str, str, Mapping[str, Any]]]) -> tuple[str, str, list[tuple[str, str]]]:
    """Prompt, response and tool calls from a call's events, in their order: (event name, body, attributes)
    of its log records or span events. Empty strings where the events carry none."""
    prompt: list[str] = []
    response: list[str] = []
    calls: list[tuple[str, str]] = []
    for name, body, attributes in events:
        name = name or str(attributes.get("event.name", ""))
        if name in _SPAN_EVENT_TEXT:
            key, is_prompt = _SPAN_EVENT_TEXT[name]
            text = _text(attributes.get(key))
            if text:
                (prompt if is_prompt else response).append(text)
            continue
        if name not in _PROMPT_EVENTS and name not in _RESPONSE_EVENTS:
            continue
        parsed = _json_object(body) if body else {}
        message = parsed.get("message") if isinstance(parsed.get("message"), dict) else parsed
        role = message.get("role") or _PROMPT_EVENTS.get(name, "assistant")
        own = event_tool_calls(message)
        if name in _RESPONSE_EVENTS:  # an assistant message of the prompt is an earlier call's request
            calls += own
        content = message.get("content")
        if content is None and own:
            content = "[tool call " + ", ".join(name for name, _ in own) + "]"
        if content is None:
            continue
        line = f"{role}: {_text(content)}"
        (prompt if name in _PROMPT_EVENTS else response).append(line)
    return _cap("\n".join(prompt)), _cap("\n".join(response)), calls


def event_tool_calls(message: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, arguments) of the tool calls in an event's message (openai-v2's `gen_ai.choice` body:
    `message.tool_calls[].function`; the arguments only when content capture is on). Search reads the
    same names in SQL (query/event_tools.py)."""
    found = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and function.get("name"):
            found.append((str(function["name"]), _arguments(function.get("arguments"))))
    return found

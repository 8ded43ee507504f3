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
    ),
    "request_model": (
        REQUEST_MODEL, "llm.request.model_name", "langfuse.observation.model.name", "llm.model_name",
        "embedding.model_name",
    ),
    "response_model": (
        RESPONSE_MODEL, "llm.response.model_name", "llm.model_name", "embedding.model_name",
        "langfuse.observation.model.name",
    ),
    "input_tokens": (
        INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt", "llm.usage.prompt_tokens",
    ),
    "output_tokens": (
        OUTPUT_TOKENS, "gen_ai.usage.completion_tokens", "llm.token_count.completion",
        "llm.usage.completion_tokens",
    ),
    "cached_input_tokens": (
        CACHE_READ_TOKENS, "gen_ai.usage.cache_read_input_tokens", "llm.token_count.prompt_details.cache_read",
        "gen_ai.usage.prompt_tokens_details.cached_tokens",
    ),
    "cache_creation_input_tokens": (
        CACHE_CREATION_TOKENS, "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write", "gen_ai.usage.prompt_tokens_details.cache_creation_tokens",
    ),
    "reasoning_tokens": (
        REASONING_TOKENS, "gen_ai.usage.reasoning_tokens", "llm.token_count.completion_details.reasoning",
        "gen_ai.usage.completion_tokens_details.reasoning_tokens", "llm.usage.reasoning_tokens",
    ),
    "cost_usd": (LLMLENS_COST, "gen_ai.usage.cost", "llm.cost.total"),
    "streaming": (
        REQUEST_STREAM, "gen_ai.is_streaming", "llm.is_streaming", "gen_ai.request.is_stream",
    ),
    "finish_reasons": (FINISH_REASONS, "llm.finish_reason", "llm.response.finish_reason"),
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
    with_text: bool = True,
) -> LlmFacts | None:
    """Normalise one span's attributes; None when the span is not an LLM operation.

    `events` items need `.name`, `.time_unix_nano` and `.attributes` (a mapping) — OTLP
    protobuf events after decoding, or the decoder's own event tuples. `with_text=False` leaves
    `input` and `output` empty (ingest reads them from the stored span when asked: `content`).
    """
    convention = _convention(attributes, scope_name)
    if convention is None:
        return None
    resource = resource or {}
    facts = LlmFacts(convention=convention)
    found = _field_values(attributes)
    for name in RESOURCE_FIELDS:
        if name not in found:
            value = _first(resource, FIELD_SOURCES[name])
            if value is not None:
                _assign(facts, name, value)
    for name, (_, value) in found.items():
        _assign(facts, name, value)
    facts.operation = _operation(attributes, span_name)
    if convention == "openinference":
        _openinference(attributes, facts)
    elif convention == "langfuse":
        _langfuse(attributes, facts, start_time_ns)
    if facts.provider:
        p = facts.provider.lower()
        facts.provider = PROVIDER_ALIASES.get(p, p)
    facts.ttft_ms = _ttft_ms(attributes, events, start_time_ns) or facts.ttft_ms
    if facts.streaming is False:
        facts.ttft_ms = None  # OpenLIT reports a "time to first token" for whole responses too
    if facts.streaming is None and facts.ttft_ms is not None and convention == "openinference":
        facts.streaming = True
    if status_error and not facts.error_type:
        facts.error_type = _exception_type(events) or "_OTHER"
    if with_text:
        facts.input, facts.output = content(attributes)
    return facts


def _convention(attributes: Mapping[str, Any], scope_name: str) -> str | None:
    for key, convention in MARKERS:
        if key in attributes:
            if convention == "otel":
                # OpenLIT and OpenLLMetry >= 0.5 write OTel names; tell them apart for the record.
                if scope_name.startswith("openlit") or "gen_ai.usage.cost" in attributes:
                    return "openlit"
                if "gen_ai.is_streaming" in attributes or scope_name.startswith("opentelemetry.instrumentation.openai.v1"):
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


def _openinference(attributes: Mapping[str, Any], facts: LlmFacts) -> None:
    params = _json_object(attributes.get("llm.invocation_parameters") or attributes.get("embedding.invocation_parameters"))
    if params.get("model"):
        facts.request_model = str(params["model"])
    if facts.streaming is None:
        facts.streaming = bool(params.get("stream", False)) if "stream" in params or params else None
    if not facts.provider:
        facts.provider = _as_str(attributes.get("llm.system", ""))


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


def _ttft_ms(attributes: Mapping[str, Any], events: Sequence[Any], start_time_ns: int) -> float | None:
    seconds = as_float(attributes.get(TIME_TO_FIRST_CHUNK))
    if seconds is None:
        seconds = as_float(attributes.get("gen_ai.server.time_to_first_token"))  # OpenLIT
    if seconds is not None:
        return seconds * 1000.0 if seconds > 0 else None
    ms = as_float(attributes.get("llmlens.ttft_ms"))
    if ms is not None:
        return ms
    if start_time_ns and events:
        # OpenInference marks the first chunk with an event; OpenLLMetry emits one per chunk.
        for event in events:
            name = _event_name(event)
            if name in ("First Token Stream Event", "gen_ai.content.completion.chunk", "llm.first_token"):
                return max(0.0, (_event_time(event) - start_time_ns) / 1e6)
    return None


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

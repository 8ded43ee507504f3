"""A thin, fast instrumentation of the `openai` client (any OpenAI-compatible endpoint).

Covers chat.completions.create, embeddings.create and responses.create, sync and async,
streaming or not. Each call becomes one CLIENT span named `{operation} {model}` with the
OTel GenAI attributes (request/response model, tokens incl. cached and reasoning, finish
reasons, error.type, server.address/port, TTFT for streams), `llmlens.cost_usd`, and is
recorded in the LLM metrics directly — before sampling, so sampled-out calls still count.

Why our own and not opentelemetry-instrumentation-openai-v2: measured in
benchmarks/sdk_overhead.py; the hot path here sets attributes once per call, builds no
message JSON unless content capture is on, and hands metrics to prebound children.

The classes are patched once per process; when llmlens is not initialised the wrappers
pass straight through.
"""

from __future__ import annotations

import json
import time
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmlens import semconv
from llmlens.sdk import runtime
from llmlens.sdk.context import current_app_department
from llmlens.sdk.guard import shielded
from llmlens.sdk.openai_streams import AsyncChatStream, AsyncResponseStream, ChatStream, ResponseStream

try:  # the key httpx/requests instrumentations check; absent without opentelemetry-instrumentation
    from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY
except ImportError:  # pragma: no cover - very old opentelemetry-api
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY = None

_perf = time.perf_counter
_patched = False

# create() keyword -> request attribute.
REQUEST_PARAMS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("max_output_tokens", "gen_ai.request.max_tokens"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
)


def _server(instance: Any) -> tuple[str, int, str]:
    """(host, port, provider) of the client behind a resource, cached on the client."""
    client = getattr(instance, "_client", None)
    if client is None:
        return "", 0, "openai"
    url = client.base_url
    cached = client.__dict__.get("_llmlens_server")
    if cached is not None and cached[0] is url:
        return cached[1]
    host = url.host or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    provider = "azure.ai.openai" if host.endswith(".openai.azure.com") else "openai"
    info = (host, port, provider)
    client.__dict__["_llmlens_server"] = (url, info)
    return info


class LlmCall:
    """One instrumented call, from create() until its response (or stream) is complete."""

    __slots__ = ("rt", "span", "operation", "provider", "request_model", "host", "port", "started", "app",
                 "department", "capture")

    def __init__(self, rt: runtime.Runtime, operation: str, instance: Any, kwargs: dict[str, Any],
                 stream: bool) -> None:
        self.rt = rt
        self.operation = operation
        self.request_model = model = str(kwargs.get("model") or "")
        self.host, self.port, self.provider = _server(instance)
        self.app, self.department = current_app_department(rt.config.app, rt.config.department)
        self.capture = rt.config.capture_content
        attrs: dict[str, Any] = {
            semconv.OPERATION: operation,
            semconv.PROVIDER: self.provider,
            semconv.REQUEST_MODEL: model,
            "server.address": self.host,
            "server.port": self.port,
        }
        if stream:
            attrs[semconv.REQUEST_STREAM] = True
        for arg, attr in REQUEST_PARAMS:
            value = kwargs.get(arg)
            if value is not None and isinstance(value, int | float):
                attrs[attr] = value
        if self.capture:
            attrs.update(_request_content(operation, kwargs))
        self.span = rt.tracer.start_span(f"{operation} {model}" if model else operation, kind=SpanKind.CLIENT,
                                         attributes=attrs)
        self.started = _perf()

    def fail(self, exc: BaseException) -> None:
        error_type = type(exc).__qualname__
        s = self.span
        status_code = getattr(exc, "status_code", None)
        if isinstance(status_code, int):
            s.set_attribute("http.response.status_code", status_code)
        s.set_attribute(semconv.ERROR_TYPE, error_type)
        s.record_exception(exc)
        s.set_status(Status(StatusCode.ERROR, str(exc)[:1024]))
        self.finish("", 0, 0, 0, 0, error_type=error_type)

    def finish(self, response_model: str, input_tokens: int, output_tokens: int, cached: int, reasoning: int, *,
               attrs: dict[str, Any] | None = None, error_type: str = "", ttft_s: float | None = None,
               first_chunk_at: float | None = None) -> None:
        ended = _perf()
        duration = ended - self.started
        rt = self.rt
        cost = None if error_type else rt.cost(response_model or self.request_model, self.provider, input_tokens,
                                               output_tokens, cached, reasoning)
        if not error_type:
            out = attrs if attrs is not None else {}
            out[semconv.INPUT_TOKENS] = input_tokens
            if self.operation != "embeddings":
                out[semconv.OUTPUT_TOKENS] = output_tokens
            if cached:
                out[semconv.CACHE_READ_TOKENS] = cached
            if reasoning:
                out[semconv.REASONING_TOKENS] = reasoning
            if response_model:
                out[semconv.RESPONSE_MODEL] = response_model
            if cost is not None:
                out[semconv.LLMLENS_COST] = cost
            if ttft_s is not None:
                out[semconv.TIME_TO_FIRST_CHUNK] = ttft_s
                generating = ended - (first_chunk_at or ended)
                if output_tokens and generating > 0:
                    out["llmlens.output_tokens_per_second"] = output_tokens / generating
            self.span.set_attributes(out)
        self.span.end()
        rt.metrics.record(
            operation=self.operation, provider=self.provider, request_model=self.request_model,
            response_model=response_model, host=self.host, port=self.port, error_type=error_type, app=self.app,
            department=self.department, duration_s=duration, input_tokens=input_tokens,
            output_tokens=output_tokens, cost=cost, ttft_s=ttft_s,
        )


# --- Reading responses -------------------------------------------------------------------------

def _usage_counts(usage: Any) -> tuple[int, int, int, int]:
    """(input, output, cached, reasoning) from a chat or responses usage object."""
    if usage is None:
        return 0, 0, 0, 0
    input_tokens = getattr(usage, "prompt_tokens", None)
    if input_tokens is None:  # Responses API names
        details = getattr(usage, "input_tokens_details", None)
        out_details = getattr(usage, "output_tokens_details", None)
        return (usage.input_tokens or 0, usage.output_tokens or 0,
                (getattr(details, "cached_tokens", 0) or 0) if details is not None else 0,
                (getattr(out_details, "reasoning_tokens", 0) or 0) if out_details is not None else 0)
    details = usage.prompt_tokens_details
    out_details = getattr(usage, "completion_tokens_details", None)
    return (input_tokens or 0, getattr(usage, "completion_tokens", 0) or 0,
            (details.cached_tokens or 0) if details is not None else 0,
            (out_details.reasoning_tokens or 0) if out_details is not None else 0)


def finish_chat(call: LlmCall, result: Any) -> None:
    attrs: dict[str, Any] = {}
    choices = getattr(result, "choices", None) or ()
    reasons = [c.finish_reason for c in choices if c.finish_reason]
    if reasons:
        attrs[semconv.FINISH_REASONS] = reasons
    response_id = getattr(result, "id", None)
    if response_id:
        attrs["gen_ai.response.id"] = response_id
    if call.capture:
        attrs[semconv.OUTPUT_MESSAGES] = _chat_output_messages(choices)
    i, o, c, r = _usage_counts(getattr(result, "usage", None))
    call.finish(getattr(result, "model", "") or "", i, o, c, r, attrs=attrs)


def finish_embeddings(call: LlmCall, result: Any) -> None:
    attrs: dict[str, Any] = {}
    data = getattr(result, "data", None)
    if data:
        vector = getattr(data[0], "embedding", None)
        if isinstance(vector, list):
            attrs["gen_ai.embeddings.dimension.count"] = len(vector)
    usage = getattr(result, "usage", None)
    call.finish(getattr(result, "model", "") or "", getattr(usage, "prompt_tokens", 0) or 0, 0, 0, 0, attrs=attrs)


def finish_response(call: LlmCall, result: Any) -> None:
    attrs: dict[str, Any] = {}
    status = getattr(result, "status", None)
    if status:
        incomplete = getattr(result, "incomplete_details", None)
        reason = getattr(incomplete, "reason", None) if incomplete is not None else None
        attrs[semconv.FINISH_REASONS] = [reason or ("stop" if status == "completed" else str(status))]
    response_id = getattr(result, "id", None)
    if response_id:
        attrs["gen_ai.response.id"] = response_id
    attrs["openai.api"] = "responses"  # the Responses API is a "chat" operation in GenAI terms
    if call.capture:
        text = getattr(result, "output_text", "")
        attrs[semconv.OUTPUT_MESSAGES] = json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": text}]}], ensure_ascii=False)
    i, o, c, r = _usage_counts(getattr(result, "usage", None))
    call.finish(getattr(result, "model", "") or "", i, o, c, r, attrs=attrs)


# --- Content capture (only when on) ------------------------------------------------------------

def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts = []
    for part in content or ():
        if isinstance(part, dict) and "text" in part:
            parts.append({"type": "text", "content": part["text"]})
    return parts


def _messages_json(messages: Any) -> str:
    out = []
    for m in messages or ():
        if not isinstance(m, dict):
            continue
        parts = _parts(m.get("content"))
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append({"type": "tool_call", "id": call.get("id"), "name": fn.get("name"),
                          "arguments": fn.get("arguments")})
        if m.get("role") == "tool":
            parts = [{"type": "tool_call_response", "id": m.get("tool_call_id"), "result": m.get("content")}]
        out.append({"role": m.get("role", "user"), "parts": parts})
    return json.dumps(out, ensure_ascii=False, default=str)


def _request_content(operation: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if "messages" in kwargs:
        return {semconv.INPUT_MESSAGES: _messages_json(kwargs.get("messages"))}
    if operation == "embeddings":
        value = kwargs.get("input")
        return {semconv.INPUT_MESSAGES: json.dumps(
            [{"role": "user", "parts": _parts(value if isinstance(value, str) else None)
              or [{"type": "text", "content": str(v)} for v in value or ()]}], ensure_ascii=False, default=str)}
    attrs = {}  # Responses API
    value = kwargs.get("input")
    attrs[semconv.INPUT_MESSAGES] = (_messages_json([{"role": "user", "content": value}]) if isinstance(value, str)
                                     else _messages_json(value))
    if kwargs.get("instructions"):
        attrs[semconv.SYSTEM_INSTRUCTIONS] = json.dumps([{"type": "text", "content": kwargs["instructions"]}])
    return attrs


def _chat_output_messages(choices: Any) -> str:
    out = []
    for c in choices:
        message = c.message
        parts = _parts(message.content) if message.content else []
        for tc in message.tool_calls or ():
            fn = getattr(tc, "function", None)
            parts.append({"type": "tool_call", "id": tc.id, "name": getattr(fn, "name", None),
                          "arguments": getattr(fn, "arguments", None)})
        out.append({"role": message.role, "parts": parts, "finish_reason": c.finish_reason})
    return json.dumps(out, ensure_ascii=False, default=str)


# --- The wrappers -------------------------------------------------------------------------------

def _active() -> runtime.Runtime | None:
    rt = runtime.active
    if rt is None or not rt.config.instrument_openai:
        return None
    return rt


def _suppress_http(rt: runtime.Runtime) -> object | None:
    # The LLM span is the client span: no second httpx span for the same request.
    if rt.http_instrumented and _SUPPRESS_HTTP_INSTRUMENTATION_KEY is not None:
        return otel_context.attach(otel_context.set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    return None


def _with_trace_headers(call: LlmCall, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Send W3C trace context (not baggage: it may carry user ids) with the request, so a
    server that traces itself (vLLM, the demo's mock, a gateway) joins this trace under the
    LLM span. Written directly: the propagator API costs a context copy per call."""
    ctx = call.span.get_span_context()
    if not ctx.is_valid:
        return kwargs
    carrier = {"traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"}
    if ctx.trace_state:
        carrier["tracestate"] = ctx.trace_state.to_header()
    headers = kwargs.get("extra_headers")
    merged = {**carrier, **headers} if isinstance(headers, dict) else carrier
    return {**kwargs, "extra_headers": merged}


def _begin(rt: runtime.Runtime, operation: str, instance: Any, kwargs: dict[str, Any],
           stream: bool) -> tuple[LlmCall, dict[str, Any], object | None]:
    """The call's span, the keywords to send (with trace headers), and the context token to detach."""
    call = LlmCall(rt, operation, instance, kwargs, stream)
    send_kwargs = _with_trace_headers(call, kwargs)
    return call, send_kwargs, _suppress_http(rt)  # attached last: nothing to undo if an earlier step raised


def _outcome(call: LlmCall, result: Any, finish: Any, stream_proxy: Any, stream: bool, next_name: str) -> Any:
    """What the caller gets back: the stream wrapped in a proxy, or the result after its span is finished."""
    if stream and stream_proxy is not None and hasattr(result, next_name):
        return stream_proxy(result, call)
    if not hasattr(result, "usage") and hasattr(result, "parse"):  # with_raw_response
        parsed = None
        if not stream and next_name == "__next__":  # an async raw response's parse() is a coroutine
            try:
                parsed = result.parse()
            except Exception:  # noqa: BLE001 - telemetry must never change the caller's outcome
                parsed = None
        finish(call, parsed)
        return result
    finish(call, result)
    return result


# Every step of ours below runs through shielded(): an internal error costs this call's telemetry,
# never the caller's result or exception (see llmlens.sdk.guard).

def _make_sync(operation: str, finish: Any, stream_proxy: Any) -> Any:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        rt = _active()
        if rt is None:
            return wrapped(*args, **kwargs)
        stream = kwargs.get("stream") is True
        begun = shielded(_begin, rt, operation, instance, kwargs, stream)
        if begun is None:
            return wrapped(*args, **kwargs)
        call, send_kwargs, token = begun
        try:
            result = wrapped(*args, **send_kwargs)
        except BaseException as exc:
            shielded(call.fail, exc)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
        out = shielded(_outcome, call, result, finish, stream_proxy, stream, "__next__")
        return result if out is None else out

    return wrapper


def _make_async(operation: str, finish: Any, stream_proxy: Any) -> Any:
    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        rt = _active()
        if rt is None:
            return await wrapped(*args, **kwargs)
        stream = kwargs.get("stream") is True
        begun = shielded(_begin, rt, operation, instance, kwargs, stream)
        if begun is None:
            return await wrapped(*args, **kwargs)
        call, send_kwargs, token = begun
        try:
            result = await wrapped(*args, **send_kwargs)
        except BaseException as exc:
            shielded(call.fail, exc)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
        out = shielded(_outcome, call, result, finish, stream_proxy, stream, "__anext__")
        return result if out is None else out

    return wrapper


def instrument_openai() -> bool:
    """Patch the openai client classes once per process; False when openai is not installed."""
    global _patched
    if _patched:
        return True
    try:
        import openai  # noqa: F401
    except ImportError:
        return False
    targets = [
        ("openai.resources.chat.completions", "Completions.create", _make_sync("chat", finish_chat, ChatStream)),
        ("openai.resources.chat.completions", "AsyncCompletions.create",
         _make_async("chat", finish_chat, AsyncChatStream)),
        ("openai.resources.embeddings", "Embeddings.create", _make_sync("embeddings", finish_embeddings, None)),
        ("openai.resources.embeddings", "AsyncEmbeddings.create", _make_async("embeddings", finish_embeddings, None)),
    ]
    for module, name, wrapper in targets:
        try:
            wrapt.wrap_function_wrapper(module, name, wrapper)
        except (ImportError, AttributeError):
            continue  # an older client without this API
    # openai imports the Responses API lazily, on first use of `client.responses`, and importing it
    # builds ~300 ms of pydantic models: patch it when it is imported, not at init().
    wrapt.register_post_import_hook(_patch_responses, "openai.resources.responses.responses")
    _patched = True
    return True


def _patch_responses(module: Any) -> None:
    wrapt.wrap_function_wrapper(module, "Responses.create", _make_sync("chat", finish_response, ResponseStream))
    wrapt.wrap_function_wrapper(module, "AsyncResponses.create",
                                _make_async("chat", finish_response, AsyncResponseStream))

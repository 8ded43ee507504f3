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

import sys
from typing import Any

import wrapt
from opentelemetry import context as otel_context

from llmlens.sdk import runtime
from llmlens.sdk.guard import shielded
from llmlens.sdk.openai_call import LlmCall, finish_chat, finish_embeddings, finish_response
from llmlens.sdk.openai_streams import AsyncChatStream, AsyncResponseStream, ChatStream, ResponseStream

try:  # the key httpx/requests instrumentations check; absent without opentelemetry-instrumentation
    from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY
except ImportError:  # pragma: no cover - very old opentelemetry-api
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY = None

_patched = False


# --- The wrappers -------------------------------------------------------------------------------

def _active() -> runtime.Runtime | None:
    rt = runtime.active
    if rt is None or not rt.config.instrument_openai:
        return None
    return rt


def _suppress_http(rt: runtime.Runtime) -> object | None:
    # The LLM span is the client span: no second httpx span for the same request. The httpx
    # instrumentation is applied when httpx is imported; a client on another transport (openai's
    # httpx2) never imports it, and then there is nothing to suppress and no context to attach.
    if rt.http_instrumented and _SUPPRESS_HTTP_INSTRUMENTATION_KEY is not None and "httpx" in sys.modules:
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

"""One instrumented `openai` call: its span and metrics, from create() until its response is read.

`LlmCall` opens the CLIENT span with the request's attributes; `finish_chat`, `finish_embeddings`
and `finish_response` read a response (usage, finish reasons, model) and end it; `LlmCall.fail`
ends it with the call's error. The stream proxies (openai_streams) and the client wrappers
(openai_instrumentation) build on this module; it imports neither.
"""

from __future__ import annotations

import json
import time
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from llmlens import semconv
from llmlens.sdk import runtime
from llmlens.sdk.context import current_app_department
from llmlens.sdk.openai_content import chat_output_messages, request_content
from llmlens.sdk.sampling import LlmSampler
from llmlens.sdk.span_attributes import set_clean_attributes

_perf = time.perf_counter

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


_NUMBERS = (int, float)


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
        self.host, self.port, client_provider = _server(instance)
        # Through an OpenAI-compatible gateway (LiteLLM, OpenRouter) the model id names the provider.
        self.provider = semconv.gateway_provider(model) or client_provider
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
            if value is not None and isinstance(value, _NUMBERS):
                attrs[attr] = value
        if self.capture:
            attrs.update(request_content(operation, kwargs))
        name = f"{operation} {model}" if model else operation
        tracer = rt.tracer
        if type(getattr(tracer, "sampler", None)) is LlmSampler:
            # llmlens's sampler decides on the trace id alone, so the attributes (of OTel's clean
            # types, built above) need not pass through start_span's per-value validation; an app's
            # own provider and sampler get them at start, through the API.
            self.span = span = tracer.start_span(name, kind=SpanKind.CLIENT)
            set_clean_attributes(span, attrs)
        else:
            self.span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)
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
            set_clean_attributes(self.span, out)
        self.span.end()
        rt.metrics.record(
            operation=self.operation, provider=self.provider, request_model=self.request_model,
            response_model=response_model, host=self.host, port=self.port, error_type=error_type, app=self.app,
            department=self.department, duration_s=duration, input_tokens=input_tokens,
            output_tokens=output_tokens, cost=cost, ttft_s=ttft_s,
        )


def usage_counts(usage: Any) -> tuple[int, int, int, int]:
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
    reasons = tuple([c.finish_reason for c in choices if c.finish_reason])
    if reasons:
        attrs[semconv.FINISH_REASONS] = reasons
    response_id = getattr(result, "id", None)
    if response_id:
        attrs["gen_ai.response.id"] = response_id
    if call.capture:
        attrs[semconv.OUTPUT_MESSAGES] = chat_output_messages(choices)
    i, o, c, r = usage_counts(getattr(result, "usage", None))
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
        attrs[semconv.FINISH_REASONS] = (reason or ("stop" if status == "completed" else str(status)),)
    response_id = getattr(result, "id", None)
    if response_id:
        attrs["gen_ai.response.id"] = response_id
    attrs["openai.api"] = "responses"  # the Responses API is a "chat" operation in GenAI terms
    if call.capture:
        text = getattr(result, "output_text", "")
        attrs[semconv.OUTPUT_MESSAGES] = json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": text}]}], ensure_ascii=False)
    i, o, c, r = usage_counts(getattr(result, "usage", None))
    call.finish(getattr(result, "model", "") or "", i, o, c, r, attrs=attrs)

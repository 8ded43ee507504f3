"""OTLP spans -> otel_traces rows, plus one llm_calls row per LLM operation and score rows."""

from __future__ import annotations

from typing import Any

from llmlens import semconv
from llmlens.server.normalise.attributes import key_values, stored_string
from llmlens.server.normalise.batch import Batch
from llmlens.server.normalise.cost import CostModel

SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_NONE: list = []  # shared empty list for spans without events or links (never mutated)


def normalise_traces(request: Any, cost: CostModel) -> Batch:
    batch = Batch()
    spans = batch.columns("otel_traces")
    for resource_spans in request.resource_spans:
        resource = key_values(resource_spans.resource.attributes)
        service = resource.get("service.name") or "unknown_service"
        for scope_spans in resource_spans.scope_spans:
            scope = (scope_spans.scope.name, scope_spans.scope.version)  # read once, not per span
            for span in scope_spans.spans:
                problem = _invalid(span)
                if problem:
                    batch.reject(problem)
                    continue
                _add_span(batch, spans, span, service, resource, scope, cost)
                batch.accepted += 1
    return batch


def _invalid(span: Any) -> str:
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE:
        return f"span {span.name[:80]!r}: trace_id must be 16 non-zero bytes"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN:
        return f"span {span.name[:80]!r}: span_id must be 8 non-zero bytes"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"span {span.name[:80]!r}: parent_span_id must be empty or 8 bytes"
    if span.start_time_unix_nano == 0:
        return f"span {span.name[:80]!r}: start_time_unix_nano is missing"
    return ""


def _add_span(batch, cols, span, service, resource, scope: tuple[str, str], cost: CostModel) -> None:
    # Each read of a protobuf field builds a new Python object: read every field once.
    attributes = key_values(span.attributes)
    name = span.name
    trace_id = span.trace_id.hex()
    span_id = span.span_id.hex()
    start = span.start_time_unix_nano
    duration = max(0, span.end_time_unix_nano - start)
    status_proto = span.status
    code = status_proto.code
    status = STATUS_CODES[code] if code < 3 else "Unset"
    kind = span.kind
    events = [(e.time_unix_nano, e.name, key_values(e.attributes)) for e in span.events] if span.events else _NONE
    stored = attributes if cost.mask is None else {k: cost.mask(v) for k, v in attributes.items()}
    cols["Timestamp"].append(start)
    cols["TraceId"].append(trace_id)
    cols["SpanId"].append(span_id)
    cols["ParentSpanId"].append(span.parent_span_id.hex())
    cols["TraceState"].append(span.trace_state)
    cols["SpanName"].append(name)
    cols["SpanKind"].append(SPAN_KINDS[kind] if kind < 6 else "Unspecified")
    cols["ServiceName"].append(service)
    cols["ResourceAttributes"].append(resource)
    cols["ScopeName"].append(scope[0])
    cols["ScopeVersion"].append(scope[1])
    cols["SpanAttributes"].append(stored)
    cols["Duration"].append(duration)
    cols["StatusCode"].append(status)
    cols["StatusMessage"].append(status_proto.message)
    if events is _NONE:
        cols["Events.Timestamp"].append(_NONE)
        cols["Events.Name"].append(_NONE)
        cols["Events.Attributes"].append(_NONE)
    else:
        cols["Events.Timestamp"].append([t for t, _, _ in events])
        cols["Events.Name"].append([n for _, n, _ in events])
        cols["Events.Attributes"].append([a for _, _, a in events])
    links = span.links
    cols["Links.TraceId"].append([link.trace_id.hex() for link in links] if links else _NONE)
    cols["Links.SpanId"].append([link.span_id.hex() for link in links] if links else _NONE)
    cols["Links.TraceState"].append([link.trace_state for link in links] if links else _NONE)
    cols["Links.Attributes"].append([key_values(link.attributes) for link in links] if links else _NONE)

    facts = semconv.extract_llm_facts(
        attributes, resource, span_name=name, scope_name=scope[0], status_error=status == "Error",
        events=events, start_time_ns=start,
    )
    if facts is not None:
        _add_llm_call(batch, facts, trace_id, span_id, service, name, start, duration, status, cost)
    for t, name, attrs in events:
        if name == semconv.EVALUATION_EVENT:
            _add_score(batch, attrs, attributes, resource, trace_id, span_id, service, t)


def _add_llm_call(batch, facts, trace_id, span_id, service, name, start, duration, status, cost: CostModel) -> None:
    is_error = status == "Error" or bool(facts.error_type)
    price = facts.cost_usd
    if price is None:
        unbilled = is_error and facts.input_tokens == 0 and facts.output_tokens == 0
        price = 0.0 if unbilled else cost.price(facts)  # a failed call the provider did not bill costs nothing
    text_in, text_out = facts.input, facts.output
    if cost.mask is not None:
        text_in, text_out = cost.mask(text_in), cost.mask(text_out)
    cols = batch.columns("llm_calls")
    cols["Timestamp"].append(start)
    cols["TraceId"].append(trace_id)
    cols["SpanId"].append(span_id)
    cols["ServiceName"].append(service)
    cols["SpanName"].append(name)
    cols["Duration"].append(duration)
    cols["IsError"].append(is_error)
    cols["Convention"].append(facts.convention)
    cols["Operation"].append(facts.operation)
    cols["Provider"].append(facts.provider)
    cols["RequestModel"].append(facts.request_model)
    cols["ResponseModel"].append(facts.response_model)
    cols["InputTokens"].append(facts.input_tokens)
    cols["OutputTokens"].append(facts.output_tokens)
    cols["CachedInputTokens"].append(facts.cached_input_tokens)
    cols["ReasoningTokens"].append(facts.reasoning_tokens)
    cols["CostUsd"].append(price or 0.0)
    cols["Priced"].append(price is not None)
    cols["Streaming"].append(facts.streaming)
    cols["TtftMs"].append(facts.ttft_ms)
    cols["FinishReasons"].append(facts.finish_reasons)
    cols["ErrorType"].append(facts.error_type or ("_OTHER" if is_error else ""))
    cols["App"].append(facts.app)
    cols["Department"].append(facts.department)
    cols["UserId"].append(facts.user_id)
    cols["SessionId"].append(facts.session_id)
    cols["Input"].append(text_in)
    cols["Output"].append(text_out)


def _add_score(batch, attrs, span_attrs, resource, trace_id, span_id, service, time_ns) -> None:
    value = semconv.as_float(attrs.get(semconv.EVALUATION_SCORE))
    if value is None:
        return
    # A score span may point at the call it judges; file the score under that call.
    target_trace = str(span_attrs.get(semconv.SCORE_TARGET_TRACE) or trace_id)
    target_span = str(span_attrs.get(semconv.SCORE_TARGET_SPAN) or span_id)
    cols = batch.columns("llm_scores")
    cols["Timestamp"].append(time_ns)
    cols["TraceId"].append(target_trace)
    cols["SpanId"].append(target_span)
    cols["ServiceName"].append(service)
    cols["App"].append(str(span_attrs.get(semconv.LLMLENS_APP) or resource.get(semconv.LLMLENS_APP) or ""))
    cols["Name"].append(stored_string(attrs.get(semconv.EVALUATION_NAME) or "score")[:200])
    cols["Value"].append(value)
    cols["Label"].append(stored_string(attrs.get(semconv.EVALUATION_LABEL) or "")[:200])
    cols["Comment"].append(stored_string(attrs.get(semconv.EVALUATION_EXPLANATION) or "")[:4000])
    cols["Source"].append("event")

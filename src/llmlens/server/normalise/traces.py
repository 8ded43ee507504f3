"""OTLP spans -> otel_traces rows, plus one llm_calls row per LLM operation and score rows."""

from __future__ import annotations

from typing import Any

from llmlens import semconv
from llmlens.server.decode import spans as otlp_spans
from llmlens.server.decode.attributes import stored_string
from llmlens.server.decode.spans import Resource, Span
from llmlens.server.normalise.cost import CostModel, implausible_usage
from llmlens.server.normalise.masking import mask_batch
from llmlens.server.normalise.time_window import Bounds
from llmlens.server.normalise.trace_context import TraceContext
from llmlens.server.store.batch import Batch

SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_NONE: list = []  # shared empty list for spans without events or links (never mutated)


def normalise_traces(request: Any, cost: CostModel) -> Batch:
    """Rows from a parsed ExportTraceServiceRequest."""
    return normalise_spans(otlp_spans.from_message(request), cost)


def normalise_spans(resources: list[Resource], cost: CostModel) -> Batch:
    """Rows from the spans of a request, as spans.decode or spans.from_message give them."""
    batch = Batch()
    rows = batch.rows("otel_traces")
    bounds = cost.window.now() if cost.window is not None else None
    context = TraceContext()
    for resource, scopes in resources:
        service = resource.get("service.name") or "unknown_service"
        resource_facts = semconv.resource_fields(resource)  # once a resource, not once a span
        for scope_name, scope_version, spans in scopes:
            for span in spans:
                problem = (_invalid(span, bounds)
                           or _add_span(batch, rows, span, service, resource, scope_name, scope_version, cost, bounds,
                                        context, resource_facts))
                if problem:
                    batch.reject(problem)
                    continue
                batch.accepted += 1
    context.fill(batch.rows("llm_calls"))
    if cost.mask is not None:  # on the rows, so spans from the C decoder are masked too
        mask_batch(batch, cost.mask)
    return batch


def _invalid(span: Span, bounds: Bounds | None) -> str:
    trace_id, span_id, parent_span_id, _, name, _, start, end = span[:8]  # ids are hex: two digits a byte
    if len(trace_id) != 32 or trace_id == _ZERO_TRACE:
        return f"span {name[:80]!r}: trace_id must be 16 non-zero bytes"
    if len(span_id) != 16 or span_id == _ZERO_SPAN:
        return f"span {name[:80]!r}: span_id must be 8 non-zero bytes"
    if parent_span_id and len(parent_span_id) != 16:
        return f"span {name[:80]!r}: parent_span_id must be empty or 8 bytes"
    if start == 0:
        return f"span {name[:80]!r}: start_time_unix_nano is missing"
    if bounds is not None:
        if not bounds.earliest <= start <= bounds.latest:
            return bounds.check(start, f"span {name[:80]!r}: start time")
        if end > bounds.latest:
            return bounds.check(end, f"span {name[:80]!r}: end time")
    return ""


def _add_span(batch, rows: list[tuple], span: Span, service, resource, scope_name: str, scope_version: str,
              cost: CostModel, bounds: Bounds | None, context: TraceContext | None = None,
              resource_facts: dict | None = None) -> str:
    """Add the span's rows; or add nothing and say why the span cannot be stored."""
    (trace_id, span_id, parent_span_id, trace_state, name, kind, start, end, code, status_message, attributes,
     events, links) = span
    duration = max(0, end - start)
    status = STATUS_CODES[code] if 0 <= code < 3 else "Unset"
    facts = semconv.extract_llm_facts(
        attributes, resource, span_name=name, scope_name=scope_name, status_error=status == "Error",
        events=events or _NONE, start_time_ns=start, end_time_ns=end,
        with_text=False,  # the text stays in the span only
        resource_facts=resource_facts,
    )
    problem = implausible_usage(facts) if facts is not None else ""
    if problem:
        return f"span {name[:80]!r}: {problem}"
    scores = [] if events is None else [
        (t or start, attrs) for t, event_name, attrs in events if event_name == semconv.EVALUATION_EVENT]
    if bounds is not None:
        for t, _ in scores:
            problem = bounds.check(t, f"span {name[:80]!r}: evaluation event time")
            if problem:
                return problem
    if events is None:
        events = _NONE
        event_columns = (_NONE, _NONE, _NONE)
    else:
        event_columns = ([t for t, _, _ in events], [n for _, n, _ in events], [a for _, _, a in events])
    if links is None:
        link_columns = (_NONE, _NONE, _NONE, _NONE)
    else:
        link_columns = tuple([link[i] for link in links] for i in range(4))
    # One tuple in otel_traces' column order (store/columns.py).
    rows.append((
        start, trace_id, span_id, parent_span_id, trace_state, name,
        SPAN_KINDS[kind] if 0 <= kind < 6 else "Unspecified", service, resource, scope_name, scope_version,
        attributes, duration, status, status_message, *event_columns, *link_columns,
    ))
    if facts is not None:
        call_duration = semconv.reported_duration_ns(attributes, facts) or duration
        _add_llm_call(batch, facts, trace_id, span_id, service, name, start, call_duration, status, cost)
        if context is not None:
            context.calls.append((trace_id, span_id, len(batch.rows("llm_calls")) - 1))
    if context is not None:
        context.add_span(trace_id, span_id, parent_span_id, attributes)
    for t, attrs in scores:  # an event without a time is filed at the span's start
        _add_score(batch, attrs, attributes, resource, trace_id, span_id, service, t)
    return ""


def _add_llm_call(batch, facts, trace_id, span_id, service, name, start, duration, status, cost: CostModel) -> None:
    is_error = status == "Error" or bool(facts.error_type)
    price = facts.cost_usd
    if facts.operation not in semconv.MODEL_OPERATIONS:
        price = None  # a step (agent, tool, workflow) is no priced request: its usage is its calls'
    elif price is None:
        unbilled = is_error and facts.input_tokens == 0 and facts.output_tokens == 0
        price = 0.0 if unbilled else cost.price(facts)  # a failed call the provider did not bill costs nothing
    # One tuple in llm_calls' column order (store/columns.py).
    batch.rows("llm_calls").append((
        start, trace_id, span_id, service, name, duration, is_error, facts.convention, facts.operation,
        facts.provider, facts.request_model, facts.response_model, facts.input_tokens, facts.output_tokens,
        facts.cached_input_tokens, facts.reasoning_tokens, price or 0.0, price is not None, facts.streaming,
        facts.ttft_ms, facts.finish_reasons, facts.error_type or ("_OTHER" if is_error else ""), facts.app,
        facts.department, facts.user_id, facts.session_id,
        "", "",  # Input, Output: kept empty; the API reads the text from the span (semconv.content)
        facts.tool_names, facts.tokens_estimated, facts.provider_raw, facts.request_model_raw,
    ))


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

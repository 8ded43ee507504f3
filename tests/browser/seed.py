"""Known traffic for the UI tests and screenshots, as OTLP/JSON bodies (what any OTel SDK sends).

Each conversation turn is one trace: an HTTP server span, a retrieval step and an OpenAI-style
chat span in the OTel GenAI convention, plus one log line per step carrying the trace id.
Everything is deterministic for a given seed and `now`.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

MODELS = [("gpt-4o-mini", "gpt-4o-mini-2024-07-18"), ("gpt-4o", "gpt-4o-2024-08-06"),
          ("acme-llm-1", "acme-llm-1")]  # acme-llm-1 has no known price: shows as unpriced
APPS = [("chatbot", "support", "cx"), ("rag-api", "search", "research")]
PROMPTS = ["How do I reset my password?", "What is the refund policy?", "Summarise my last invoice.",
           "Which plan includes SSO?", "Can I export my data as CSV?"]


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


@dataclass
class Turn:
    trace_id: str
    service: str
    session_id: str
    model: str
    input_tokens: int
    output_tokens: int
    error: bool
    start_ns: int
    duration_ms: float
    prompt: str = ""


@dataclass
class Seeded:
    turns: list[Turn] = field(default_factory=list)
    traces_body: dict[str, Any] = field(default_factory=dict)
    logs_body: dict[str, Any] = field(default_factory=dict)

    @property
    def llm_calls(self) -> int:
        return len(self.turns)

    @property
    def errors(self) -> int:
        return sum(t.error for t in self.turns)


def build(sessions: int = 6, turns_per_session: int = 3, *, span_minutes: float = 50.0, seed: int = 7,
          now_ns: int | None = None) -> Seeded:
    rng = random.Random(seed)
    now_ns = now_ns or time.time_ns()
    spans_by_service: dict[str, list[dict[str, Any]]] = {svc: [] for svc, _, _ in APPS}
    logs_by_service: dict[str, list[dict[str, Any]]] = {svc: [] for svc, _, _ in APPS}
    out = Seeded()
    count = sessions * turns_per_session
    for s in range(sessions):
        service, app, department = APPS[s % len(APPS)]
        session_id = f"sess-{s:03d}"
        user_id = f"user-{s % 4}"
        for t in range(turns_per_session):
            index = s * turns_per_session + t
            start = now_ns - int(span_minutes * 60e9 * (count - index) / (count + 1))
            request_model, response_model = MODELS[index % len(MODELS)]
            error = index % 7 == 3
            turn = _turn(rng, start, service, app, department, session_id, user_id, request_model,
                         response_model, error, spans_by_service[service], logs_by_service[service])
            out.turns.append(turn)
    out.traces_body = {"resourceSpans": [
        {"resource": {"attributes": [_attr("service.name", svc), _attr("deployment.environment", "test")]},
         "scopeSpans": [{"scope": {"name": "llmlens.tests.seed"}, "spans": spans}]}
        for svc, spans in spans_by_service.items() if spans]}
    out.logs_body = {"resourceLogs": [
        {"resource": {"attributes": [_attr("service.name", svc)]},
         "scopeLogs": [{"scope": {"name": "llmlens.tests.seed"}, "logRecords": logs}]}
        for svc, logs in logs_by_service.items() if logs]}
    return out


def _turn(rng: random.Random, start: int, service: str, app: str, department: str, session_id: str,
          user_id: str, request_model: str, response_model: str, error: bool,
          spans: list[dict[str, Any]], logs: list[dict[str, Any]]) -> Turn:
    trace_id = f"{rng.getrandbits(128):032x}"
    root_id, retrieve_id, chat_id = (f"{rng.getrandbits(64):016x}" for _ in range(3))
    retrieve_ms = rng.uniform(20, 120)
    chat_ms = rng.uniform(300, 2500)
    ttft_s = round(rng.uniform(0.08, 0.4), 3)
    input_tokens = rng.randint(80, 900)
    output_tokens = 0 if error else rng.randint(20, 400)
    total_ms = retrieve_ms + chat_ms + 15
    ms = 1_000_000
    prompt = rng.choice(PROMPTS)
    chat_start = start + int((retrieve_ms + 10) * ms)
    spans.append({
        "traceId": trace_id, "spanId": root_id, "name": "POST /chat", "kind": 2,
        "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + int(total_ms * ms)),
        "attributes": [_attr("http.request.method", "POST"), _attr("http.route", "/chat"),
                       _attr("http.response.status_code", 500 if error else 200)],
        "status": {"code": 2, "message": "upstream LLM failed"} if error else {"code": 1}})
    spans.append({
        "traceId": trace_id, "spanId": retrieve_id, "parentSpanId": root_id, "name": "retrieve documents",
        "kind": 1, "startTimeUnixNano": str(start + 5 * ms),
        "endTimeUnixNano": str(start + int((5 + retrieve_ms) * ms)),
        "attributes": [_attr("llmlens.span.kind", "retrieval"), _attr("retrieval.documents", 4)],
        "status": {"code": 1}})
    chat_attrs = [
        _attr("gen_ai.operation.name", "chat"), _attr("gen_ai.provider.name", "openai"),
        _attr("gen_ai.request.model", request_model), _attr("gen_ai.usage.input_tokens", input_tokens),
        _attr("gen_ai.request.stream", True), _attr("gen_ai.conversation.id", session_id),
        _attr("user.id", user_id), _attr("llmlens.app", app), _attr("llmlens.department", department),
        _attr("gen_ai.input.messages", json.dumps([{"role": "user", "parts": [{"type": "text", "content": prompt}]}])),
    ]
    if error:
        chat_attrs.append(_attr("error.type", "RateLimitError"))
    else:
        chat_attrs += [
            _attr("gen_ai.response.model", response_model), _attr("gen_ai.usage.output_tokens", output_tokens),
            _attr("gen_ai.response.finish_reasons", "stop"), _attr("gen_ai.response.time_to_first_chunk", ttft_s),
            _attr("gen_ai.output.messages", json.dumps([{"role": "assistant", "finish_reason": "stop", "parts": [
                {"type": "text", "content": f"Here is what I found about: {prompt.lower()}"}]}])),
        ]
    spans.append({
        "traceId": trace_id, "spanId": chat_id, "parentSpanId": root_id, "name": f"chat {request_model}",
        "kind": 3, "startTimeUnixNano": str(chat_start), "endTimeUnixNano": str(chat_start + int(chat_ms * ms)),
        "attributes": chat_attrs,
        "status": {"code": 2, "message": "429 rate_limit_exceeded"} if error else {"code": 0}})
    logs.append(_log(start + 2 * ms, trace_id, root_id, 9, "INFO", f"handling question in {session_id}"))
    logs.append(_log(chat_start + int(chat_ms * ms), trace_id, chat_id, 17 if error else 9,
                     "ERROR" if error else "INFO",
                     "LLM call failed: RateLimitError" if error else f"answered with {output_tokens} tokens"))
    return Turn(trace_id, service, session_id, request_model, input_tokens, output_tokens, error, start, total_ms,
                prompt)


def _log(ts: int, trace_id: str, span_id: str, severity: int, text: str, body: str) -> dict[str, Any]:
    return {"timeUnixNano": str(ts), "observedTimeUnixNano": str(ts), "severityNumber": severity,
            "severityText": text, "body": {"stringValue": body}, "traceId": trace_id, "spanId": span_id,
            "attributes": [_attr("logger.name", "app")]}


def post(base_url: str, seeded: Seeded) -> None:
    """Send the bodies as an OTel SDK would; a 2xx means stored (durable acknowledgement)."""
    for path, body in (("/v1/traces", seeded.traces_body), ("/v1/logs", seeded.logs_body)):
        response = httpx.post(base_url + path, content=json.dumps(body),
                              headers={"Content-Type": "application/json"}, timeout=60)
        response.raise_for_status()

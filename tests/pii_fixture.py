"""One PII fixture for every masking test: the same personal data in every place an OTLP sender
can put a string (span names, status messages, event and link attributes, trace state, resource
and scope attributes, score comments, log bodies, severity texts and attributes, metric
data-point and exemplar attributes, the user/session/department of an LLM call), beside the
infrastructure addresses that masking must keep.

Addresses are from the documentation ranges (RFC 5737): strings only, nothing is sent to them.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Exemplar, NumberDataPoint
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.integration.otlp_requests import (
    MS,
    key_values,
    llm_attrs,
    log_request,
    make_log,
    make_span,
    metrics_request,
    new_span_id,
    new_trace_id,
    trace_request,
)

EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"
API_KEY = "sk-proj-abcdefghijklmnopqrstuvwx12"
END_USER_IP = "203.0.113.77"  # the person using the app
PROXY_IP = "198.51.100.23"  # the load balancer in front of the app: the inbound span's peer
SERVER_IP = "192.0.2.10"  # a server the app calls: infrastructure
LOCAL_URL = "http://127.0.0.1:8700/api/chat"  # an outgoing call's URL: infrastructure
TEXT = f"contact {EMAIL} or {PHONE}, card {CARD}, key {API_KEY}"

# What must never be stored or answered, each by a distinctive part of it.
LEAKS = {
    "e-mail": "jane.doe@",
    "phone": "7946 0958",
    "card": "4111 1111",
    "API key": "abcdefghijklmnopqrstuvwx",
    "end user's address": END_USER_IP,
    "proxy (inbound peer) address": PROXY_IP,
}
MODEL = "gpt-4o-mini"
SERVICE = "pii-bot"
METRIC = "pii.requests"


def find_leaks(value: Any, path: str = "") -> list[str]:
    """Where in `value` (rows, JSON answers: nested dicts, lists, tuples, strings) PII is in clear."""
    if isinstance(value, str):
        return [f"{what} at {path or '.'}: {value[:160]!r}" for what, part in LEAKS.items() if part in value]
    if isinstance(value, dict):
        return [leak for k, v in value.items()
                for leak in find_leaks(k, f"{path}.key") + find_leaks(v, f"{path}.{k}")]
    if isinstance(value, list | tuple):
        return [leak for i, v in enumerate(value) for leak in find_leaks(v, f"{path}[{i}]")]
    return []


def traces(start_ns: int) -> tuple[Any, bytes, bytes]:
    """(ExportTraceServiceRequest, trace id, LLM span id): an inbound request span, the LLM call
    under it with a score event, and a span linking to the call."""
    trace_id, root_id, llm_id = new_trace_id(), new_span_id(), new_span_id()
    root = make_span(
        f"POST /chat for {EMAIL}", trace_id=trace_id, span_id=root_id, start_ns=start_ns, duration_ms=40,
        kind=Span.SPAN_KIND_SERVER, error=True,
        attrs={
            "client.address": END_USER_IP,
            "http.request.header.x-forwarded-for": [f"{END_USER_IP}, {PROXY_IP}"],
            "network.peer.address": PROXY_IP,  # inbound: the peer is the caller
            "server.address": SERVER_IP,
            "url.full": f"http://{SERVER_IP}:8000/chat?email={EMAIL}",
            "user.id": EMAIL,
        },
    )
    root.status.message = TEXT
    root.trace_state = f"acme={EMAIL}"
    root.events.add(time_unix_nano=start_ns + MS, name="exception",
                    attributes=key_values({"exception.type": "ValueError", "exception.message": TEXT}))
    llm = make_span(
        f"chat {MODEL}", trace_id=trace_id, span_id=llm_id, parent=root_id, start_ns=start_ns + 2 * MS,
        duration_ms=30, kind=Span.SPAN_KIND_CLIENT,
        attrs={
            **llm_attrs(MODEL, 1000, 200),
            "user.id": EMAIL,
            "session.id": f"chat with {PHONE}",
            "llmlens.department": f"sales ({EMAIL})",
            "gen_ai.prompt": TEXT,
            "server.address": SERVER_IP,  # where the call went: kept
            "net.peer.ip": SERVER_IP,  # outbound: the peer is a server
            "http.url": LOCAL_URL,
        },
    )
    llm.events.add(time_unix_nano=start_ns + 20 * MS, name="gen_ai.evaluation.result", attributes=key_values({
        "gen_ai.evaluation.name": "helpfulness",
        "gen_ai.evaluation.score.value": 0.25,
        "gen_ai.evaluation.score.label": f"bad for {EMAIL}",
        "gen_ai.evaluation.explanation": TEXT,
    }))
    follower = make_span("follow-up", trace_id=trace_id, parent=root_id, start_ns=start_ns + 35 * MS)
    follower.links.add(trace_id=trace_id, span_id=llm_id, trace_state=f"acme={PHONE}",
                       attributes=key_values({"reason": TEXT}))
    request = trace_request([root, llm, follower], service=SERVICE, scope=f"scope of {EMAIL}",
                            resource={"deployment.owner": TEXT, "host.ip": [SERVER_IP]})
    return request, trace_id, llm_id


def logs(time_ns: int, trace_id: bytes = b"", span_id: bytes = b"") -> Any:
    record: LogRecord = make_log(
        f"{TEXT}; called {LOCAL_URL}", severity=13, severity_text=f"WARN {EMAIL}", time_ns=time_ns,
        trace_id=trace_id, span_id=span_id,
        attrs={"user.email": EMAIL, "client.address": END_USER_IP, "url.full": LOCAL_URL},
    )
    request = log_request([record], service=SERVICE)
    resource = request.resource_logs[0].resource
    resource.attributes.extend(key_values({"deployment.owner": TEXT}))
    request.resource_logs[0].scope_logs[0].scope.attributes.extend(key_values({"team.contact": EMAIL}))
    return request


def metrics(time_ns: int) -> Any:
    request = metrics_request(service=SERVICE)
    request.resource_metrics[0].resource.attributes.extend(key_values({"deployment.owner": TEXT}))
    metric = request.resource_metrics[0].scope_metrics[0].metrics.add()
    metric.name = METRIC
    metric.description = f"requests; owner {EMAIL}"
    metric.gauge.data_points.append(NumberDataPoint(
        time_unix_nano=time_ns, as_double=3.0,
        attributes=key_values({"user.email": EMAIL, "client.address": END_USER_IP, "server.address": SERVER_IP}),
        exemplars=[Exemplar(time_unix_nano=time_ns, as_double=3.0,
                            filtered_attributes=key_values({"user.email": EMAIL}))],
    ))
    return request

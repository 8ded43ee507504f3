"""A 2xx means stored, counted once: exports resent to a real `llmlens serve` (as exporters do after
a timeout or a 503) leave every count, sum and list equal to what was sent once, and equal to the
trace detail."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.integration.otlp_requests import (
    llm_attrs,
    log_request,
    make_log,
    make_span,
    metrics_request,
    new_trace_id,
    post,
    trace_request,
)


def get(server, path: str, **params: Any) -> dict[str, Any]:
    response = httpx.get(server.url + path, params=params, timeout=30)
    response.raise_for_status()
    return response.json()


def a_trace(service: str) -> tuple[str, list]:
    trace_id = new_trace_id()
    now = time.time_ns()
    root = make_span("handle-request", trace_id=trace_id, start_ns=now, duration_ms=900)
    chats = [make_span("chat gpt-4o-mini", trace_id=trace_id, parent=root.span_id, start_ns=now + i * 1000,
                       duration_ms=300, attrs=llm_attrs("gpt-4o-mini", 100, 20)) for i in range(3)]
    return trace_id.hex(), [root, *chats]


def test_resent_exports_count_once_everywhere(llmlens_server) -> None:
    service = "resend-svc"
    trace_id, spans = a_trace(service)
    body = trace_request(spans, service=service).SerializeToString()
    for _ in range(3):  # the original and two resends
        assert post(llmlens_server.url, "traces", body).status_code == 200
    # and a resend split differently: the root alone, then everything again
    assert post(llmlens_server.url, "traces", trace_request(spans[:1], service=service)).status_code == 200
    assert post(llmlens_server.url, "traces", trace_request(spans, service=service)).status_code == 200

    detail = get(llmlens_server, f"/api/v1/traces/{trace_id}")
    assert len(detail["spans"]) == 4
    listed = [t for t in get(llmlens_server, "/api/v1/traces", service=service, start="-1h")["items"]
              if t["trace_id"] == trace_id]
    assert len(listed) == 1
    assert (listed[0]["span_count"], listed[0]["llm_calls"]) == (4, 3)
    assert (listed[0]["input_tokens"], listed[0]["output_tokens"]) == (300, 60)

    stats = get(llmlens_server, "/api/v1/llm/stats", start="-1h", group_by="service")
    group = next(g for g in stats["groups"] if g["service"] == service)
    assert group["requests"] == 3
    assert (group["input_tokens"], group["output_tokens"]) == (300, 60)
    single_cost = sum(s["llm"]["cost_usd"] for s in detail["spans"] if s.get("llm"))
    assert group["cost_usd"] == pytest.approx(single_cost, rel=1e-9)


def test_resent_log_and_metric_exports_count_once(llmlens_server) -> None:
    tag = new_trace_id().hex()
    logs = log_request([make_log(f"{tag} {i}") for i in range(5)], service="resend-logs")
    metrics = metrics_request(service="resend-metrics")
    metric = metrics.resource_metrics[0].scope_metrics[0].metrics.add(name=f"resend.{tag}")
    metric.gauge.data_points.add(time_unix_nano=time.time_ns(), as_double=2.0)
    for _ in range(2):
        assert post(llmlens_server.url, "logs", logs).status_code == 200
        assert post(llmlens_server.url, "metrics", metrics).status_code == 200
    found = get(llmlens_server, "/api/v1/logs", start="-1h", q=tag, service="resend-logs")
    assert len(found["items"]) == 5
    series = get(llmlens_server, f"/api/v1/metrics/resend.{tag}/series", start="-1h")
    points = [p for s in series["series"] for p in s["points"]]
    assert len(points) == 1

"""The SDK's masking with the same PII fixture as the server's: every string of a span (name,
attributes, events, links, status), addresses by role (a URL's host and servers' addresses kept,
end users' replaced), and log lines that name a URL."""

from __future__ import annotations

import io
import json
import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

import llmlens
from llmlens.pii import Redactor
from llmlens.sdk.masking import mask_span
from tests import pii_fixture as pii


def _finished_spans(build) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("tests.sdk"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_every_string_of_a_span_is_masked_and_infrastructure_kept() -> None:
    def build(tracer) -> None:
        with tracer.start_as_current_span(f"chat {pii.MODEL}", kind=SpanKind.CLIENT) as call:
            call.set_attributes({"user.id": pii.EMAIL, "gen_ai.prompt": pii.TEXT, "http.url": pii.LOCAL_URL,
                                 "server.address": pii.SERVER_IP, "net.peer.ip": pii.SERVER_IP})
            call.add_event("exception", {"exception.message": pii.TEXT})
            call.set_status(Status(StatusCode.ERROR, pii.TEXT))
            context = call.get_span_context()
        with tracer.start_as_current_span(f"POST /chat for {pii.EMAIL}", kind=SpanKind.SERVER,
                                          links=[Link(context, {"reason": pii.TEXT})]) as inbound:
            inbound.set_attributes({"client.address": pii.END_USER_IP, "network.peer.address": pii.PROXY_IP,
                                    "http.request.header.x-forwarded-for": (f"{pii.END_USER_IP}, {pii.PROXY_IP}",),
                                    "server.address": pii.SERVER_IP})

    spans = _finished_spans(build)
    assert pii.find_leaks([(s.name, dict(s.attributes), s.status.description) for s in spans]), "fixture not used"
    masked = [mask_span(Redactor(), s) for s in spans]
    flat = [(s.name, dict(s.attributes), s.status.description, [(e.name, dict(e.attributes)) for e in s.events],
             [dict(link.attributes) for link in s.links]) for s in masked]
    assert pii.find_leaks(flat) == []
    call, inbound = masked
    assert call.attributes["http.url"] == pii.LOCAL_URL
    assert call.attributes["server.address"] == call.attributes["net.peer.ip"] == pii.SERVER_IP
    assert call.status.description == "contact <EMAIL> or <PHONE>, card <CREDIT_CARD>, key <API_KEY>"
    assert inbound.name == "POST /chat for <EMAIL>"
    assert inbound.attributes["client.address"] == inbound.attributes["network.peer.address"] == "<IP_ADDRESS>"
    assert inbound.attributes["http.request.header.x-forwarded-for"] == ("<IP_ADDRESS>",)
    assert inbound.attributes["server.address"] == pii.SERVER_IP
    assert inbound.links[0].context == call.context


def test_exported_spans_keep_the_url_host(sdk, receiver) -> None:
    sdk()
    with llmlens.span("outgoing", attributes={"http.url": pii.LOCAL_URL, "client.address": pii.END_USER_IP,
                                              "note": f"from {pii.END_USER_IP}"}):
        pass
    llmlens.shutdown()
    attrs = receiver.spans_named("outgoing")[0].attributes
    assert attrs["http.url"] == pii.LOCAL_URL
    assert attrs["client.address"] == "<IP_ADDRESS>"
    assert attrs["note"] == "from <IP_ADDRESS>"


def test_log_lines_keep_urls_and_mask_end_users_addresses(sdk, receiver) -> None:
    sdk()
    out = io.StringIO()
    llmlens.configure_logging(stream=out)
    try:
        line = f'HTTP Request: POST {pii.LOCAL_URL} "HTTP/1.1 200 OK" for {pii.END_USER_IP}'
        logging.getLogger("httpx").info(line)
        llmlens.shutdown()
    finally:
        logging.getLogger().handlers.clear()
    expected = f'HTTP Request: POST {pii.LOCAL_URL} "HTTP/1.1 200 OK" for <IP_ADDRESS>'
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    assert [line["event"] for line in lines if line["logger"] == "httpx"] == [expected]
    assert any(expected in str(record.body) for record in receiver.logs), [r.body for r in receiver.logs]

"""`--mask-pii` at ingest: the one PII fixture (tests/pii_fixture.py) through both span decoders,
logs and metrics. Without masking it reaches every path in clear (so each check below can fail);
with masking no row of any table holds it, infrastructure addresses stay, and LLM calls keep
their prices and agree with their spans."""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa
import pytest

from llmlens.pii import Redactor
from llmlens.server.decode import spans as span_decoder
from llmlens.server.normalise import (
    CostModel,
    build_cost_model,
    masking,
    normalise_logs,
    normalise_metrics,
    normalise_spans,
    traces,
)
from llmlens.server.store.batch import Batch
from tests import pii_fixture as pii
from tests.integration.otlp_requests import any_value

NOW = time.time_ns()
PLAIN = build_cost_model()
MASKED = build_cost_model(mask_pii=True)

# Every place a sender's string is stored, each filled with PII by the fixture.
PATHS = [
    ("otel_traces", "SpanName"), ("otel_traces", "StatusMessage"), ("otel_traces", "TraceState"),
    ("otel_traces", "ResourceAttributes"), ("otel_traces", "ScopeName"), ("otel_traces", "SpanAttributes"),
    ("otel_traces", "Events.Attributes"), ("otel_traces", "Links.TraceState"), ("otel_traces", "Links.Attributes"),
    ("llm_calls", "UserId"), ("llm_calls", "SessionId"), ("llm_calls", "Department"),
    ("llm_scores", "Label"), ("llm_scores", "Comment"),
    ("trace_index", "RootName"),
    ("otel_logs", "Body"), ("otel_logs", "SeverityText"), ("otel_logs", "ResourceAttributes"),
    ("otel_logs", "ScopeAttributes"), ("otel_logs", "LogAttributes"),
    ("otel_metrics_gauge", "ResourceAttributes"), ("otel_metrics_gauge", "MetricDescription"),
    ("otel_metrics_gauge", "Attributes"), ("otel_metrics_gauge", "Exemplars.FilteredAttributes"),
]


def build(cost: CostModel, decoder: str = "c") -> dict[str, list[dict[str, Any]]]:
    """Every table's rows, as stored (frozen batches, derivations included), from the fixture."""
    request, trace_id, span_id = pii.traces(NOW)
    if decoder == "c":
        resources = span_decoder.decode(request.SerializeToString())
        assert resources is not None, "the C span decoder declined the fixture (or is not built)"
    else:
        resources = span_decoder.from_message(request)
    batches = [normalise_spans(resources, cost), normalise_logs(pii.logs(NOW, trace_id, span_id), cost),
               normalise_metrics(pii.metrics(NOW), cost)]
    tables: dict[str, list[dict[str, Any]]] = {}
    for batch in batches:
        for name, table in batch.freeze().arrow.items():
            tables.setdefault(name, []).extend(_rows(table))
    return tables


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    for row in rows:  # maps come back as lists of pairs: dicts read better in failures
        for name, value in row.items():
            if isinstance(value, list) and value and isinstance(value[0], tuple):
                row[name] = dict(value)
            elif isinstance(value, list) and value and isinstance(value[0], list):
                row[name] = [dict(v) if v and isinstance(v[0], tuple) else v for v in value]
    return rows


def column(tables: dict[str, list[dict[str, Any]]], table: str, name: str) -> list[Any]:
    assert tables.get(table), f"no {table} rows"
    return [row[name] for row in tables[table]]


@pytest.fixture(scope="module", params=["c", "protobuf"])
def masked(request: pytest.FixtureRequest) -> dict[str, list[dict[str, Any]]]:
    return build(MASKED, request.param)


@pytest.fixture(scope="module")
def plain() -> dict[str, list[dict[str, Any]]]:
    return build(PLAIN)


@pytest.mark.parametrize(("table", "name"), PATHS, ids=lambda p: p)
def test_each_path_is_masked(plain, masked, table: str, name: str) -> None:
    assert pii.find_leaks(column(plain, table, name)), f"the fixture puts no PII in {table}.{name}"
    assert pii.find_leaks(column(masked, table, name)) == []


def test_no_table_holds_pii(masked) -> None:
    tables = {"otel_traces", "llm_calls", "llm_scores", "trace_index", "otel_logs", "otel_metrics_gauge"}
    assert set(masked) >= tables
    assert pii.find_leaks(masked) == []


def _span(tables, name: str) -> dict[str, Any]:
    return next(row for row in tables["otel_traces"] if row["SpanName"] == name)


def test_infrastructure_addresses_are_kept(masked) -> None:
    call = _span(masked, f"chat {pii.MODEL}")["SpanAttributes"]
    assert call["server.address"] == pii.SERVER_IP
    assert call["net.peer.ip"] == pii.SERVER_IP  # outbound: the peer is the server called
    assert call["http.url"] == pii.LOCAL_URL
    assert call["gen_ai.prompt"] == "contact <EMAIL> or <PHONE>, card <CREDIT_CARD>, key <API_KEY>"
    resource = masked["otel_traces"][0]["ResourceAttributes"]
    assert resource["host.ip"] == f'["{pii.SERVER_IP}"]'
    log = masked["otel_logs"][0]
    assert log["LogAttributes"]["url.full"] == pii.LOCAL_URL
    assert log["Body"].endswith(f"called {pii.LOCAL_URL}")
    assert masked["otel_metrics_gauge"][0]["Attributes"]["server.address"] == pii.SERVER_IP


def test_end_users_addresses_are_replaced_whatever_the_key_or_range(masked) -> None:
    root = _span(masked, "POST /chat for <EMAIL>")
    assert root["SpanKind"] == "Server"
    attrs = root["SpanAttributes"]
    assert attrs["client.address"] == "<IP_ADDRESS>"
    assert attrs["http.request.header.x-forwarded-for"] == "<IP_ADDRESS>"
    assert attrs["network.peer.address"] == "<IP_ADDRESS>"  # inbound: the peer is the caller
    assert attrs["server.address"] == pii.SERVER_IP
    assert attrs["url.full"] == f"http://{pii.SERVER_IP}:8000/chat?email=<EMAIL>"
    assert masked["otel_logs"][0]["LogAttributes"]["client.address"] == "<IP_ADDRESS>"
    assert masked["otel_metrics_gauge"][0]["Attributes"]["client.address"] == "<IP_ADDRESS>"


def test_llm_calls_agree_with_their_spans_and_keep_their_prices(plain, masked) -> None:
    (call,) = masked["llm_calls"]
    (unmasked,) = plain["llm_calls"]
    span = _span(masked, f"chat {pii.MODEL}")["SpanAttributes"]
    assert call["UserId"] == span["user.id"] == "<EMAIL>"
    assert call["SessionId"] == span["session.id"] == "chat with <PHONE>"
    assert call["Department"] == span["llmlens.department"] == "sales (<EMAIL>)"
    assert call["RequestModel"] == pii.MODEL and call["Priced"]
    assert call["CostUsd"] == unmasked["CostUsd"] > 0
    assert (call["InputTokens"], call["OutputTokens"]) == (1000, 200)
    (score,) = masked["llm_scores"]
    assert score["Comment"] == "contact <EMAIL> or <PHONE>, card <CREDIT_CARD>, key <API_KEY>"
    assert (score["TraceId"], score["SpanId"]) == (call["TraceId"], call["SpanId"])  # ids are not text


def test_ids_are_never_masked() -> None:
    """Ids are not text: a span id of 16 digits passing Luhn stays, in the span and in the score
    that points at it; in free text, a hex id opening with such digits is not a card number."""
    request, _, _ = pii.traces(NOW)
    span = request.resource_spans[0].scope_spans[0].spans[1]
    span.span_id = bytes.fromhex("4111111111111111")
    span.attributes.add(key="request.trace", value=any_value("4111111111111111abcdef0123456789"))
    batch = normalise_spans(span_decoder.from_message(request), MASKED).freeze()
    (row,) = [r for r in _rows(batch.arrow["otel_traces"]) if r["SpanId"] == "4111111111111111"]
    assert row["SpanAttributes"]["request.trace"] == "4111111111111111abcdef0123456789"
    assert _rows(batch.arrow["llm_scores"])[0]["SpanId"] == "4111111111111111"


def test_masking_off_never_calls_in(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: Any) -> None:
        raise AssertionError("mask_batch called with masking off")

    monkeypatch.setattr(traces, "mask_batch", fail)
    request, _, _ = pii.traces(NOW)
    batch = normalise_spans(span_decoder.from_message(request), PLAIN)
    assert batch.accepted == 3


def test_every_text_column_is_planned() -> None:
    """A new string column is masked unless it is named as not text (ids and enums)."""
    from llmlens.server.store.columns import TABLES

    for table, columns in TABLES.items():
        planned = {name for _, name, _ in masking.PLANS[table]}
        for name, kind in columns:
            is_text = kind in (pa.string(), pa.list_(pa.string())) or pa.types.is_map(kind) or (
                pa.types.is_list(kind) and pa.types.is_map(kind.value_type))
            if is_text:
                assert (name in planned) != (name in masking.NOT_TEXT), f"{table}.{name}"


def test_drop_mode_leaves_attributes_out_and_keeps_the_maps_aligned() -> None:
    cost = CostModel(price=PLAIN.price, mask=Redactor(mode="drop"))
    batch: Batch = normalise_logs(pii.logs(NOW), cost)
    (row,) = _rows(batch.freeze().arrow["otel_logs"])
    assert row["LogAttributes"] == {"url.full": pii.LOCAL_URL}  # the e-mail and the client's address are out
    assert row["ResourceAttributes"] == {"service.name": pii.SERVICE}
    assert pii.find_leaks(row) == []

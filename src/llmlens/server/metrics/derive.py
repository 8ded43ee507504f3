"""The span metrics' derivation: what one batch adds to every /metrics family, computed where the
batch is built (an ingest worker, see store/batch.py) and merged after its commit.

Labels are the values known at ingest: the span's and its resource's attributes, and the LLM
facts normalised from them (with app and department inherited from the spans of the same request).
A model call still lacking app or department whose trace's root span is not in the batch (its
request span may come in a later export) is not counted here: it travels to the server process and
waits there for its trace's app and department (context_wait.py), as the store's view reads them from
spans exported later (query/call_context.py).

Service graph: database client spans and root server spans make their edges here at once; the
other client and server spans travel as halves to the one pairing buffer in the server process
(service_graph.py), since the other half of an edge often arrives in another request.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from llmlens.semconv import MODEL_OPERATIONS
from llmlens.server.metrics import families as f
from llmlens.server.metrics.batch_groups import (
    Encoded,
    Found,
    Groups,
    group_codes,
    group_rows,
    histograms,
    lookup,
    name_exemplars,
    sums,
    whole,
)
from llmlens.server.metrics.deltas import BatchMetrics, HalfChunk, HistogramDelta, Labels, WaitingCalls
from llmlens.server.store import trace_index
from llmlens.server.store.batch import Batch

NAME = "metrics"  # batch.derived[NAME]

SPAN_KINDS = {"Unspecified": "SPAN_KIND_UNSPECIFIED", "Internal": "SPAN_KIND_INTERNAL",
              "Server": "SPAN_KIND_SERVER", "Client": "SPAN_KIND_CLIENT", "Producer": "SPAN_KIND_PRODUCER",
              "Consumer": "SPAN_KIND_CONSUMER"}
STATUS_CODES = {"Unset": "STATUS_CODE_UNSET", "Ok": "STATUS_CODE_OK", "Error": "STATUS_CODE_ERROR"}

# Tempo's service-graph attributes. A client span with a database attribute is a database call (its
# edge completes at once); what names a database; what names the peer of a client span nobody
# answered (Tempo's peer attributes, then the GenAI provider or the server's address); what names the
# caller of a root server span (else "user").
DATABASE_ATTRIBUTES = ("db.namespace", "db.name", "db.system", "db.system.name")
DATABASE_NAMES = ("peer.service", "server.address", "network.peer.address", *DATABASE_ATTRIBUTES)
PEER_NAMES = ("peer.service", "db.name", "db.system", "db.system.name", "gen_ai.provider.name", "gen_ai.system",
              "server.address")
CALLER_NAMES = ("peer.service", "db.name", "db.system", "db.system.name")
USER = "user"
_LOOKED_UP = (*dict.fromkeys((*DATABASE_NAMES, *PEER_NAMES, "network.peer.port")),)

_BOUNDS = {family.name: np.array(family.buckets) for family in f.REGISTERED if family.kind == "histogram"}


def derive(batch: Batch) -> None:
    """The batch's derivation: its metrics deltas in `batch.derived["metrics"]`."""
    out = BatchMetrics()
    spans = batch.arrow.get("otel_traces")
    found: Found | None = None
    if spans is not None and spans.num_rows:
        columns = _SpanColumns.of(spans)
        _span_metrics(spans, columns, out)
        if columns.is_client.any() or columns.is_server.any():
            found = lookup(spans["SpanAttributes"], _LOOKED_UP)
            _service_graph(spans, columns, found, out)
    # The batch's trace_index rows (a derivation run before this one; built here if it was not).
    index = batch.arrow.get(trace_index.TABLE)
    index = trace_index.of_batch(batch.arrow) if index is None else index
    held = None
    calls = batch.arrow.get("llm_calls")
    if calls is not None and calls.num_rows:
        addresses = _server_addresses(calls, spans, found)
        waiting = _lacking_context(calls, index)
        if waiting.any():
            held = _held(calls, addresses, np.flatnonzero(waiting))
            counted = np.flatnonzero(~waiting)
            calls = calls.take(counted)
            addresses = Encoded(addresses.codes[counted], addresses.values)
        if calls.num_rows:
            llm_metrics(calls, addresses, out)
    context = _trace_context(index)  # calls of these traces may be waiting (from this batch or before)
    if held is not None or context is not None:
        out.waiting = WaitingCalls(held, context)
    scores = batch.arrow.get("llm_scores")
    if scores is not None and scores.num_rows:
        _scores(scores, out)
    if out:
        batch.derived[NAME] = out


def _seconds(durations_ns: pa.ChunkedArray) -> np.ndarray:
    return whole(durations_ns).to_numpy(zero_copy_only=False) / 1e9


@dataclass
class _SpanColumns:
    """What both the span metrics and the service graph read, computed once: the spans grouped by
    (service, name, kind, status), and per row what the service graph needs."""

    groups: Groups  # keys: (service, span name, kind, status) as stored
    services: Encoded
    seconds: np.ndarray
    failed: np.ndarray  # status ERROR
    is_client: np.ndarray  # CLIENT or PRODUCER
    is_server: np.ndarray  # SERVER or CONSUMER
    messaging: np.ndarray  # PRODUCER or CONSUMER

    @classmethod
    def of(cls, spans: pa.Table) -> _SpanColumns:
        groups = group_rows([spans["ServiceName"], spans["SpanName"], spans["SpanKind"], spans["StatusCode"]])
        services: dict[str, int] = {}
        service_of = np.array([services.setdefault(key[0], len(services)) for key in groups.keys], dtype=np.intp)

        def per_row(index: int, *values: str) -> np.ndarray:  # decided per group, spread to the rows
            return np.array([key[index] in values for key in groups.keys], dtype=bool)[groups.ids]

        return cls(groups, Encoded(service_of[groups.ids], list(services)), _seconds(spans["Duration"]),
                   per_row(3, "Error"), per_row(2, "Client", "Producer"), per_row(2, "Server", "Consumer"),
                   per_row(2, "Producer", "Consumer"))


# --- RED ---------------------------------------------------------------------------------------------

def _span_metrics(spans: pa.Table, c: _SpanColumns, out: BatchMetrics) -> None:
    latency = histograms(c.groups, c.seconds, _BOUNDS[f.SPAN_LATENCY.name])
    name_exemplars([latency], spans["TraceId"], spans["SpanId"])
    calls, hist = out.counter(f.SPAN_CALLS.name), out.histogram(f.SPAN_LATENCY.name)
    for g, (service, name, kind, status) in enumerate(c.groups.keys):
        labels = (service, name, SPAN_KINDS.get(kind, "SPAN_KIND_UNSPECIFIED"), STATUS_CODES.get(status, "STATUS_CODE_UNSET"))
        delta = latency[g]
        calls[labels] = calls.get(labels, 0.0) + float(sum(delta.counts))
        merge_histogram(hist, labels, delta)


# --- service graph -----------------------------------------------------------------------------------

def _service_graph(spans: pa.Table, c: _SpanColumns, found: Found, out: BatchMetrics) -> None:
    is_root = pc.binary_length(whole(spans["ParentSpanId"])).to_numpy(zero_copy_only=False) == 0
    database = found.any_of(DATABASE_ATTRIBUTES)
    rows = np.flatnonzero(c.is_client & database)
    if rows.size:
        servers = _database_names(found, rows)
        _immediate_edges(Encoded(c.services.codes[rows], c.services.values), servers, "database", c, rows, out)
    rows = np.flatnonzero(c.is_server & is_root)
    if rows.size:
        callers = found.names_of(found.first_of(CALLER_NAMES, rows), USER)
        _immediate_edges(callers, Encoded(c.services.codes[rows], c.services.values), "virtual_node", c, rows, out)

    rows = np.flatnonzero(c.is_client & ~database)
    if rows.size:
        out.clients = _halves(spans["TraceId"], spans["SpanId"], rows, found.names_of(found.first_of(PEER_NAMES, rows), ""),
                              c)
    rows = np.flatnonzero(c.is_server & ~is_root)
    if rows.size:
        out.servers = _halves(spans["TraceId"], spans["ParentSpanId"], rows,
                              Encoded(np.zeros(rows.size, dtype=np.intp), [""]), c)


def _database_names(found: Found, rows: np.ndarray) -> Encoded:
    """What names the database a client span calls, as Tempo: peer.service, server.address,
    network.peer.address[:network.peer.port], then the database attribute itself. (Database calls
    are a few of the spans: their names are built in Python.)"""
    def strings(names: Sequence[str]) -> list[str]:
        return [found.values[code] if code >= 0 else "" for code in found.first_of(names, rows).tolist()]

    address = [f"{a}:{p}" if a and p else a for a, p in zip(strings(("network.peer.address",)),
                                                           strings(("network.peer.port",)), strict=True)]
    chosen = [a or b or d for a, b, d in zip(strings(("peer.service", "server.address")), address,
                                             strings(DATABASE_ATTRIBUTES), strict=True)]
    values = list(dict.fromkeys(chosen))
    index = {v: i for i, v in enumerate(values)}
    return Encoded(np.array([index[v] for v in chosen], dtype=np.intp), values)


def _halves(trace_ids: pa.ChunkedArray, span_ids: pa.ChunkedArray, rows: np.ndarray, peers: Encoded,
            c: _SpanColumns) -> HalfChunk:
    """The spans at `rows` as halves waiting for their other half, keyed by trace id + `span_ids`
    (their own span ids for clients, their parents' for servers)."""
    keys = pc.binary_join_element_wise(whole(trace_ids), whole(span_ids), "").take(pa.array(rows)).to_pylist()
    return HalfChunk(keys=keys, service=c.services.codes[rows].astype(np.int32), services=c.services.values,
                     peer=peers.codes.astype(np.int32), peers=peers.values, messaging=c.messaging[rows],
                     failed=c.failed[rows], seconds=c.seconds[rows])


def _immediate_edges(clients: Encoded, servers: Encoded, connection_type: str, c: _SpanColumns, rows: np.ndarray,
                     out: BatchMetrics) -> None:
    """Edges known from one span each (the spans at `rows`): both latencies are that span's."""
    ids, first = group_codes(clients.codes, servers.codes)
    groups = Groups(ids, [(clients.values[clients.codes[r]], servers.values[servers.codes[r]]) for r in first.tolist()])
    latency = histograms(groups, c.seconds[rows], _BOUNDS[f.EDGE_SERVER_SECONDS.name], exemplars=False)
    failures = sums(groups, c.failed[rows].astype(np.float64))
    for g, (client, server) in enumerate(groups.keys):
        delta = latency[g]
        add_edge(out, (client, server, connection_type), float(sum(delta.counts)), float(failures[g]), delta,
                 HistogramDelta(list(delta.counts), delta.total))


def add_edge(out: BatchMetrics, labels: Labels, requests: float, failed: float, server: HistogramDelta,
             client: HistogramDelta) -> None:
    _add(out.counter(f.EDGE_REQUESTS.name), labels, requests)
    if failed:
        _add(out.counter(f.EDGE_FAILED.name), labels, failed)
    merge_histogram(out.histogram(f.EDGE_SERVER_SECONDS.name), labels, server)
    merge_histogram(out.histogram(f.EDGE_CLIENT_SECONDS.name), labels, client)


# --- LLM calls: GenAI and llm_* -----------------------------------------------------------------------

# What a call waiting for its context keeps (context_wait.py counts it later with llm_metrics).
WAITING_COLUMNS = ("TraceId", "SpanId", "ServiceName", "Duration", "Operation", "Provider", "RequestModel",
                   "ResponseModel", "InputTokens", "OutputTokens", "CostUsd", "Priced", "TtftMs", "ErrorType",
                   "App", "Department")
ADDRESS = "ServerAddress"  # the waiting calls' server.address, read from their spans here


@functools.cache
def _model_operations() -> pa.Array:
    return pa.array(MODEL_OPERATIONS)  # on first use: see trace_index._context_keys


def _lacking_context(calls: pa.Table, index: pa.Table | None) -> np.ndarray:
    """Per call: a model call without app or department whose trace's root span is not in the batch.
    (A span ends before its parent, and an SDK exports spans as they end: with the root here, the
    call's ancestors are here too, and the normaliser gave the call theirs.)"""
    model = pc.is_in(calls["Operation"], value_set=_model_operations())
    lacking = pc.or_(pc.equal(calls["App"], ""), pc.equal(calls["Department"], ""))
    candidates = pc.and_(model, lacking)
    if index is not None and pc.any(candidates).as_py():
        rooted = index["TraceId"].filter(_rooted(index))
        candidates = pc.and_(candidates, pc.invert(pc.is_in(calls["TraceId"], value_set=rooted)))
    return whole(candidates).to_numpy(zero_copy_only=False)


def _rooted(index: pa.Table) -> pa.ChunkedArray:
    return pc.not_equal(pc.cast(index["RootStart"], pa.int64()), trace_index.NO_ROOT_NS)


def _held(calls: pa.Table, addresses: Encoded, rows: np.ndarray) -> pa.Table:
    held = calls.select(list(WAITING_COLUMNS)).take(rows)
    return held.append_column(ADDRESS, pa.array([addresses.values[c] for c in addresses.codes[rows].tolist()],
                                                pa.string()))


def _trace_context(index: pa.Table | None) -> pa.Table | None:
    """(TraceId, App, Department, Rooted) of the batch's traces whose spans set app or department, or
    whose root span is in the batch (no later export is expected to add to them), as trace_index has
    them."""
    if index is None or not index.num_rows:
        return None
    rooted = _rooted(index)
    some = pc.or_(pc.or_(pc.not_equal(index["App"], ""), pc.not_equal(index["Department"], "")), rooted)
    if not pc.any(some).as_py():
        return None
    return index.select(["TraceId", "App", "Department"]).append_column("Rooted", rooted).filter(some)


def addresses_column(calls: pa.Table) -> Encoded:
    """The server addresses of calls that waited (their ADDRESS column)."""
    encoded = whole(calls[ADDRESS]).dictionary_encode()
    return Encoded(encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp), encoded.dictionary.to_pylist())


def llm_metrics(calls: pa.Table, addresses: Encoded, out: BatchMetrics) -> None:
    """The llm_* and GenAI families' deltas of `calls`, `addresses` their spans' server.address."""
    groups = group_rows([calls["Operation"], calls["Provider"], calls["RequestModel"], calls["ResponseModel"],
                         calls["ErrorType"], calls["ServiceName"], calls["App"], calls["Department"]])
    if not any(key[0] in MODEL_OPERATIONS for key in groups.keys):
        return  # the SDK's families count model calls only (not tool or agent steps): so do these
    groups = _with_server_address(groups, addresses)
    seconds = _seconds(calls["Duration"])
    ttft = whole(calls["TtftMs"]).to_numpy(zero_copy_only=False) / 1000.0  # NaN where not streamed
    inputs = whole(calls["InputTokens"]).to_numpy().astype(np.float64)
    outputs = whole(calls["OutputTokens"]).to_numpy().astype(np.float64)
    ok = np.array([not key[4] for key in groups.keys], dtype=bool)[groups.ids]  # no error type
    unpriced = ok & ~whole(calls["Priced"]).to_numpy(zero_copy_only=False)
    per_group = {  # the GenAI durations are folded from the llm_* ones (their bounds are a prefix)
        f.LLM_DURATION.name: histograms(groups, seconds, _BOUNDS[f.LLM_DURATION.name]),
        f.LLM_TTFT.name: histograms(groups, ttft, _BOUNDS[f.LLM_TTFT.name], rows=np.flatnonzero(~np.isnan(ttft))),
        # Exemplars lead from latency to a trace; token counts go without (cheaper, and no one asks).
        "input": histograms(groups, inputs, _BOUNDS[f.GENAI_TOKENS.name], rows=np.flatnonzero(inputs > 0),
                            exemplars=False),
        "output": histograms(groups, outputs, _BOUNDS[f.GENAI_TOKENS.name], rows=np.flatnonzero(outputs > 0),
                             exemplars=False),
    }
    name_exemplars(list(per_group.values()), calls["TraceId"], calls["SpanId"])
    _llm_rollups(groups, per_group, sums(groups, inputs), sums(groups, outputs),
                 sums(groups, whole(calls["CostUsd"]).to_numpy()), sums(groups, unpriced.astype(np.float64)), out)


def _server_addresses(calls: pa.Table, spans: pa.Table | None, found: Found | None) -> Encoded:
    """The server.address of each call's span (a GenAI label), '' where it has none."""
    addresses = Encoded(np.zeros(calls.num_rows, dtype=np.intp), [""])
    if spans is not None:
        found = found if found is not None else lookup(spans["SpanAttributes"], _LOOKED_UP)
        if "server.address" in found.at:
            row = pc.index_in(calls["SpanId"], value_set=spans["SpanId"]).to_numpy(zero_copy_only=False)  # NaN: none
            codes = np.full(calls.num_rows, -1, dtype=np.intp)
            known = np.flatnonzero(row >= 0)
            codes[known] = found.first_of(("server.address",), row[known].astype(np.intp))
            addresses = found.names_of(codes, "")
    return addresses


def _with_server_address(groups: Groups, addresses: Encoded) -> Groups:
    """The groups split by the server.address of each call's span, put after the error type in each key."""
    if (addresses.codes == addresses.codes[0]).all():  # one address (or none) for every call: no split
        value = addresses.values[addresses.codes[0]]
        return Groups(groups.ids, [(*key[:5], value, *key[5:]) for key in groups.keys])
    ids, first = group_codes(groups.ids, addresses.codes)
    return Groups(ids, [(*groups.keys[groups.ids[r]][:5], addresses.values[addresses.codes[r]],
                         *groups.keys[groups.ids[r]][5:]) for r in first.tolist()])


def _llm_rollups(groups: Groups, per_group: dict[str, dict[int, HistogramDelta]], inputs: np.ndarray,
                 outputs: np.ndarray, cost: np.ndarray, unpriced: np.ndarray, out: BatchMetrics) -> None:
    """From label sets of every dimension to each family's own labels (a few groups: Python is fine)."""
    genai_duration, genai_ttft = out.histogram(f.GENAI_DURATION.name), out.histogram(f.GENAI_TTFT.name)
    genai_tokens = out.histogram(f.GENAI_TOKENS.name)
    llm_duration, llm_ttft = out.histogram(f.LLM_DURATION.name), out.histogram(f.LLM_TTFT.name)
    requests, tokens = out.counter(f.LLM_REQUESTS.name), out.counter(f.LLM_TOKENS.name)
    for g, (operation, provider, request_model, response_model, error_type, address, service, app,
            department) in enumerate(groups.keys):
        if operation not in MODEL_OPERATIONS:
            continue
        genai = (operation, provider, request_model, response_model, error_type, address, service)
        model = request_model or response_model  # as the SDK: the requested model, which every call has
        duration = per_group[f.LLM_DURATION.name][g]
        count = float(sum(duration.counts))
        merge_histogram(llm_duration, (model,), duration)
        merge_histogram(genai_duration, genai, _fold(duration, len(f.GENAI_DURATION_BUCKETS)))
        ttft = per_group[f.LLM_TTFT.name].get(g)
        if ttft is not None:
            merge_histogram(llm_ttft, (model,), ttft)
            merge_histogram(genai_ttft, genai, _fold(ttft, len(f.GENAI_TTFT_BUCKETS)))
        for direction in ("input", "output"):
            delta = per_group[direction].get(g)
            if delta is not None:
                merge_histogram(genai_tokens, (*genai, direction), delta)
        _add(requests, (model, "error" if error_type else "ok", app), count)
        _add(tokens, (model, "input", app), float(inputs[g]))
        _add(tokens, (model, "output", app), float(outputs[g]))
        if cost[g]:
            _add(out.counter(f.LLM_COST.name), (model, department, app), float(cost[g]))
        if unpriced[g]:
            _add(out.counter(f.LLM_UNPRICED.name), (model,), float(unpriced[g]))
        if error_type:
            _add(out.counter(f.LLM_ERRORS.name), (model, error_type), count)


def _fold(delta: HistogramDelta, bounds: int) -> HistogramDelta:
    """The same observations in the first `bounds` of its bounds (+Inf takes the rest)."""
    return HistogramDelta(delta.counts[:bounds] + [sum(delta.counts[bounds:])], delta.total,
                          {min(bucket, bounds): exemplar for bucket, exemplar in delta.exemplars.items()})


# GenAI histograms are folded from the llm_* ones: their bounds must be a prefix of the SDK's.
assert f.LLM_DURATION_BUCKETS[:len(f.GENAI_DURATION_BUCKETS)] == f.GENAI_DURATION_BUCKETS
assert f.LLM_TTFT_BUCKETS[:len(f.GENAI_TTFT_BUCKETS)] == f.GENAI_TTFT_BUCKETS


def _scores(scores: pa.Table, out: BatchMetrics) -> None:
    """llm_quality_score: the newest value per (app, name) (scores are few: one per evaluation)."""
    latest = out.latest.setdefault(f.LLM_QUALITY.name, {})
    times = pc.cast(scores["Timestamp"], pa.int64()).to_pylist()
    for app, name, value, at in zip(scores["App"].to_pylist(), scores["Name"].to_pylist(),
                                    scores["Value"].to_pylist(), times, strict=True):
        have = latest.get((app, name))
        if have is None or at >= have[0]:
            latest[(app, name)] = (at, value)


# --- merging -------------------------------------------------------------------------------------------

def _add(into: dict[Labels, float], labels: Labels, value: float) -> None:
    into[labels] = into.get(labels, 0.0) + value


def merge_histogram(into: dict[Labels, HistogramDelta], labels: Labels, delta: HistogramDelta) -> None:
    have = into.get(labels)
    if have is None:
        into[labels] = HistogramDelta(list(delta.counts), delta.total, dict(delta.exemplars))
        return
    have.counts = [a + b for a, b in zip(have.counts, delta.counts, strict=True)]
    have.total += delta.total
    for bucket, exemplar in delta.exemplars.items():
        have.exemplars.setdefault(bucket, exemplar)

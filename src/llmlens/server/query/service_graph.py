"""The service graph of stored spans, for any time range: who calls whom, how often, how badly, how fast.

Edges follow Tempo's service-graph rules, computed from `otel_traces` at query time:

- **Paired**: a CLIENT (or PRODUCER) span and its direct SERVER (or CONSUMER) child make an edge
  from the client's service to the server's. Latency is the server span's, as in Tempo and
  Grafana's service map; an edge fails when either side has status ERROR.
- **Virtual**: a client span that no instrumented server answered still makes an edge, to a node
  named, in Tempo's order, by `peer.service`, `db.name`, `db.system`, the GenAI provider, then
  `server.address`. A client span with a database attribute calls a database, named as Tempo names
  databases: `peer.service`, `server.address`, `network.peer.address[:port]`, then the database
  attribute. Latency is the client span's. (The same rules as the service-graph edges on /metrics.)
- **LLM calls** (llm_calls rows: the one place that knows every convention) whose peer sent no
  spans go to a virtual node named by their normalised provider. A call counts as answered when
  its own span, or a client span right under it (the HTTP request it made), has a server child.
- **Users**: a root SERVER span has no caller in the traces; it gets the client `user`. (Tempo first
  looks for peer attributes on the server span; reading them costs a pass over every root span's
  attribute Map, for a case that is rare, so the store's graph does not.)

Two additions to Tempo: an in-process database (a span of another kind carrying `db.system` or
`db.system.name`, such as a FAISS index search) is an edge to its database node; and a client span
made inside an LLM call (the HTTP request of an instrumented SDK) is the call's transport, not an
edge of its own.

Why at query time: the pairing is one hash join on typed columns, so the graph is there for any
range, filter or store without a second copy of the data (benchmarks/query.py times it). The
attribute Maps, the expensive columns, are read only for unpaired client spans that are not LLM
calls; LLM calls are recognised by (service, span name) from llm_calls, which skips their granules.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from llmlens.semconv import MODEL_OPERATIONS
from llmlens.server.query.window import Window, rfc3339
from llmlens.server.store import Store

# Tempo's service-graph attributes, first present wins: a client span with a database attribute calls
# a database, named by what addresses it; any other unanswered client span's peer is named by Tempo's
# peer attributes, then the GenAI provider or the server's address.
DATABASE_ATTRIBUTES = ("db.namespace", "db.name", "db.system", "db.system.name")
DATABASE_NAMES = ("peer.service", "server.address", "network.peer.address", *DATABASE_ATTRIBUTES)
PEER_NAMES = ("peer.service", "db.name", "db.system", "db.system.name", "gen_ai.provider.name", "gen_ai.system",
              "server.address")
# db.system values of vector stores: drawn as their own kind of node.
VECTOR_STORES = frozenset({
    "chroma", "chromadb", "pinecone", "qdrant", "weaviate", "milvus", "lancedb", "faiss", "pgvector", "marqo",
    "vespa", "turbopuffer", "vectara", "zilliz", "deeplake", "typesense", "redisvl", "azure_ai_search",
    "vertex_ai_vector_search", "opensearch_vector", "mongodb_atlas_vector_search",
})
USER_NODE = "user"  # Tempo's name for the caller of a root server span
# Server spans may start a little before (clock skew) or after their client span's window.
_PAIRING_MARGIN = "INTERVAL 5 MINUTE"
_NODE_TYPE_RANK = {"service": 0, "llm": 1, "vector_store": 2, "database": 3, "external": 4, "user": 5}

_IN_WINDOW = "Timestamp >= {start:DateTime64(9)} AND Timestamp < {end:DateTime64(9)}"
_MODEL_CALL = "Operation IN (" + ", ".join(f"'{op}'" for op in MODEL_OPERATIONS) + ")"

# SERVER/CONSUMER spans that have a parent, keyed like the client span that may be that parent.
_SERVER_CHILDREN = f"""
    SELECT cityHash64(TraceId, ParentSpanId) AS key, ServiceName, SpanKind, StatusCode, Duration
    FROM otel_traces
    WHERE Timestamp >= {{start:DateTime64(9)}} - {_PAIRING_MARGIN}
      AND Timestamp < {{end:DateTime64(9)}} + {_PAIRING_MARGIN}
      AND SpanKind IN ('Server', 'Consumer') AND ParentSpanId != ''"""

_MEASURES = """count() AS requests, countIf(failed) AS errors, quantiles(0.5, 0.95)(duration_ms) AS duration_ms"""

PAIRED_SQL = f"""
SELECT client, server, connection_type, {_MEASURES}
FROM (
    SELECT c.ServiceName AS client, s.ServiceName AS server,
           if(c.SpanKind = 'Producer' OR s.SpanKind = 'Consumer', 'messaging_system', '') AS connection_type,
           c.StatusCode = 'Error' OR s.StatusCode = 'Error' AS failed, s.Duration / 1e6 AS duration_ms
    FROM (SELECT cityHash64(TraceId, SpanId) AS key, ServiceName, SpanKind, StatusCode FROM otel_traces
          WHERE {_IN_WINDOW} AND SpanKind IN ('Client', 'Producer')) AS c
    INNER JOIN ({_SERVER_CHILDREN}) AS s ON c.key = s.key
)
GROUP BY client, server, connection_type"""

USERS_SQL = f"""
SELECT ServiceName AS server, if(SpanKind = 'Consumer', 'messaging_system', '') AS connection_type,
       count() AS requests, countIf(StatusCode = 'Error') AS errors,
       quantiles(0.5, 0.95)(Duration / 1e6) AS duration_ms
FROM otel_traces
WHERE {_IN_WINDOW} AND SpanKind IN ('Server', 'Consumer') AND ParentSpanId = ''
GROUP BY server, connection_type"""

# LLM calls answered by an instrumented server: the call's own client span was paired, or a
# client span right under it (its HTTP request) was.
_ANSWERED_CALLS = f"""
    SELECT arrayJoin([cityHash64(TraceId, SpanId), cityHash64(TraceId, ParentSpanId)])
    FROM otel_traces
    WHERE {_IN_WINDOW} AND SpanKind IN ('Client', 'Producer')
      AND cityHash64(TraceId, SpanId) IN (SELECT key FROM ({_SERVER_CHILDREN}))"""
_LLM_CALLS = f"""
    SELECT ServiceName, Provider, IsError, Duration FROM llm_calls
    WHERE {_IN_WINDOW} AND {_MODEL_CALL} AND Provider != ''"""


def llm_sql(answered_services: bool) -> str:
    """Unanswered LLM calls by service and provider. Only the calls of services with paired client
    spans (`{answered:Array(String)}`) can have been answered: only those read their ids (most of
    this query's cost on a store of LLM calls to providers that send no spans)."""
    calls = f"{_LLM_CALLS} AND ServiceName NOT IN {{answered:Array(String)}}"
    if answered_services:
        calls += (f"\n    UNION ALL{_LLM_CALLS} AND ServiceName IN {{answered:Array(String)}}"
                  f"\n      AND cityHash64(TraceId, SpanId) NOT IN ({_ANSWERED_CALLS})")
    return f"""
SELECT ServiceName AS client, toString(Provider) AS server, count() AS requests, countIf(IsError) AS errors,
       quantiles(0.5, 0.95)(Duration / 1e6) AS duration_ms
FROM ({calls})
GROUP BY client, server"""


# The attribute that names a span's peer (`source`), its name (an address with its port), whether the
# span calls a database, and the database system (to tell vector stores apart).
_PEER_NAMING = """
    arrayExists(k -> SpanAttributes[k] != '', {database_keys:Array(String)}) AS is_database,
    arrayFirst(k -> SpanAttributes[k] != '',
               if(is_database, {database_names:Array(String)}, {peer_names:Array(String)})) AS source,
    if(source = 'network.peer.address' AND SpanAttributes['network.peer.port'] != '',
       concat(SpanAttributes[source], ':', SpanAttributes['network.peer.port']), SpanAttributes[source]) AS name,
    if(SpanAttributes['db.system'] != '', SpanAttributes['db.system'], SpanAttributes['db.system.name'])
        AS db_system"""
_VIRTUAL_MEASURES = """count() AS requests, countIf(x.failed) AS errors,
       quantiles(0.5, 0.95)(x.duration_ms) AS duration_ms"""

# Unanswered client spans that are not LLM calls (those are LLM_SQL's) nor made inside one. LLM
# calls are told apart by (service, span name), sort-key columns, so their granules (and their
# large attribute Maps) are never read; PREWHERE leaves the Maps of answered spans unread too (40%
# less time where every call is answered); the join keeps the llm_calls side unread when no span is left.
CLIENTS_SQL = f"""
SELECT x.client AS client, x.name AS server, x.source AS source, x.is_database AS database,
       x.db_system AS db_system, {_VIRTUAL_MEASURES}
FROM (SELECT cityHash64(TraceId, SpanId) AS key FROM llm_calls WHERE {_IN_WINDOW} AND {_MODEL_CALL}) AS l
RIGHT JOIN (
    SELECT cityHash64(TraceId, ParentSpanId) AS parent_key, ServiceName AS client,
           StatusCode = 'Error' AS failed, Duration / 1e6 AS duration_ms, {_PEER_NAMING}
    FROM otel_traces
    PREWHERE {_IN_WINDOW} AND SpanKind IN ('Client', 'Producer')
      AND (ServiceName, SpanName) NOT IN (
          SELECT DISTINCT ServiceName, SpanName FROM llm_calls
          WHERE {_IN_WINDOW} AND {_MODEL_CALL} AND Provider != '')
      AND cityHash64(TraceId, SpanId) NOT IN (SELECT key FROM ({_SERVER_CHILDREN}))
) AS x ON l.key = x.parent_key
WHERE l.key = 0 AND x.name != ''
GROUP BY client, server, source, database, db_system"""

# Spans of other kinds that carry a database system: in-process stores (FAISS, SQLite, ...). The
# attribute-key bloom index finds them; one with a client span under it defers to that span (only
# the client spans of services that have such spans are read: the service leads the sort key).
_EMBEDDED_DATABASE = f"""{_IN_WINDOW} AND SpanKind IN ('Internal', 'Unspecified')
      AND (mapContains(SpanAttributes, 'db.system') OR mapContains(SpanAttributes, 'db.system.name'))"""
EMBEDDED_DATABASES_SQL = f"""
SELECT x.client AS client, x.name AS server, x.source AS source, x.is_database AS database,
       x.db_system AS db_system, {_VIRTUAL_MEASURES}
FROM (SELECT cityHash64(TraceId, ParentSpanId) AS key FROM otel_traces
      WHERE {_IN_WINDOW} AND SpanKind IN ('Client', 'Producer') AND ParentSpanId != ''
        AND ServiceName IN (SELECT DISTINCT ServiceName FROM otel_traces WHERE {_EMBEDDED_DATABASE})) AS l
RIGHT JOIN (
    SELECT cityHash64(TraceId, SpanId) AS key, ServiceName AS client,
           StatusCode = 'Error' AS failed, Duration / 1e6 AS duration_ms, {_PEER_NAMING}
    FROM otel_traces
    WHERE {_EMBEDDED_DATABASE}
) AS x ON l.key = x.key
WHERE l.key = 0 AND x.name != ''
GROUP BY client, server, source, database, db_system"""

SERVICES_SQL = f"""
SELECT ServiceName AS service, count() AS spans FROM otel_traces
WHERE {_IN_WINDOW} AND ServiceName != '' GROUP BY service"""


async def service_graph(store: Store, window: Window, *, service: str | None = None) -> dict[str, Any]:
    """{"nodes": [...], "edges": [...]} of the window; with `service`, only the edges it is an end of
    (and their nodes). The queries run concurrently, but for the LLM calls' (after the pairing)."""
    params: dict[str, Any] = {**window.params(), "database_keys": list(DATABASE_ATTRIBUTES),
                              "database_names": list(DATABASE_NAMES), "peer_names": list(PEER_NAMES)}
    others = asyncio.gather(*(store.fetch(sql, params)
                              for sql in (USERS_SQL, CLIENTS_SQL, EMBEDDED_DATABASES_SQL, SERVICES_SQL)))
    try:
        paired = await store.fetch(PAIRED_SQL, params)
        # The pairing tells which services' LLM calls may have been answered.
        answered = sorted({row["client"] for row in paired})
        llm = await store.fetch(llm_sql(bool(answered)), {**params, "answered": answered})
    finally:
        users, clients, embedded, services = await others
    spans_by_service = {row["service"]: int(row["spans"]) for row in services}
    graph = _Graph(spans_by_service, window.seconds)
    for row in paired:
        graph.add_edge(row, row["client"], row["server"], "paired", "service", row["connection_type"])
    for row in users:
        graph.add_edge(row, USER_NODE, row["server"], "user", "service", row["connection_type"])
    for row in llm:
        graph.add_edge(row, row["client"], row["server"], "virtual", "llm", "virtual_node", "gen_ai.provider.name")
    for row in [*clients, *embedded]:
        database = bool(row["database"])
        node_type = _database_type(row["db_system"]) if database else "external"
        graph.add_edge(row, row["client"], row["server"], "virtual", node_type,
                       "database" if database else "virtual_node", row["source"])
    return {"start": rfc3339(params["start"]), "end": rfc3339(params["end"]), "window_seconds": window.seconds,
            **graph.answer(service)}


def _database_type(db_system: str) -> str:
    return "vector_store" if db_system.lower() in VECTOR_STORES else "database"


class _Graph:
    """Edges merged by (client, server), and the nodes at their ends."""

    def __init__(self, spans_by_service: dict[str, int], seconds: float) -> None:
        self.services = spans_by_service
        self.seconds = seconds
        self.edges: dict[tuple[str, str], dict[str, Any]] = {}
        self.server_types: dict[str, str] = {}

    def add_edge(self, row: dict[str, Any], client: str, server: str, origin: str, server_type: str,
                 connection_type: str, source: str | None = None) -> None:
        """`origin`: paired (a server span answered), user (a root server span) or virtual (no server
        span; `source` names the attribute the server's name came from)."""
        requests, errors = int(row["requests"]), int(row["errors"])
        p50, p95 = (list(row["duration_ms"] or []) + [None, None])[:2]
        edge = self.edges.get((client, server))
        if edge is None:
            edge = self.edges[(client, server)] = {
                "client": client, "server": server, "connection_type": connection_type, "requests": 0,
                "errors": 0, "_quantiles": [], "_origins": set(), "_sources": set()}
        edge["requests"] += requests
        edge["errors"] += errors
        edge["_quantiles"].append((requests, _ms(p50), _ms(p95)))
        edge["_origins"].add(origin)
        if source:
            edge["_sources"].add(source)
        known = self.server_types.get(server)
        if known is None or _NODE_TYPE_RANK[server_type] < _NODE_TYPE_RANK[known]:
            self.server_types[server] = server_type

    def answer(self, service: str | None) -> dict[str, Any]:
        edges = [self._edge(e) for e in self.edges.values()
                 if service is None or service in (e["client"], e["server"])]
        edges.sort(key=lambda e: (-e["requests"], e["client"], e["server"]))
        names = {service} if service in self.services else set()
        names.update(n for e in edges for n in (e["client"], e["server"]))
        if service is None:
            names.update(self.services)
        nodes = [self._node(name, edges) for name in names]
        nodes.sort(key=lambda n: (n["kind"] != "service", -n["requests"] - n["calls"], n["id"]))
        return {"nodes": nodes, "edges": edges}

    def _edge(self, edge: dict[str, Any]) -> dict[str, Any]:
        requests, errors = edge["requests"], edge["errors"]
        # One edge may merge rows of several kinds (a peer named by two attributes, say): the
        # busiest row's percentiles stand for the edge.
        _, p50, p95 = max(edge["_quantiles"], key=lambda q: q[0])
        return {
            "client": edge["client"], "server": edge["server"], "connection_type": edge["connection_type"],
            "requests": requests, "rate": requests / self.seconds if self.seconds > 0 else None,
            "errors": errors, "error_rate": errors / requests if requests else 0.0, "p50_ms": p50, "p95_ms": p95,
            "traces_query": _edge_query(edge),
        }

    def _node(self, name: str, edges: list[dict[str, Any]]) -> dict[str, Any]:
        incoming = [e for e in edges if e["server"] == name]
        requests = sum(e["requests"] for e in incoming)
        errors = sum(e["errors"] for e in incoming)
        if name in self.services:
            kind, node_type, query = "service", "service", None
        else:
            kind, node_type = "virtual", ("user" if name == USER_NODE else self.server_types.get(name, "external"))
            queries = [e["traces_query"] for e in incoming]
            query = " || ".join(f"({q})" for q in queries) if len(queries) > 1 else (queries or [None])[0]
        return {
            "id": name, "kind": kind, "type": node_type, "requests": requests, "errors": errors,
            "error_rate": errors / requests if requests else 0.0,
            "calls": sum(e["requests"] for e in edges if e["client"] == name),
            "spans": self.services.get(name, 0), "traces_query": query,
        }


def _edge_query(edge: dict[str, Any]) -> str:
    """A trace query (the traces page's language) for the traces behind an edge."""
    client, server = _quote(edge["client"]), _quote(edge["server"])
    served = f"{{ resource.service.name = {server} && (kind = server || kind = consumer) }}"
    parts = []
    if "user" in edge["_origins"]:
        parts.append(served)
    if "paired" in edge["_origins"]:
        parts.append(f"({{ resource.service.name = {client} && (kind = client || kind = producer) }} && {served})")
    if edge["_sources"]:
        # An address named with its port is looked up by the address alone.
        address = _quote(edge["server"].rsplit(":", 1)[0])
        peers = " || ".join(f"span.{source} = {address if source == 'network.peer.address' else server}"
                            for source in sorted(edge["_sources"]))
        parts.append(f"{{ resource.service.name = {client} && ({peers}) }}")
    query = " || ".join(parts)
    return query[1:-1] if len(parts) == 1 and query.startswith("(") else query


_TRACEQL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"})


def _quote(text: str) -> str:
    return '"' + text.translate(_TRACEQL_ESCAPES) + '"'


def _ms(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else round(number, 3)

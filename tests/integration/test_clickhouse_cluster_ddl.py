"""The cluster layout, as far as this machine can run it.

No modern ClickHouse server installs here, so no real multi-node cluster (Keeper, shards,
replicas) can run, and nothing here shows a cluster storing or answering anything. What does run
is ClickHouse's engine itself (chDB 26.9) configured as one host of a two-shard cluster: the
cluster `llmlens` in <remote_servers> (its shards on closed loopback ports), the {shard} and
{replica} macros, and ClickHouse's in-memory test Keeper. On it:

1. Every statement `llmlens db schema --clickhouse-cluster llmlens` prints is executed, with its
   ON CLUSTER clause taken out (that needs a server's distributed DDL queue): the Replicated
   engines with their macros, the Distributed tables with their sharding keys over the real
   columns (a key that is not an integer expression is refused at CREATE), the view over the
   Distributed trace_index. ALTERs and INSERTs on Replicated tables cannot run without a real
   Keeper (the tables stay read-only); test_ddl_render.py parses those.
2. Every SELECT a real `llmlens serve` sends while it ingests the test corpus, answers the API and
   evaluates the alert rules (captured at the ClickHouse-HTTP test endpoint) is planned over the
   Distributed tables with the settings the ClickHouse backend uses on a cluster: each must pass
   ClickHouse's analyzer. Planning runs GLOBAL subqueries, which then fail to reach the closed
   shards: that error means the analysis passed. Without the settings the queries that join or
   filter one Distributed table by another are refused, which is why the backend sets them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmlens.server.store.clickhouse_backend import _CLUSTER_READ_SETTINGS, disk_usage_sql
from llmlens.server.store.ddl import Layout
from llmlens.server.store.schema import migrations, script
from tests.endpoint_process import EndpointProcess
from tests.server_process import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "fixtures" / "otlp"
LAYOUT = Layout(cluster="llmlens", database="llmlens")
# The corpus was captured in November 2026: keep it inside the TTL.
RETENTION_DAYS = 3650
# What a query planned over unreachable shards fails with, once ClickHouse's analyzer accepted it.
_UNREACHABLE = {209: "SOCKET_TIMEOUT", 210: "NETWORK_ERROR", 279: "ALL_CONNECTION_TRIES_FAILED"}
_DISTRIBUTED_SUBQUERY_DENIED = 288
# Grafana's ClickHouse data source, before it reads a trace: when the trace ran (otel_traces_trace_id_ts,
# the view over trace_index), then its spans in that time (the query test_store.py checks for answers).
GRAFANA_TRACE_LOOKUP = {
    "sql": "WITH {id:String} AS trace_id, "
           "(SELECT min(Start) FROM otel_traces_trace_id_ts WHERE TraceId = trace_id) AS trace_start, "
           "(SELECT max(End) + 1 FROM otel_traces_trace_id_ts WHERE TraceId = trace_id) AS trace_end "
           "SELECT * FROM otel_traces WHERE TraceId = trace_id AND Timestamp >= trace_start AND Timestamp <= trace_end",
    "params": {"id": "0af7651916cd43dd8448eb211c80319c"},
}

CONFIG = """<clickhouse>
  <macros><shard>01</shard><replica>r1</replica><cluster>llmlens</cluster></macros>
  <zookeeper><implementation>testkeeper</implementation></zookeeper>
  <remote_servers>
    <llmlens>
      <shard><internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>{port1}</port></replica></shard>
      <shard><internal_replication>true</internal_replication>
        <replica><host>127.0.0.1</host><port>{port2}</port></replica></shard>
    </llmlens>
  </remote_servers>
</clickhouse>
"""

# Runs in its own process: chDB binds one engine per process, and this one has a cluster's config.
ON_A_CLUSTER_HOST = textwrap.dedent("""
    import json, os, re, sys
    import chdb

    config, data, work = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
    conn = chdb.connect(f"file:{data}?config-file={config}")

    def run(sql, params=None):
        try:
            result = conn.query(sql, "TSVRaw", params=params) if params else conn.query(sql, "TSVRaw")
            return {"ok": True, "out": result.bytes().decode()}
        except Exception as exc:
            text = str(exc)
            code = re.match(r"Code: (\\d+)", text)
            return {"ok": False, "code": int(code.group(1)) if code else None, "error": text[:500]}

    out = {"ddl": [run(s) for s in work["ddl"]]}
    out["tables"] = run("SELECT name, engine, engine_full FROM system.tables WHERE database = 'llmlens' "
                        "FORMAT JSONEachRow")["out"]
    out["replicas"] = run("SELECT table, zookeeper_path, replica_name FROM system.replicas "
                          "WHERE database = 'llmlens' FORMAT JSONEachRow")["out"]
    out["columns"] = run("SELECT table, groupArray(name) AS names FROM system.columns WHERE database = 'llmlens' "
                         "GROUP BY table FORMAT JSONEachRow")["out"]
    run("USE llmlens")
    out["disk"] = run(work["disk"])
    out["plain"], out["cluster"] = [], []
    for query in work["queries"]:
        out["plain"].append(run("EXPLAIN PLAN " + query["sql"], query["params"]))
    for name, value in work["settings"].items():
        run(f"SET {name} = {value!r}" if isinstance(value, str) else f"SET {name} = {value}")
    for query in work["queries"]:
        out["cluster"].append(run("EXPLAIN PLAN " + query["sql"], query["params"]))
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # chDB with a test Keeper can abort in its own shutdown; everything is reported by now
""")


def cluster_ddl() -> list[str]:
    """`llmlens db schema --clickhouse-cluster llmlens`, statement by statement."""
    text = script(LAYOUT, 30)
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [s.strip() for s in re.split(r";\s*$", body, flags=re.MULTILINE) if s.strip()]


# --- the queries a real server sends ------------------------------------------------------------------

def _corpus() -> list[tuple[str, bytes]]:
    paths = {"traces": "/v1/traces", "logs": "/v1/logs", "metrics": "/v1/metrics"}
    return [(paths[p.name.split(".")[1]], p.read_bytes()) for p in sorted(CORPUS.glob("*/*.*.pb"))]


def _get(server: ServerProcess, path: str, **params: Any) -> Any:
    response = httpx.get(server.url + path, params=params, timeout=60)
    assert response.status_code == 200, (path, response.text[:500])
    return response.json()


def _exercise(server: ServerProcess) -> None:
    """Ingest the corpus and ask every API route, so the server sends each kind of query."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for path, body in _corpus():
            response = client.post(path, content=body, headers={"Content-Type": "application/x-protobuf"})
            assert response.status_code == 200, response.text
    window = {"start": "2026-06-01T00:00:00Z", "end": "2027-06-01T00:00:00Z"}  # around the corpus
    traces = _get(server, "/api/v1/traces", limit=50, **window)["items"]
    assert traces, "the corpus gave no trace"
    trace_id = traces[0]["trace_id"]
    _get(server, f"/api/v1/traces/{trace_id}")
    _get(server, "/api/v1/traces", model="gpt-4o-mini", limit=10, **window)
    _get(server, "/api/v1/search", q='{ span.gen_ai.request.model = "gpt-4o-mini" && duration > 1ms }', **window)
    _get(server, "/api/v1/search", q='{ session = "s-1" || user = "u-1" }', **window)  # calls' trace context
    _get(server, "/api/v1/costs", group_by="user", user="u-1", **window)
    for group_by in ("model", "service"):
        _get(server, "/api/v1/llm/stats", group_by=group_by, step="1d", **window)
    for path in ("/api/v1/overview", "/api/v1/costs", "/api/v1/red", "/api/v1/service-graph", "/api/v1/scores",
                 "/api/v1/logs", "/api/v1/metrics"):
        _get(server, path, **window)
    _get(server, "/api/v1/logs", trace_id=trace_id)
    sessions = _get(server, "/api/v1/sessions", **window)
    for item in sessions.get("items", [])[:1]:
        _get(server, f"/api/v1/sessions/{item['session_id']}")
    metrics = _get(server, "/api/v1/metrics", **window)
    for item in metrics.get("items", [])[:1]:
        _get(server, f"/api/v1/metrics/{item['name']}/series", **window)
    _get(server, "/api/v1/status")
    # The alert evaluator (on, every second) runs every default rule's query; wait for a full round.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        groups = _get(server, "/api/v1/rules")["data"]["groups"]
        if all(r["lastEvaluation"] != "0001-01-01T00:00:00Z" for g in groups for r in g["rules"]):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the alert rules were not evaluated within 60 s")
    _get(server, "/api/v1/alerts")
    _get(server, "/api/v1/alerts/history")


def captured_selects(log: Path) -> list[dict[str, Any]]:
    """Distinct SELECTs of the query log, without the FORMAT clause the client appends."""
    seen, out = set(), []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        sql = re.sub(r"\s+FORMAT\s+\w+\s*$", "", entry["sql"].strip(), flags=re.IGNORECASE)
        if not re.match(r"(SELECT|WITH)\b", sql, re.IGNORECASE) or sql in seen:
            continue
        seen.add(sql)
        out.append({"sql": sql, "params": entry["params"]})
    return out


# --- the run --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def on_a_cluster_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("cluster")
    query_log = root / "queries.jsonl"
    endpoint = EndpointProcess(root / "clickhouse", user="llmlens", password="cluster-test-pass",
                               extra_args=["--query-log", str(query_log)])
    server = ServerProcess(root / "unused", env={"LLMLENS_CLICKHOUSE_URL": endpoint.url("llmlens")}, extra_args=[
        "--ingest-workers", "0", "--retention-days", str(RETENTION_DAYS), "--rules-interval", "1s"])
    try:
        server.start()
        _exercise(server)
    finally:
        if server.proc and server.proc.poll() is None:
            server.terminate()
        endpoint.stop()
    queries = [*captured_selects(query_log), GRAFANA_TRACE_LOOKUP]
    config = root / "cluster.xml"
    config.write_text(CONFIG.format(port1=free_port(), port2=free_port()))
    work = root / "work.json"
    work.write_text(json.dumps({"ddl": [s.replace(LAYOUT.on_cluster, "") for s in cluster_ddl()
                                        if not s.startswith("INSERT")],
                                "queries": queries, "settings": _CLUSTER_READ_SETTINGS,
                                "disk": disk_usage_sql("llmlens")}))
    done = subprocess.run([sys.executable, "-c", ON_A_CLUSTER_HOST, str(config), str(root / "host"), str(work)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["queries"] = queries
    result["statements"] = json.loads(work.read_text())["ddl"]
    yield result


def _rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line]


def test_the_cluster_ddl_runs_on_a_cluster_host(on_a_cluster_host: dict[str, Any]) -> None:
    for statement, outcome in zip(on_a_cluster_host["statements"], on_a_cluster_host["ddl"], strict=True):
        if statement.startswith("ALTER TABLE") and re.match(r"ALTER TABLE llmlens\.\w+_local ", statement):
            # Replicated tables stay read-only without a real Keeper; parsed in test_ddl_render.py.
            # (A projection on trace_index needs the table setting that the read-only MODIFY SETTING
            # before it could not set: 344, SUPPORT_IS_DISABLED, here only.)
            expected = (242, 344) if " ADD PROJECTION " in statement else (242,)
            assert outcome["ok"] or outcome["code"] in expected, (statement[:120], outcome)
        else:
            assert outcome["ok"], (statement[:200], outcome)


def test_the_cluster_host_has_the_layout_the_queries_expect(on_a_cluster_host: dict[str, Any]) -> None:
    from tests.unit.test_ddl_render import SHARDING

    tables = {row["name"]: row for row in _rows(on_a_cluster_host["tables"])}
    for table, key in SHARDING.items():
        assert tables[table]["engine"] == "Distributed"
        assert tables[table]["engine_full"] == f"Distributed('llmlens', 'llmlens', '{table}_local', {key})"
        assert re.fullmatch(r"Replicated\w*MergeTree", tables[f"{table}_local"]["engine"])
    assert tables["otel_traces_trace_id_ts"]["engine"] == "View"
    assert not [name for name, row in tables.items() if row["engine"] == "MaterializedView"]  # dropped by 2, 3
    replicas = {row["table"]: row for row in _rows(on_a_cluster_host["replicas"])}
    assert replicas["otel_traces_local"]["zookeeper_path"] == "/clickhouse/tables/01/llmlens/otel_traces_local"
    assert replicas["otel_traces_local"]["replica_name"] == "r1"
    assert replicas["llmlens_schema_migrations"]["zookeeper_path"] == \
        "/clickhouse/tables/all/llmlens/llmlens_schema_migrations"
    assert replicas["llmlens_schema_migrations"]["replica_name"] == "01-r1"
    # A Distributed table has its local table's columns (llm_calls also schema 7's and trace_index
    # schema 9's, whose ALTERs on the read-only local tables cannot run here).
    columns = {row["table"]: row["names"] for row in _rows(on_a_cluster_host["columns"])}
    for table in SHARDING:
        if table not in ("llm_calls", "trace_index"):
            assert columns[table] == columns[f"{table}_local"], table
    assert columns["trace_index"] == [*columns["trace_index_local"], "SessionId", "UserId", "App", "Department"]
    assert columns["llm_calls"] == [*columns["llm_calls_local"], "ToolNames", "TokensEstimated", "ProviderRaw",
                                    "RequestModelRaw"]


def test_every_query_a_server_sends_passes_the_analyzer_over_distributed_tables(
        on_a_cluster_host: dict[str, Any]) -> None:
    queries = on_a_cluster_host["queries"]
    assert len(queries) > 30, "the server sent fewer kinds of query than expected"
    sql = "\n".join(q["sql"] for q in queries)
    for expected in ("FINAL", "IN (SELECT", "JOIN", "GROUP BY", "llmlens_request_digests", "otel_traces_trace_id_ts"):
        assert expected in sql, expected  # the kinds of query that need care on a cluster are among them
    failed = [(q["sql"][:300], r) for q, r in zip(queries, on_a_cluster_host["cluster"], strict=True)
              if not r["ok"] and r["code"] not in _UNREACHABLE]
    assert not failed, failed


def test_the_disk_usage_query_reaches_for_every_replica(on_a_cluster_host: dict[str, Any]) -> None:
    # The cluster is found and the query analysed; with no host of the test cluster answering, not even
    # system.parts' structure can be fetched (on a real host its own replica gives it, and
    # skip_unavailable_shards leaves out the hosts that do not answer).
    outcome = on_a_cluster_host["disk"]
    assert outcome["ok"] or outcome["code"] == 519, outcome  # NO_REMOTE_SHARD_AVAILABLE


def test_without_the_cluster_settings_cross_table_queries_are_refused(on_a_cluster_host: dict[str, Any]) -> None:
    denied = [q["sql"] for q, r in zip(on_a_cluster_host["queries"], on_a_cluster_host["plain"], strict=True)
              if not r["ok"] and r["code"] == _DISTRIBUTED_SUBQUERY_DENIED]
    # The trace list (filtered through trace_index) and the service graph (a JOIN of spans) among them;
    # every one passes with the settings (the test above).
    assert any("FROM trace_index" in sql for sql in denied), denied[:3]
    assert any("JOIN" in sql for sql in denied), denied[:3]


# --- the db commands ---------------------------------------------------------------------------------

PASSWORD = "db-command-pass-7"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointProcess]:
    server = EndpointProcess(tmp_path_factory.mktemp("db") / "clickhouse", user="llmlens", password=PASSWORD)
    yield server
    server.stop()


def llmlens(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LLMLENS_")}
    return subprocess.run([sys.executable, "-m", "llmlens.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**clean, **(env or {})})


def test_db_schema_prints_the_ddl_a_dba_reads(tmp_path: Path) -> None:
    done = llmlens("db", "schema", "--clickhouse-cluster", "llmlens", "--database", "llmlens")
    assert done.returncode == 0, done.stderr
    assert done.stdout == script(LAYOUT, 30)
    assert done.stdout.startswith("-- llmlens schema ")
    single = llmlens("db", "schema", "--retention-days", "90")
    assert single.returncode == 0 and "ON CLUSTER" not in single.stdout and "toIntervalDay(90)" in single.stdout
    # The database comes from the URL llmlens serve would use.
    from_env = llmlens("db", "schema", "--clickhouse-cluster", "prod",
                       env={"LLMLENS_CLICKHOUSE_URL": "http://u:p@ch:8123/observability"})
    assert "CREATE DATABASE IF NOT EXISTS observability ON CLUSTER 'prod';" in from_env.stdout


def test_db_init_applies_the_schema_once(endpoint: EndpointProcess) -> None:
    env = {"LLMLENS_CLICKHOUSE_URL": endpoint.url("llmlens_db_init")}
    newest = migrations()[-1][0]
    first, again = llmlens("db", "init", env=env), llmlens("db", "init", "--retention-days", "60", env=env)
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert first.stdout.strip() == (f"llmlens schema {newest} (database llmlens_db_init): migrated from 0 to "
                                    f"{newest}; retention 30 days")
    assert again.stdout.strip() == f"llmlens schema {newest} (database llmlens_db_init): already current; retention 60 days"
    from llmlens.server.store.clickhouse_backend import ClickHouseBackend

    backend = ClickHouseBackend(endpoint.url("llmlens_db_init"))
    try:
        versions = [r["Version"] for r in backend.fetch("SELECT Version FROM llmlens_schema_migrations ORDER BY 1")]
        ddl_of = backend.fetch("SELECT create_table_query AS q FROM system.tables WHERE database = currentDatabase() "
                               "AND name = 'otel_traces'")[0]["q"]
    finally:
        backend.close()
    assert versions == [number for number, _, _ in migrations()]
    assert "toIntervalDay(60)" in ddl_of  # the second run changed the retention


def test_db_init_names_a_cluster_the_server_does_not_have(endpoint: EndpointProcess) -> None:
    done = llmlens("db", "init", "--clickhouse-url", endpoint.url("llmlens_nocluster"), "--clickhouse-cluster", "prod")
    assert done.returncode == 1
    assert done.stderr.strip().startswith(f"llmlens: error: ClickHouse at {endpoint.address} has no cluster 'prod' "
                                          "in its <remote_servers>")
    assert PASSWORD not in done.stderr + done.stdout and "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "env", "message"), [
    (["db", "schema", "--clickhouse-cluster", "a b"], {}, "bad ClickHouse cluster name 'a b'"),
    (["db", "schema", "--database", "x"], {}, "--database is for a cluster's DDL"),
    (["db", "schema", "--retention-days", "0"], {}, "bad retention days 0"),
    (["db", "init"], {}, "db init needs --clickhouse-url (or LLMLENS_CLICKHOUSE_URL)"),
    (["db", "init", "--clickhouse-url", "ftp://x/db"], {}, "bad --clickhouse-url: the ClickHouse URL must look like"),
    (["serve", "--clickhouse-cluster", "prod"], {}, "clickhouse_cluster needs clickhouse_url"),
    (["serve"], {"LLMLENS_CLICKHOUSE_URL": "http://h:8123/db", "LLMLENS_CLICKHOUSE_CLUSTER": "x;y"},
     "clickhouse_cluster: bad ClickHouse cluster name 'x;y'"),
])
def test_bad_flags_exit_2_with_one_line(args: list[str], env: dict[str, str], message: str, tmp_path: Path) -> None:
    if args[0] == "serve":
        args = [*args, "--data-dir", str(tmp_path / "d"), "--http-port", str(free_port()),
                "--grpc-port", str(free_port())]
    done = llmlens(*args, env=env)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and line.startswith("llmlens: error: ") and message in line, line

"""Read-only SQL over the store on a real server: POST/GET /api/v1/sql and its schema API behind the
API key, and the ClickHouse-compatible HTTP interface on --sql-port read by the real
clickhouse-connect client (with and without a key). Hostile SQL is refused with a clear error and
changes nothing; the server keeps serving; results over the limits are 413 and slow queries 504."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import clickhouse_connect
import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.endpoint_process import EndpointProcess
from tests.grafana_queries import clickhouse_sql, clickhouse_targets
from tests.integration.otlp_requests import (
    log_request,
    make_log,
    make_span,
    metrics_request,
    post,
    trace_request,
)
from tests.server_process import ServerProcess, free_port

KEY = "sql-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
SERVICES = ("sql-checkout", "sql-search")
SPANS_EACH = 7
REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "compose" / "grafana" / "dashboards" / "llmlens-traces-logs.json"


def _seed(server: ServerProcess, headers: dict[str, str]) -> None:
    for service in SERVICES:
        spans = [make_span(f"step-{i}", duration_ms=10 + i, error=i == 0) for i in range(SPANS_EACH)]
        assert post(server.url, "traces", trace_request(spans, service=service), headers=headers).status_code == 200
        logs = [make_log(f"{service} handled a request", trace_id=spans[0].trace_id)]
        assert post(server.url, "logs", log_request(logs, service=service), headers=headers).status_code == 200
        assert post(server.url, "metrics", metrics_request(service), headers=headers).status_code == 200


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server behind an API key with the SQL interface on, and small limits to reach."""
    server = ServerProcess(tmp_path_factory.mktemp("sql-keyed") / "data", env={"LLMLENS_API_KEY": KEY}, extra_args=[
        "--ingest-workers", "0", "--sql-port", str(free_port()), "--sql-timeout-s", "2",
        "--sql-max-result-rows", "5000", "--sql-max-memory-mb", "64"]).start()
    server.sql_port = int(server.extra_args[server.extra_args.index("--sql-port") + 1])
    _seed(server, AUTH)
    yield server
    server.terminate()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A loopback server without an API key, the SQL interface on."""
    port = free_port()
    server = ServerProcess(tmp_path_factory.mktemp("sql-open") / "data",
                           extra_args=["--ingest-workers", "0", "--sql-port", str(port)]).start()
    server.sql_port = port
    _seed(server, {})
    yield server
    server.terminate()


def sql(server: ServerProcess, query: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/sql", json={"query": query}, headers=AUTH, timeout=60, **kwargs)


def span_count(server: ServerProcess) -> int:
    response = sql(server, "SELECT count() AS n FROM otel_traces")
    assert response.status_code == 200, response.text
    return response.json()["rows"][0][0]


# --- POST /api/v1/sql -------------------------------------------------------------------------

def test_a_select_answers_columns_with_types_and_rows(keyed: ServerProcess) -> None:
    response = sql(keyed, "SELECT ServiceName AS service, count() AS spans, countIf(StatusCode = 'Error') AS errors, "
                          "max(Duration) / 1e6 AS slowest_ms FROM otel_traces GROUP BY service ORDER BY service")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == [{"name": "service", "type": "LowCardinality(String)"},
                               {"name": "spans", "type": "UInt64"}, {"name": "errors", "type": "UInt64"},
                               {"name": "slowest_ms", "type": "Float64"}]
    assert body["rows"] == [[s, SPANS_EACH, 1, 10 + SPANS_EACH - 1] for s in SERVICES]
    assert body["row_count"] == 2 and body["statistics"]["rows_read"] >= 2 * SPANS_EACH


def test_get_takes_the_query_in_the_url_and_the_session_cookie(keyed: ServerProcess) -> None:
    login = httpx.post(f"{keyed.url}/login", data={"key": KEY, "next": "/sql"}, follow_redirects=False)
    assert login.status_code == 303, login.text
    response = httpx.get(f"{keyed.url}/api/v1/sql", params={"query": "SELECT 40 + 2 AS answer"},
                         cookies=login.cookies)
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == [[42]]
    # A session cookie does not count on POST (no cross-site form can spend it).
    assert httpx.post(f"{keyed.url}/api/v1/sql", json={"query": "SELECT 1"}, cookies=login.cookies).status_code == 401


@pytest.mark.parametrize(("query", "first_row"), [
    ("WITH s AS (SELECT ServiceName FROM otel_traces) SELECT count() FROM s", [len(SERVICES) * SPANS_EACH]),
    ("SHOW TABLES LIKE 'otel_traces'", ["otel_traces"]),
    ("DESCRIBE TABLE otel_logs", None),
    ("EXISTS TABLE otel_traces", [1]),
    ("EXPLAIN SELECT count() FROM otel_traces", None),
    ("SELECT name FROM system.settings WHERE name = 'readonly'", ["readonly"]),
    ("SELECT count() > 0 FROM information_schema.columns WHERE table_name = 'otel_traces'", [1]),
    ("SELECT sum(number) FROM numbers(10)", [45]),
])
def test_every_kind_of_read_runs(keyed: ServerProcess, query: str, first_row: list | None) -> None:
    response = sql(keyed, query)
    assert response.status_code == 200, response.text
    assert response.json()["rows"], query
    if first_row is not None:
        assert response.json()["rows"][0] == first_row


def test_sql_needs_the_api_key(keyed: ServerProcess) -> None:
    for response in (httpx.post(f"{keyed.url}/api/v1/sql", json={"query": "SELECT 1"}),
                     httpx.get(f"{keyed.url}/api/v1/sql", params={"query": "SELECT 1"}),
                     httpx.get(f"{keyed.url}/api/v1/sql/schema")):
        assert response.status_code == 401


def test_the_schema_lists_the_stores_tables_columns_and_types(keyed: ServerProcess) -> None:
    response = httpx.get(f"{keyed.url}/api/v1/sql/schema", headers=AUTH)
    assert response.status_code == 200, response.text
    tables = {t["name"]: t for t in response.json()["tables"]}
    assert {"otel_traces", "otel_logs", "llm_calls"} <= set(tables)
    columns = {c["name"]: c["type"] for c in tables["otel_traces"]["columns"]}
    assert columns["TraceId"] == "String" and columns["Timestamp"] == "DateTime64(9)"
    assert tables["otel_traces"]["rows"] == len(SERVICES) * SPANS_EACH


@pytest.mark.parametrize(("query", "code", "says"), [
    ("SELEC 1", "sql_error", "Syntax error"),
    ("SELECT NoSuchColumn FROM otel_traces", "sql_error", "NoSuchColumn"),
    ("SELECT * FROM no_such_table", "sql_error", "no_such_table"),
    ("SELECT 1 FORMAT CSV", "sql_refused", "leave out FORMAT CSV"),
])
def test_bad_sql_is_a_400_with_clickhouses_message(keyed: ServerProcess, query: str, code: str, says: str) -> None:
    response = sql(keyed, query)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert says in response.json()["error"]["message"]


HOSTILE = [
    ("INSERT INTO otel_traces (TraceId, SpanId) VALUES ('t', 's')", "INSERT statements are refused"),
    ("INSERT INTO otel_traces SELECT * FROM otel_traces", "INSERT statements are refused"),
    ("ALTER TABLE otel_traces DELETE WHERE 1", "ALTER statements are refused"),
    ("ALTER TABLE otel_traces MODIFY TTL toDateTime(Timestamp) + INTERVAL 1 DAY", "ALTER statements are refused"),
    ("DROP TABLE otel_traces", "DROP statements are refused"),
    ("TRUNCATE TABLE otel_traces", "TRUNCATE statements are refused"),
    ("CREATE TABLE stolen ENGINE = Memory AS SELECT * FROM otel_traces", "CREATE statements are refused"),
    ("CREATE TEMPORARY TABLE scratch (a Int8)", "CREATE statements are refused"),
    ("OPTIMIZE TABLE otel_traces FINAL", "OPTIMIZE statements are refused"),
    ("KILL QUERY WHERE 1", "KILL statements are refused"),
    ("SYSTEM STOP MERGES", "SYSTEM statements are refused"),
    ("SET readonly = 0", "SET statements are refused"),
    ("SELECT 1 SETTINGS readonly = 0", "Cannot modify 'readonly' setting"),
    ("SELECT 1 SETTINGS max_execution_time = 1000", "Cannot modify 'max_execution_time' setting"),
    ("SELECT 1; DROP TABLE otel_traces", "Multi-statements are not allowed"),
    ("SELECT 1; SELECT 2", "Multi-statements are not allowed"),
    ("SELECT * FROM system.users", "system.users is refused"),
    ("SELECT * FROM system.named_collections", "system.named_collections is refused"),
    ("SELECT * FROM system.grants", "system.grants is refused"),
    ("SELECT query FROM system.processes", "system.processes is refused"),
    ("SELECT * FROM `system`.`users`", "system.users is refused"),
    ("SELECT 1 WHERE 'default' IN system.users", "system.users is refused"),
    ("SELECT * FROM view(SELECT * FROM system.users)", "system.users is refused"),
    ("SELECT * FROM merge('system', '^users$')", "merge() is refused"),
    ("SHOW USERS", "refused"),
    ("SHOW GRANTS", "refused"),
    ("SHOW PROCESSLIST", "refused"),
    ("SELECT file('/etc/passwd')", "file() is refused"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "file() is refused"),
    ("SELECT * FROM url('http://127.0.0.1:1/x.csv', 'CSV')", "url() is refused"),
    ("SELECT * FROM s3('http://127.0.0.1:1/bucket/x.csv')", "s3() is refused"),
    ("SELECT * FROM remote('127.0.0.1:9000', system.one)", "remote() is refused"),
    ("SELECT * FROM Python(settings)", "Python() is refused"),
    ("SELECT * FROM executable('id', 'TSV', 'a String')", "executable() is refused"),
    ("SELECT getServerSetting('path')", "getServerSetting() is refused"),
    ("SELECT dictGet('d', 'x', 1)", "dictGet() is refused"),
    ("SELECT * FROM otel_traces INTO OUTFILE '/tmp/llmlens-stolen.tsv'", "INTO OUTFILE is refused"),
    ("EXPLAIN PIPELINE INSERT INTO otel_traces SELECT * FROM otel_traces", "EXPLAIN is accepted for SELECT queries only"),
]


@pytest.mark.parametrize(("query", "says"), HOSTILE)
def test_hostile_sql_is_refused_with_a_clear_message(keyed: ServerProcess, query: str, says: str) -> None:
    response = sql(keyed, query)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] in ("sql_refused", "sql_error") and says in error["message"], error
    assert "root:" not in response.text  # no file content leaked into a message


def test_after_hostile_sql_the_store_is_unchanged_and_serving(keyed: ServerProcess) -> None:
    for query, _ in HOSTILE:
        assert sql(keyed, query).status_code == 400
    assert span_count(keyed) == len(SERVICES) * SPANS_EACH
    assert not Path("/tmp/llmlens-stolen.tsv").exists()
    tables = sql(keyed, "SELECT name FROM system.tables WHERE database = currentDatabase() AND name IN "
                        "('stolen', 'otel_traces')").json()["rows"]
    assert tables == [["otel_traces"]]
    assert keyed.get("/readyz").status_code == 200


def test_a_result_over_the_row_limit_is_413(keyed: ServerProcess) -> None:
    response = sql(keyed, "SELECT number FROM numbers(20000)")
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "result_too_large"
    assert "5000 rows" in response.json()["error"]["message"] and "LIMIT" in response.json()["error"]["message"]
    assert sql(keyed, "SELECT number FROM numbers(20000) LIMIT 5000").json()["row_count"] == 5000


def test_a_query_over_the_memory_limit_is_413(keyed: ServerProcess) -> None:
    response = sql(keyed, "SELECT length(groupArray(repeat('x', 100))) FROM numbers(5000000)")
    assert response.status_code == 413, response.text
    assert "64 MiB of memory" in response.json()["error"]["message"]


@pytest.mark.parametrize("query", [
    "SELECT repeat('x', 200000000)",  # one row of 200 MB
    "SELECT groupArray(number) FROM numbers(100000000)",  # one row of an 800 MB array
    "SELECT t.TraceId, n.number FROM otel_traces AS t, numbers(100000) AS n",  # a cross join past the row limit
])
def test_huge_results_are_413_and_the_server_keeps_serving(keyed: ServerProcess, query: str) -> None:
    response = sql(keyed, query)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "result_too_large"
    assert span_count(keyed) == len(SERVICES) * SPANS_EACH


def test_a_slow_query_stops_at_the_time_limit_while_the_server_keeps_serving(keyed: ServerProcess) -> None:
    answers: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: answers.append(sql(keyed, "SELECT count() FROM system.numbers")))
    started = time.monotonic()
    slow.start()
    time.sleep(0.3)
    health = httpx.get(f"{keyed.url}/api/v1/status", headers=AUTH, timeout=10)
    assert health.status_code == 200 and time.monotonic() - started < 2  # answered while the query runs
    slow.join(30)
    assert answers and answers[0].status_code == 504, answers and answers[0].text
    assert "2 s limit" in answers[0].json()["error"]["message"]
    assert time.monotonic() - started < 10
    # The connection that timed out is not reused with the failed query's output in it.
    for _ in range(3):
        assert sql(keyed, "SELECT 'fresh' AS s").json()["rows"] == [["fresh"]]


def test_queries_past_what_may_wait_are_429_at_once(keyed: ServerProcess) -> None:
    """Two workers, so at most eight slow queries are admitted; the rest are turned away at once with
    Retry-After, on the API and on the SQL port alike, and the server answers everything else."""
    slow = "SELECT count() FROM system.numbers"
    with ThreadPoolExecutor(20) as pool:
        api = [pool.submit(sql, keyed, slow) for _ in range(14)]
        time.sleep(0.5)
        port = httpx.get(f"http://127.0.0.1:{keyed.sql_port}/", params={"query": slow, "password": KEY}, timeout=60)
        assert keyed.get("/readyz").status_code == 200
        statuses = sorted(f.result().status_code for f in api)
    assert statuses.count(504) <= 8 and statuses.count(429) >= 6, statuses
    refused = next(f.result() for f in api if f.result().status_code == 429)
    assert refused.json()["error"]["code"] == "overloaded" and int(refused.headers["Retry-After"]) >= 1
    assert port.headers["X-ClickHouse-Exception-Code"] == "202", port.text
    assert sql(keyed, "SELECT 1 AS ok").json()["rows"] == [[1]]


def test_an_empty_or_oversized_query_is_a_400(keyed: ServerProcess) -> None:
    assert sql(keyed, "").status_code == 400
    assert sql(keyed, "   ").json()["error"]["message"] == "the query is empty"
    assert sql(keyed, "SELECT '" + "x" * 300_000 + "'").status_code == 400


# --- the ClickHouse HTTP interface on --sql-port --------------------------------------------

def client(server: ServerProcess, **kwargs) -> clickhouse_connect.driver.Client:
    return clickhouse_connect.get_client(host="127.0.0.1", port=server.sql_port, **kwargs)


def test_clickhouse_connect_reads_the_embedded_store_with_the_key(keyed: ServerProcess) -> None:
    reader = client(keyed, username="grafana", password=KEY)
    try:
        counts = reader.query("SELECT ServiceName, count() FROM otel_traces GROUP BY ServiceName ORDER BY 1")
        assert counts.result_rows == [(s, SPANS_EACH) for s in SERVICES]
        assert counts.column_types[1].name == "UInt64"
        arrow = reader.query_arrow("SELECT TraceId, Duration FROM otel_traces ORDER BY Timestamp LIMIT 3")
        assert arrow.num_rows == 3 and arrow.column_names == ["TraceId", "Duration"]
        bound = reader.query("SELECT count() FROM otel_traces WHERE ServiceName = {s:String}",
                             parameters={"s": SERVICES[0]})
        assert bound.result_rows == [(SPANS_EACH,)]
        logs = reader.query_df("SELECT ServiceName, Body FROM otel_logs ORDER BY ServiceName")
        assert list(logs["Body"]) == [f"{s} handled a request" for s in SERVICES]
        with pytest.raises(DatabaseError, match="DROP statements are refused") as refused:
            reader.command("DROP TABLE otel_traces")
        assert "164" in str(refused.value)
        with pytest.raises(DatabaseError, match="Cannot modify 'readonly' setting"):
            reader.query("SELECT 1 SETTINGS readonly = 0")
        # system.settings shows every setting read-only, so the client itself declines to change one.
        with pytest.raises(Exception, match="readonly"):
            reader.query("SELECT 1", settings={"readonly": 0})
    finally:
        reader.close()
    assert span_count(keyed) == len(SERVICES) * SPANS_EACH


def test_the_key_is_the_password_of_any_user_as_clickhouse_takes_it(keyed: ServerProcess) -> None:
    base = f"http://127.0.0.1:{keyed.sql_port}/"
    select = {"query": "SELECT 'ok'"}
    basic = base64.b64encode(f"anyone:{KEY}".encode()).decode()
    for how in ({"headers": {"Authorization": f"Basic {basic}"}},
                {"headers": {"X-ClickHouse-User": "grafana", "X-ClickHouse-Key": KEY}},
                {"params_extra": {"user": "bi", "password": KEY}}):
        params = {**select, **how.get("params_extra", {})}
        response = httpx.get(base, params=params, headers=how.get("headers"))
        assert (response.status_code, response.text) == (200, "ok\n"), how
    for wrong in ({}, {"headers": {"X-ClickHouse-User": "grafana", "X-ClickHouse-Key": "nope"}},
                  {"headers": {"Authorization": "Basic " + base64.b64encode(b"default:nope").decode()}},
                  {"headers": {"Authorization": "Basic !!!"}}):
        response = httpx.get(base, params=select, headers=wrong.get("headers"))
        assert response.status_code == 401, wrong
        assert response.headers["X-ClickHouse-Exception-Code"] == "516"
        assert "AUTHENTICATION_FAILED" in response.text
    with pytest.raises(DatabaseError, match="Authentication failed"):
        client(keyed, username="default", password="wrong-password")
    assert httpx.get(f"{base}ping").text == "Ok.\n"  # a health check needs no password, as on ClickHouse


def test_clickhouse_connect_without_a_key_and_the_formats_it_and_grafana_ask_for(open_server: ServerProcess) -> None:
    reader = client(open_server)  # user "default", no password
    try:
        assert reader.query("SELECT count() FROM otel_traces").result_rows == [(len(SERVICES) * SPANS_EACH,)]
        assert reader.command("SELECT version()")  # what clickhouse-connect and Grafana ask first
    finally:
        reader.close()
    base = f"http://127.0.0.1:{open_server.sql_port}/"
    assert httpx.get(base).text == "Ok.\n"
    assert httpx.get(base, params={"query": "SELECT 1"}).text == "1\n"  # TabSeparated by default
    as_json = httpx.post(base, params={"default_format": "JSON"}, content="SELECT 2 AS two")
    assert as_json.json()["meta"] == [{"name": "two", "type": "UInt8"}] and as_json.json()["data"] == [{"two": 2}]
    assert as_json.headers["X-ClickHouse-Format"] == "JSON"
    compact = httpx.post(base, content="SELECT 3 AS three FORMAT JSONCompact")
    assert compact.json()["data"] == [[3]] and compact.headers["X-ClickHouse-Format"] == "JSONCompact"
    rowbinary = httpx.post(base, content="SELECT toUInt8(7) AS seven FORMAT RowBinaryWithNamesAndTypes")
    assert rowbinary.content == b"\x01\x05seven\x05UInt8\x07"
    native = httpx.post(base, params={"default_format": "Native"}, content="SELECT toUInt8(9) AS n")
    assert native.content == b"\x01\x01\x01n\x05UInt8\x09"  # one column, one row: name, type, value
    # The query split between the URL and the body, as ClickHouse reads it.
    split = httpx.post(base, params={"query": "SELECT count() FROM otel_traces"}, content=" WHERE Duration > 0")
    assert split.text == f"{len(SERVICES) * SPANS_EACH}\n"


@pytest.fixture(scope="module")
def corpus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server holding the OTLP corpus (tests/fixtures/otlp: four instrumentors' traces, logs and
    metrics of every kind), so every table of the store has rows of every column type."""
    port = free_port()
    server = ServerProcess(tmp_path_factory.mktemp("sql-corpus") / "data",
                           extra_args=["--ingest-workers", "0", "--sql-port", str(port)]).start()
    server.sql_port = port
    for path in sorted((REPO / "tests" / "fixtures" / "otlp").glob("*/*.*.pb")):
        signal = path.name.split(".")[1]
        assert post(server.url, signal, path.read_bytes()).status_code == 200, path
    yield server
    server.terminate()


def test_native_for_a_protocol_revision_decodes_as_plain_native_does(corpus_server: ServerProcess) -> None:
    """clickhouse-connect probes `client_protocol_version=54405` and, when the answer has a server's
    BlockInfo, reads every Native answer that way; its rows must equal those read without it, for
    every table of the store (Maps, nested Arrays, LowCardinality, Nullable, DateTime64, Bool)."""
    import clickhouse_connect.common

    open_server = corpus_server
    with_revision = client(open_server)
    clickhouse_connect.common.set_setting("use_protocol_version", False)
    try:
        plain = client(open_server)
    finally:
        clickhouse_connect.common.set_setting("use_protocol_version", True)
    try:
        assert (with_revision.protocol_version, plain.protocol_version) == (54405, 0)
        tables = [r[0] for r in plain.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                            "AND engine LIKE '%MergeTree' ORDER BY name").result_rows]
        filled = set()
        for table in tables:
            query = f"SELECT * FROM {table} LIMIT 200"
            got, want = with_revision.query(query).result_rows, plain.query(query).result_rows
            assert sorted(map(repr, got)) == sorted(map(repr, want)), table
            if want:
                filled.add(table)
        assert {"otel_traces", "llm_calls", "otel_logs", "otel_metrics_sum", "otel_metrics_histogram"} <= filled, filled
        # Types the store does not use, and a LowCardinality column of many distinct values over several blocks.
        exotic = ("SELECT number, toLowCardinality(toString(number % 20000)) AS lc, "
                  "[toLowCardinality(toNullable(toString(number % 3)))] AS alc, "
                  "map(toLowCardinality(toString(number % 5)), [number]) AS m, "
                  "CAST((number, 'x'), 'Tuple(a UInt64, b String)') AS t, toDecimal64(number, 3) AS d, "
                  "toFixedString('ab', 2) AS f, toUUID(concat('00000000-0000-0000-0000-', leftPad(toString(number), 12, '0'))) AS u, toIPv6('::1') AS ip, "
                  "CAST(number % 2, 'Enum8(\\'a, b\\' = 0, \\'c\\' = 1)') AS e, if(number % 2 = 1, NULL, number) AS n "
                  "FROM numbers(30000) ORDER BY number")
        assert with_revision.query(exotic).result_rows == plain.query(exotic).result_rows
    finally:
        with_revision.close()
        plain.close()


def test_native_for_a_newer_revision_has_block_info_and_serialization_flags(open_server: ServerProcess) -> None:
    """What clickhouse-go (Grafana's plugin) reads: each block opens with BlockInfo and each column's
    type is followed by a custom-serialization flag (ClickHouse's NativeWriter at revision >= 54454)."""
    base = f"http://127.0.0.1:{open_server.sql_port}/"
    response = httpx.post(base, params={"default_format": "Native", "client_protocol_version": "54460"},
                          content="SELECT toUInt32(7) AS a, 'x' AS b")
    assert response.content == (b"\x01\x00\x02\xff\xff\xff\xff\x00" + b"\x02\x01"
                                + b"\x01a\x06UInt32\x00" + b"\x07\x00\x00\x00"
                                + b"\x01b\x06String\x00" + b"\x01x")
    older = httpx.post(base, params={"default_format": "Native", "client_protocol_version": "54405"},
                       content="SELECT toUInt32(7) AS a")
    assert older.content == b"\x01\x00\x02\xff\xff\xff\xff\x00\x01\x01\x01a\x06UInt32\x07\x00\x00\x00"
    whole = httpx.post(base, params={"default_format": "Native", "client_protocol_version": "54460"},
                       content="SELECT * FROM otel_traces")
    assert whole.status_code == 200 and whole.content.startswith(b"\x01\x00\x02\xff\xff\xff\xff\x00")


def test_the_interface_refuses_what_writes_or_reaches_outside(open_server: ServerProcess) -> None:
    base = f"http://127.0.0.1:{open_server.sql_port}/"
    cases = [
        ({"query": "DROP TABLE otel_traces"}, 403, "164"),
        ({"query": "INSERT INTO otel_logs (Body) VALUES ('x')"}, 403, "164"),
        ({"query": "SELECT * FROM system.users"}, 403, "164"),
        ({"query": "SELECT file('/etc/passwd')"}, 403, "164"),
        ({"query": "SELECT 1", "readonly": "0"}, 403, "164"),
        ({"query": "SELECT 1", "allow_ddl": "1"}, 403, "164"),
        ({"query": "SELECT 1", "database": "system"}, 403, "291"),
        ({"query": "SELECT 1; SELECT 2"}, 400, "62"),
        ({"query": "SELECT nope FROM otel_traces"}, 404, "47"),
    ]
    for params, status, code in cases:
        response = httpx.get(base, params=params)
        assert (response.status_code, response.headers.get("X-ClickHouse-Exception-Code")) == (status, code), \
            (params, response.text)
        assert response.text.startswith(f"Code: {code}. DB::Exception: ")
    # Without a key, a page that rebinds its DNS name to 127.0.0.1 gets nothing (as on the main port).
    rebound = httpx.get(base, params={"query": "SELECT 1"}, headers={"Host": f"evil.example:{open_server.sql_port}"})
    assert rebound.status_code == 400 and "loopback host names" in rebound.text
    assert httpx.get(base, params={"query": "SELECT 1"}, headers={"Host": "localhost"}).text == "1\n"
    # Harmless settings clients send are accepted; the server's limits stay in force.
    ok = httpx.get(base, params={"query": "SELECT 5", "max_execution_time": "60", "readonly": "1",
                                 "send_progress_in_http_headers": "1", "session_id": "abc"})
    assert ok.text == "5\n"
    huge = httpx.get(base, params={"query": "SELECT number FROM numbers(200000)"})
    assert huge.headers["X-ClickHouse-Exception-Code"] == "396"
    assert httpx.get(base, params={"query": "SELECT count() FROM otel_traces"}).text == \
        f"{len(SERVICES) * SPANS_EACH}\n"


def test_the_grafana_dashboards_clickhouse_queries_run_through_the_interface(open_server: ServerProcess) -> None:
    """What Grafana's ClickHouse data source sends for the shipped dashboard: its schema lookups
    and every panel's SQL, with the plugin's macros expanded (tests/grafana_queries.py)."""
    reader = client(open_server, username="grafana")
    board = json.loads(DASHBOARD.read_text())
    now = int(time.time())
    window = {"start_s": now - 3600, "end_s": now + 60, "interval_s": 10}
    try:
        assert "default" in {r[0] for r in reader.query("SELECT name FROM system.databases").result_rows}
        tables = {r[0] for r in reader.query("SELECT name FROM system.tables WHERE database = 'default'").result_rows}
        assert {"otel_traces", "otel_logs"} <= tables
        assert reader.query("DESC TABLE default.otel_traces").result_rows
        service_var = next(v for v in board["templating"]["list"] if v["name"] == "service")["query"]
        services = {r[0] for r in reader.query(clickhouse_sql(service_var, board, **window)).result_rows}
        assert set(SERVICES) <= services
        for target in clickhouse_targets(board):
            reader.query(clickhouse_sql(target.query["rawSql"], board, **window))  # raises on refusal
    finally:
        reader.close()


# --- a ClickHouse server as the store --------------------------------------------------------

def test_sql_on_a_clickhouse_server_is_read_only_and_limited_too(tmp_path: Path) -> None:
    """The same endpoint over the ClickHouse backend (the tests' ClickHouse stand-in: see
    tests/endpoint_process.py): readonly=1 and the limits travel with each query as settings."""
    endpoint = EndpointProcess(tmp_path / "clickhouse", user="llmlens", password="ch-password-123")
    server = ServerProcess(tmp_path / "unused", env={"LLMLENS_API_KEY": KEY}, extra_args=[
        "--ingest-workers", "0", "--clickhouse-url", endpoint.url("llmlens_sql"), "--sql-timeout-s", "2",
        "--sql-max-result-rows", "5000"])
    try:
        server.start()
        _seed(server, AUTH)
        assert span_count(server) == len(SERVICES) * SPANS_EACH
        answer = sql(server, "SELECT ServiceName, count() AS n FROM otel_traces GROUP BY ServiceName ORDER BY 1")
        assert answer.json()["columns"][1] == {"name": "n", "type": "UInt64"}
        assert answer.json()["rows"] == [[s, SPANS_EACH] for s in SERVICES]
        for query, says in (("DROP TABLE otel_traces", "DROP statements are refused"),
                            ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "file() is refused"),
                            ("SELECT 1 SETTINGS readonly = 0", "readonly"),
                            ("SELECT * FROM system.users", "system.users is refused")):
            response = sql(server, query)
            assert response.status_code == 400 and says in response.json()["error"]["message"], response.text
        too_many = sql(server, "SELECT number FROM numbers(20000)")
        assert too_many.status_code == 413, too_many.text
        assert sql(server, "SELECT count() FROM system.numbers").status_code == 504
        assert span_count(server) == len(SERVICES) * SPANS_EACH
    finally:
        if server.proc and server.proc.poll() is None:
            server.terminate()
        endpoint.stop()

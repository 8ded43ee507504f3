"""The SQL interfaces' pieces that need no server: the guard on ClickHouse's parse tree (trees printed
by chDB's own EXPLAIN AST), the ClickHouse HTTP protocol's request reading, and the [sql] settings."""

from __future__ import annotations

import base64
import zlib

import pytest

from llmlens.server.errors import SqlRefused
from llmlens.server.settings import SettingsError, load_settings
from llmlens.server.sql import clickhouse_protocol as ch
from llmlens.server.sql.guard import check_read_only, parse_ast


@pytest.fixture(scope="module")
def explain(tmp_path_factory: pytest.TempPathFactory):
    """EXPLAIN AST on a real chDB engine, as the SQL engine runs it (one engine per process, closed after)."""
    import chdb

    conn = chdb.connect(str(tmp_path_factory.mktemp("guard")))
    yield lambda sql: conn.query(f"EXPLAIN AST {sql}", "TSVRaw").bytes().decode()
    conn.close()


@pytest.mark.parametrize("sql", [
    "SELECT 1", "WITH x AS (SELECT 1) SELECT * FROM x", "SELECT * FROM numbers(3) FORMAT JSON",
    "SELECT name FROM system.tables", "SELECT 1 UNION ALL SELECT 2", "DESCRIBE TABLE system.columns",
    "SHOW TABLES", "EXPLAIN SELECT 1", "SELECT * FROM view(SELECT number FROM numbers(2))",
    "SELECT a FROM t WHERE a IN (SELECT a FROM u)", "SELECT lower('file')",
])
def test_reads_pass(explain, sql: str) -> None:
    check_read_only(parse_ast(explain(sql)))


@pytest.mark.parametrize(("sql", "says"), [
    ("INSERT INTO t VALUES (1)", "statements are refused"),
    ("KILL QUERY WHERE 1", "statements are refused"),
    ("SHOW GRANTS", "statements are refused"),
    ("SELECT file('/etc/passwd')", "file() is refused"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "file() is refused"),
    ("SELECT * FROM t JOIN system.users AS u ON 1", "system.users is refused"),
    ("SELECT * FROM information_schema.processes", "information_schema.processes is refused"),
    ("SELECT 1 WHERE 1 GLOBAL NOT IN system.quotas", "system.quotas is refused"),
    ("SELECT (SELECT max(x) FROM (SELECT dictGetString('d', 'a', 1) AS x))", "dictGetString() is refused"),
    ("SELECT 1 INTO OUTFILE 'x'", "INTO OUTFILE"),
])
def test_what_readonly_lets_through_is_refused(explain, sql: str, says: str) -> None:
    with pytest.raises(SqlRefused, match=says.replace("(", r"\(").replace(")", r"\)")):
        check_read_only(parse_ast(explain(sql)))


def test_the_output_format_is_read_from_the_tree(explain) -> None:
    assert check_read_only(parse_ast(explain("SELECT 1 FORMAT RowBinaryWithNamesAndTypes"))).output_format == \
        "RowBinaryWithNamesAndTypes"
    assert check_read_only(parse_ast(explain("SELECT 'FORMAT CSV'"))).output_format is None


def test_two_roots_are_two_statements() -> None:
    with pytest.raises(SqlRefused, match="one statement"):
        parse_ast("SelectWithUnionQuery (children 1)\n ExpressionList\nShowTables\n")


def test_a_request_is_read_as_clickhouse_reads_it() -> None:
    request = ch.parse_request("POST", "query=SELECT%20%7Bn%3AUInt8%7D&database=default&param_n=7&max_threads=2"
                               "&session_id=x", b" + 1")
    assert request.sql == "SELECT {n:UInt8}" and ch.full_sql(request) == "SELECT {n:UInt8}\n + 1"
    assert request.query_params == {"n": "7"} and request.settings == {"max_threads": "2"}
    assert ch.parse_request("POST", "", b"SELECT 2").sql == "SELECT 2"
    with pytest.raises(ch.ClickHouseError, match="Unknown setting"):
        ch.parse_request("GET", "bad-name=1", b"")


def test_credentials_come_from_basic_auth_headers_or_parameters() -> None:
    basic = "Basic " + base64.b64encode(b"u1:p1").decode()
    assert ch.credentials({"authorization": basic, "x-clickhouse-key": "p2"}, {"password": "p3"}) == ("u1", "p1")
    assert ch.credentials({"x-clickhouse-user": "u2", "x-clickhouse-key": "p2"}, {"password": "p3"}) == ("u2", "p2")
    assert ch.credentials({}, {"user": "u3", "password": "p3"}) == ("u3", "p3")
    assert ch.credentials({}, {}) == ("default", "")


def test_a_compressed_body_is_bounded_after_decoding() -> None:
    bomb = zlib.compress(b"x" * 10_000_000)
    with pytest.raises(ch.ClickHouseError, match="over 1000 bytes"):
        ch.decode_body(bomb, "deflate", max_bytes=1000)
    assert ch.decode_body(zlib.compress(b"SELECT 1"), "deflate", 1000) == b"SELECT 1"
    with pytest.raises(ch.ClickHouseError, match="unsupported Content-Encoding"):
        ch.decode_body(b"x", "snappy")


@pytest.mark.parametrize(("flags", "says"), [
    ({"sql_port": 4318}, "sql port must differ"),
    ({"sql_port": 70000}, "sql port must be between"),
    ({"sql_timeout_s": 0}, "sql timeout_s"),
    ({"sql_max_result_rows": 0}, "sql max_result_rows"),
    ({"sql_max_concurrent": 0}, "sql max_concurrent"),
])
def test_bad_sql_settings_are_refused_by_name(flags: dict, says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        load_settings(flags, env={})

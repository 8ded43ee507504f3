"""The schema templates rendered for the embedded store / a single server and for a cluster.

Every rendered statement is parsed by ClickHouse's own parser (chDB's formatQuery, the same
parser a server runs), the cluster's too. Executing them: the single layout runs for real in
test_store.py (chDB) and test_clickhouse_backend.py (ClickHouse's HTTP interface); the cluster
layout's CREATE statements run in test_clickhouse_cluster_ddl.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

from llmlens.server.store import ddl
from llmlens.server.store.clickhouse_backend import disk_usage_sql
from llmlens.server.store.ddl import Layout, TemplateError, render
from llmlens.server.store.schema import _TTL_COLUMNS, apply_retention, migrate, migrations, script

CLUSTER = Layout(cluster="llmlens", database="llmlens")
LAYOUTS = {
    "single": Layout(),
    "cluster": CLUSTER,
    # A macro for the cluster name (the Altinity operator defines {cluster}) and a database name
    # that must be quoted.
    "cluster-macro": Layout(cluster="{cluster}", database="llm-lens"),
}

# sha256 (first 16 hex digits) of each applied migration's statements as the files held them before
# they became templates (ttl_days = 30). A store that ran them must get the same meaning again: a
# migration, once released, never changes. New migrations need no entry.
RELEASED = {
    "001_initial.sql": "99028324d098ebda",
    "002_trace_index_from_writer.sql": "e3bb939e63943365",
    "003_trace_id_ts_view.sql": "9418ef12bc73cbf9",
    "004_trace_index_dedup_window.sql": "f40d4406bd22f0df",
    "005_request_digests.sql": "2762a14670b59b2d",
    "006_alerts.sql": "9c14c23f4e1699c7",
    "007_llm_call_conventions.sql": "c59ad26de4a6a32a",
}

# How the cluster places each table's rows (docs/clickhouse.md says the same).
SHARDING = {
    "otel_traces": "cityHash64(TraceId)",
    "llm_calls": "cityHash64(TraceId)",
    "llm_scores": "cityHash64(TraceId)",
    "trace_index": "cityHash64(TraceId)",
    "otel_logs": "if(TraceId != '', cityHash64(TraceId), cityHash64(ServiceName, Timestamp))",
    **{f"otel_metrics_{kind}": "cityHash64(ServiceName, MetricName, Attributes)"
       for kind in ("gauge", "sum", "histogram", "exponential_histogram", "summary")},
    "llmlens_request_digests": "cityHash64(Digest)",
    "llmlens_alert_state": "cityHash64(Rule)",
    "llmlens_alert_history": "cityHash64(Rule)",
    "llmlens_alert_mutes": "cityHash64(Rule)",
}


@pytest.fixture(scope="module")
def parser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A chDB connection: ClickHouse's parser (one engine per process, closed after the module)."""
    import chdb

    conn = chdb.connect(str(tmp_path_factory.mktemp("parser")))
    yield conn
    conn.close()


def parse(conn: Any, statement: str) -> str:
    """The statement as ClickHouse's parser reads it back (formatQuery); raises on a syntax error."""
    literal = "'" + statement.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return conn.query(f"SELECT formatQuery({literal})", "TSVRaw").bytes().decode()


def every_statement(layout: Layout) -> list[str]:
    """What migrate() and apply_retention() can send, and what `llmlens db schema` prints."""
    out = [ddl.create_database(layout), ddl.migrations_table(layout), ddl.record_migration(layout)]
    for _, _, sql in migrations():
        out += render(sql, layout, 30)
    out += [ddl.modify_ttl(layout, table, column, 90) for table, column in _TTL_COLUMNS.items()]
    return out


@pytest.mark.parametrize("cluster", [None, "llmlens", "{cluster}"])
def test_the_disk_usage_query_parses(parser: Any, cluster: str | None) -> None:
    formatted = parse(parser, disk_usage_sql(cluster))
    assert ("clusterAllReplicas" in formatted) == bool(cluster)


def test_the_single_layout_is_what_the_released_migrations_held() -> None:
    rendered = {name: render(sql, Layout(), 30) for _, name, sql in migrations()}
    for name, digest in RELEASED.items():
        assert hashlib.sha256("\n;\n".join(rendered[name]).encode()).hexdigest()[:16] == digest, name
    assert all("{" not in s for statements in rendered.values() for s in statements)  # nothing left unfilled


@pytest.mark.parametrize("layout_name", list(LAYOUTS))
def test_every_rendered_statement_parses(parser: Any, layout_name: str) -> None:
    layout = LAYOUTS[layout_name]
    statements = every_statement(layout)
    assert len(statements) > 40
    for statement in statements:
        formatted = parse(parser, statement)
        assert formatted.split()[0] in ("CREATE", "DROP", "ALTER", "INSERT"), formatted
        if layout.cluster and not statement.startswith("INSERT"):
            assert " ON CLUSTER " in formatted, formatted
        if not layout.cluster:
            assert not re.search(r"ON CLUSTER|Replicated|Distributed", formatted), formatted


def test_the_printed_script_parses_statement_by_statement(parser: Any) -> None:
    text = script(CLUSTER, 30)
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    statements = [s.strip() for s in re.split(r";\s*$", body, flags=re.MULTILINE) if s.strip()]
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS llmlens ON CLUSTER 'llmlens'"
    assert statements[-1] == (f"INSERT INTO llmlens.llmlens_schema_migrations (Version, Name) VALUES "
                              f"({migrations()[-1][0]}, '{migrations()[-1][1]}')")
    for statement in statements:
        parse(parser, statement)


def _created(statements: list[str]) -> dict[str, str]:
    found = {}
    for statement in statements:
        match = re.match(r"CREATE (?:TABLE|VIEW|MATERIALIZED VIEW) IF NOT EXISTS (\S+)", statement)
        if match:
            found[match.group(1)] = statement
    return found


def test_the_cluster_has_a_replicated_local_table_and_a_distributed_table_per_table() -> None:
    single = _created([s for _, _, sql in migrations() for s in render(sql, Layout(), 30)])
    cluster = _created(every_statement(CLUSTER))
    tables = {name for name, statement in single.items() if "MergeTree" in statement}
    assert set(SHARDING) <= tables
    for table in tables:
        local = cluster[f"llmlens.{table}_local"]
        assert re.search(r"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/\{database\}/\{table\}', "
                         r"'\{replica\}'", local), local
        assert local.split("(", 1)[1].split(") ENGINE")[0] == single[table].split("(", 1)[1].split(") ENGINE")[0]
        if table in SHARDING:
            assert cluster[f"llmlens.{table}"] == (
                f"CREATE TABLE IF NOT EXISTS llmlens.{table} ON CLUSTER 'llmlens' AS llmlens.{table}_local\n"
                f"ENGINE = Distributed('llmlens', 'llmlens', '{table}_local', {SHARDING[table]})")
    # ReplacingMergeTree keeps its version column after the replication arguments.
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', UpdatedAt)" \
        in cluster["llmlens.llmlens_alert_state_local"]
    assert "ReplicatedAggregatingMergeTree(" in cluster["llmlens.trace_index_local"]
    # The migrations table: one copy on every host, so a version is recorded once for the cluster.
    assert "ReplicatedMergeTree('/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}')" \
        in cluster["llmlens.llmlens_schema_migrations"]


def test_views_and_alters_name_the_right_tables_on_a_cluster() -> None:
    statements = every_statement(CLUSTER)
    # Grafana's trace-time lookup is a view over the Distributed trace_index.
    view = _created(statements)["llmlens.otel_traces_trace_id_ts"]
    assert "FROM llmlens.trace_index\nGROUP BY TraceId" in view
    # Materialized views (schema 1, dropped in 2 and 3) fire on the local tables of each shard.
    for mv in ("trace_index_spans_mv", "trace_index_llm_mv", "otel_traces_trace_id_ts_mv"):
        assert re.search(r"TO llmlens\.\w+_local AS\n.*FROM llmlens\.\w+_local\n", _created(statements)[f"llmlens.{mv}"],
                         re.DOTALL)
    # A new column reaches the local tables first, then the Distributed table over them.
    adds = [s for s in statements if "ADD COLUMN IF NOT EXISTS ToolNames" in s]
    assert [s.split()[2] for s in adds] == ["llmlens.llm_calls_local", "llmlens.llm_calls"]
    # TTL and table settings live on the tables that hold rows.
    ttl = [s for s in statements if "MODIFY TTL" in s]
    assert ttl and all(re.match(r"ALTER TABLE llmlens\.\w+_local ON CLUSTER 'llmlens' MODIFY TTL", s) for s in ttl)
    assert "ALTER TABLE llmlens.trace_index_local ON CLUSTER 'llmlens' MODIFY SETTING" in "\n".join(statements)


def test_nothing_is_left_to_a_hosts_default_database(parser: Any) -> None:
    """ON CLUSTER DDL has resolved unqualified names in each host's default database in several
    releases: every table a cluster statement names carries the database, as the parser reads it."""
    for statement in every_statement(CLUSTER)[1:]:  # after CREATE DATABASE
        tree = parser.query(f"EXPLAIN AST {statement}", "TSVRaw").bytes().decode()
        head = re.match(r"(CreateQuery|AlterQuery|DropQuery) (\S*) (\S+)", tree)
        if head:  # (INSERT INTO is checked on the text below)
            assert head.group(2) == "llmlens", tree.splitlines()[0]
        named = re.findall(r"TableIdentifier (\S+)", tree)
        named += re.findall(r"(?:ON CLUSTER 'llmlens' AS|\bTO|INSERT INTO) (\S+)", statement)
        assert all(name.startswith("llmlens.") for name in named), (named, statement[:120])


def test_each_and_distributed_placeholders() -> None:
    template = ("CREATE TABLE IF NOT EXISTS {local:t}{on_cluster} (a UInt8) ENGINE = {engine:MergeTree()} "
                "ORDER BY a TTL toDate('2020-01-01') + toIntervalDay({ttl_days});\n"
                "{distributed:t BY cityHash64(a)};\n"
                "ALTER TABLE {each:t}{on_cluster} ADD COLUMN IF NOT EXISTS b UInt8;\n")
    assert render(template, Layout(), 7) == [
        "CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = MergeTree() ORDER BY a TTL toDate('2020-01-01') + "
        "toIntervalDay(7)",
        "ALTER TABLE t ADD COLUMN IF NOT EXISTS b UInt8",
    ]
    assert render(template, Layout(cluster="c", database="d"), 7) == [
        "CREATE TABLE IF NOT EXISTS d.t_local ON CLUSTER 'c' (a UInt8) ENGINE = ReplicatedMergeTree("
        "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}') ORDER BY a TTL toDate('2020-01-01') + "
        "toIntervalDay(7)",
        "CREATE TABLE IF NOT EXISTS d.t ON CLUSTER 'c' AS d.t_local\n"
        "ENGINE = Distributed('c', 'd', 't_local', cityHash64(a))",
        "ALTER TABLE d.t_local ON CLUSTER 'c' ADD COLUMN IF NOT EXISTS b UInt8",
        "ALTER TABLE d.t ON CLUSTER 'c' ADD COLUMN IF NOT EXISTS b UInt8",
    ]


@pytest.mark.parametrize(("template", "message"), [
    ("SELECT {nope}", "unknown placeholder {nope}"),
    ("SELECT {name:}", "unknown placeholder {name:}"),
    ("SELECT {frobnicate:x}", "unknown placeholder {frobnicate:x}"),
    ("ALTER TABLE {each:a} ADD COLUMN x UInt8 AFTER {each:b}", "one {each:...} table per statement"),
    ("CREATE TABLE t (a UInt8) ENGINE = {engine:Log}", "expected a MergeTree-family engine"),
    ("{distributed:t}", "expected {distributed:TABLE BY KEY}"),
])
def test_a_wrong_template_is_named(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        render(template, CLUSTER, 30)


@pytest.mark.parametrize("name", ["", "a b", "x;DROP", "c'", "{cluster", "-x"])
def test_bad_cluster_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="bad ClickHouse cluster name"):
        Layout(cluster=name)


@pytest.mark.parametrize("days", [0, 3651, True, 1.5])
def test_retention_is_checked(days: Any) -> None:
    with pytest.raises(ValueError, match="ttl_days must be an integer from 1 to 3650"):
        render("SELECT 1", Layout(), days)


class Recorder:
    """Records what migrate() and apply_retention() send; answers as an empty store would."""

    name = "clickhouse"

    def __init__(self, tables: dict[str, str] | None = None, version: int = 0) -> None:
        self.sent: list[str] = []
        self.tables = tables or {}
        self.version = version

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        if sql == ddl.record_migration(CLUSTER):  # as the script writes it: values in place of parameters
            sql = ddl.record_migration_literal(CLUSTER, params["v"], params["n"])
        self.sent.append(sql)

    def fetch(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if "system.tables" in sql:
            rows = [{"name": name, "ddl": text} for name, text in self.tables.items()]
            return [r for r in rows if r["name"] == params["t"]] if params else rows
        return [{"v": self.version}]


def test_db_schema_prints_exactly_what_migrate_runs() -> None:
    recorder = Recorder()
    assert migrate(recorder, 30, CLUSTER) == migrations()[-1][0]
    text = script(CLUSTER, 30)
    at = 0
    for statement in recorder.sent:  # every statement, in the same order
        found = text.find(statement + ";", at)
        assert found >= 0, statement[:200]
        at = found + len(statement)
    # and nothing else: the script's one more statement is CREATE DATABASE, which the backend runs.
    assert len(recorder.sent) == text.count(";\n") - 1


def test_a_start_that_finds_the_schema_current_runs_no_ddl() -> None:
    """On a cluster every DDL waits for every host: a replica restarting while one is down must not."""
    recorder = Recorder({"llmlens_schema_migrations": "..."}, version=migrations()[-1][0])
    assert migrate(recorder, 30, CLUSTER) == migrations()[-1][0]
    assert recorder.sent == []


def test_retention_changes_reach_the_local_tables_on_every_shard() -> None:
    tables = {f"{table}_local": "... TTL toDateTime(x) + toIntervalDay(30) ..." for table in _TTL_COLUMNS}
    tables["otel_logs_local"] = "... TTL TimestampTime + toIntervalDay(90) ..."  # already at 90 days
    recorder = Recorder(tables)
    apply_retention(recorder, 90, CLUSTER)
    assert recorder.sent == [f"ALTER TABLE llmlens.{table}_local ON CLUSTER 'llmlens' MODIFY TTL "
                             f"toDateTime({column}) + toIntervalDay(90)"
                             for table, column in _TTL_COLUMNS.items() if table != "otel_logs"]

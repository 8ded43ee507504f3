"""Versioned schema: numbered SQL templates in sql/, applied in order, recorded in a table.

A later release adds `008_*.sql`; `migrate()` applies what a store has not seen yet. The same
templates serve the embedded store, a ClickHouse server and a cluster (store/ddl.py renders them),
and `script()` prints what `migrate()` runs, for a DBA to read (`llmlens db schema`).
"""

from __future__ import annotations

import re
from importlib import resources

from llmlens.server.store import ddl
from llmlens.server.store.backend import Backend
from llmlens.server.store.columns import TABLES
from llmlens.server.store.ddl import Layout

MAX_TTL_DAYS = ddl.MAX_TTL_DAYS
_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL template) of every bundled migration, in order."""
    found = []
    for entry in resources.files("llmlens.server.store").joinpath("sql").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def statements(sql: str, ttl_days: int, layout: Layout | None = None) -> list[str]:
    """A migration's statements for `layout` (default: the embedded store or a single server)."""
    return ddl.render(sql, layout or Layout(), ttl_days)


def layout_of(backend: Backend) -> Layout:
    """The layout a backend stores in: a cluster when it was opened with one."""
    cluster = getattr(backend, "cluster", None)
    if not cluster:
        return Layout()
    return Layout(cluster=cluster, database=backend.target.database)  # type: ignore[attr-defined]


def current_version(backend: Backend, layout: Layout | None = None) -> int:
    layout = layout or layout_of(backend)
    # Created only when missing: on a cluster the CREATE runs ON CLUSTER and waits for every host, and a
    # start that finds the schema current must not depend on every ClickHouse host being up.
    found = backend.fetch("SELECT name FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
                          {"t": ddl.MIGRATIONS})
    if not found:
        backend.execute(ddl.migrations_table(layout))
    rows = backend.fetch(f"SELECT max(Version) AS v FROM {layout.name(ddl.MIGRATIONS)}")
    return int(rows[0]["v"] or 0) if rows else 0


def migrate(backend: Backend, ttl_days: int, layout: Layout | None = None) -> int:
    """Bring the store to the newest schema; returns the version it is at.

    On a cluster every statement runs ON CLUSTER and the version is recorded once, in a table with a
    copy on every host. Statements are idempotent (IF [NOT] EXISTS), so a migration cut short (a host
    that did not answer in time) is finished by the next run, and two replicas starting at once only
    record a version twice.
    """
    layout = layout or layout_of(backend)
    ddl.check_ttl_days(ttl_days)
    version = current_version(backend, layout)
    for number, name, sql in migrations():
        if number <= version:
            continue
        for statement in ddl.render(sql, layout, ttl_days):
            backend.execute(statement)
        backend.execute(ddl.record_migration(layout), {"v": number, "n": name})
        version = number
    return version


def script(layout: Layout, ttl_days: int) -> str:
    """Every statement `migrate()` runs on an empty store, as a script (`llmlens db schema`)."""
    ddl.check_ttl_days(ttl_days)
    where = (f"a ClickHouse cluster {layout.cluster!r}, database {layout.database!r}" if layout.cluster
             else "the embedded store or a single ClickHouse server")
    every = migrations()
    parts = [f"-- llmlens schema {every[-1][0] if every else 0} for {where}; retention {ttl_days} days.\n"
             "-- `llmlens db init` runs these statements in this order (what a store has already seen is skipped)."]
    if layout.cluster:  # a single server's database is created by llmlens from the URL
        parts.append(ddl.create_database(layout) + ";")
    parts.append(ddl.migrations_table(layout) + ";")
    for number, name, sql in every:
        body = [f"-- {name}"]
        body += [statement + ";" for statement in ddl.render(sql, layout, ttl_days)]
        body.append(ddl.record_migration_literal(layout, number, name) + ";")
        parts.append("\n\n".join(body))
    return "\n\n".join(parts) + "\n"


def apply_retention(backend: Backend, ttl_days: int, layout: Layout | None = None) -> None:
    """Make the TTL of every table match the configured retention (it may change between runs).

    Only tables whose TTL differs are altered: MODIFY TTL re-checks every part of a table. On a
    cluster the tables holding rows are the local ones, and the ALTER runs ON CLUSTER: the TTL
    changes on every shard, whichever host llmlens is connected to.
    """
    layout = layout or layout_of(backend)
    ddl.check_ttl_days(ttl_days)
    tables = _table_ddl(backend)
    wanted = f"toIntervalDay({int(ttl_days)})"
    for table, column in _TTL_COLUMNS.items():
        if wanted not in tables.get(layout.local_name(table), wanted):
            backend.execute(ddl.modify_ttl(layout, table, column, ttl_days))


def _table_ddl(backend: Backend) -> dict[str, str]:
    rows = backend.fetch("SELECT name, create_table_query AS ddl FROM system.tables WHERE database = currentDatabase()")
    return {row["name"]: row["ddl"] for row in rows}


_TTL_COLUMNS = {
    "otel_traces": "Timestamp",
    "otel_logs": "TimestampTime",
    "otel_metrics_gauge": "TimeUnix",
    "otel_metrics_sum": "TimeUnix",
    "otel_metrics_histogram": "TimeUnix",
    "otel_metrics_exponential_histogram": "TimeUnix",
    "otel_metrics_summary": "TimeUnix",
    "llm_calls": "Timestamp",
    "llm_scores": "Timestamp",
    "trace_index": "Day",
    "llmlens_profile_samples": "Timestamp",
    "llmlens_profile_stacks": "Timestamp",
    "llmlens_profile_frames": "Timestamp",
}


# Tables written on every commit. Under sustained ingest their background merges took ~40% of the
# embedded server's CPU (perf, during benchmarks/ingest.py). ClickHouse's defaults favour few parts:
# merge_selector_base 5 merges small parts early, and the "lower max parts to merge at once"
# heuristic adds merges, both at the price of rewriting rows more often. On a small machine CPU
# is scarcer than part count; with these settings merges used ~30% less CPU relative to inserts
# (two interleaved runs each of 200,000 spans).
WRITE_HEAVY_TABLES = ("otel_traces", "otel_logs", "llm_calls", "trace_index")
EMBEDDED_MERGE_SETTINGS = {"merge_selector_enable_heuristic_to_lower_max_parts_to_merge_at_once": 0,
                           "merge_selector_base": 8}

# Every table the writer inserts into: parts under 16 MiB (every insert's, and the first merges')
# are written as one `data.packed` file instead of ~14 files in a directory. Creating a file cost
# 100-600 us of kernel time on this project's test machine (ext4 without a journal), so an insert
# of 2,048 spans into three tables spent half its CPU in the kernel; packed, a commit took 28% less
# time (interleaved in-process runs). Larger parts stay in ordinary "full" storage for reads.
# ClickHouse open-sourced packed storage in 2026 (chDB 4.4 has it); a chDB from before that cannot
# read a store with packed parts, so downgrading chDB under an existing data directory fails.
PACKED_PART_TABLES = (*TABLES, "trace_index")
EMBEDDED_PACKED_SETTINGS = {"min_bytes_for_full_part_storage": 16 * 1024 * 1024}


def tune_embedded_storage(backend: Backend) -> None:
    """Set the merge and part-storage settings above on the tables that do not have them yet.

    Applied to the embedded store only: a ClickHouse server's merges and storage are its
    operator's to tune (and an older server may not know these settings).
    """
    ddl = _table_ddl(backend)
    for table in PACKED_PART_TABLES:
        if table not in ddl:  # a store kept at an older schema (tests of upgrades) lacks newer tables
            continue
        wanted = dict(EMBEDDED_PACKED_SETTINGS)
        if table in WRITE_HEAVY_TABLES:
            wanted.update(EMBEDDED_MERGE_SETTINGS)
        missing = {k: v for k, v in wanted.items() if f"{k} = {v}" not in ddl.get(table, "")}
        if missing:
            settings = ", ".join(f"{k} = {v}" for k, v in missing.items())
            backend.execute(f"ALTER TABLE {table} MODIFY SETTING {settings}")

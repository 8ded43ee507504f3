"""Versioned schema: numbered SQL files in sql/, applied in order, recorded in a table.

A later release adds `002_*.sql`; `migrate()` applies what a store has not seen yet.
The same files run on chDB and on a ClickHouse server.
"""

from __future__ import annotations

import re
from importlib import resources

from llmlens.server.store.backend import Backend
from llmlens.server.store.columns import TABLES

MAX_TTL_DAYS = 3650
_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL text) of every bundled migration, in order."""
    found = []
    for entry in resources.files("llmlens.server.store").joinpath("sql").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def statements(sql: str, ttl_days: int) -> list[str]:
    """Split a migration into statements (each ends with ';' at a line end), comments removed."""
    # DateTime runs out in 2106: a longer TTL would wrap around and drop every insert.
    if not isinstance(ttl_days, int) or not 1 <= ttl_days <= MAX_TTL_DAYS:
        raise ValueError(f"ttl_days must be an integer from 1 to {MAX_TTL_DAYS}")
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    text = "\n".join(lines).replace("{ttl_days}", str(ttl_days))
    return [s.strip() for s in re.split(r";\s*$", text, flags=re.MULTILINE) if s.strip()]


def current_version(backend: Backend) -> int:
    backend.execute(
        "CREATE TABLE IF NOT EXISTS llmlens_schema_migrations "
        "(Version UInt32, Name String, AppliedAt DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY Version"
    )
    rows = backend.fetch("SELECT max(Version) AS v FROM llmlens_schema_migrations")
    return int(rows[0]["v"] or 0) if rows else 0


def migrate(backend: Backend, ttl_days: int) -> int:
    """Bring the store to the newest schema; returns the version it is at."""
    version = current_version(backend)
    for number, name, sql in migrations():
        if number <= version:
            continue
        for statement in statements(sql, ttl_days):
            backend.execute(statement)
        backend.execute(
            "INSERT INTO llmlens_schema_migrations (Version, Name) VALUES ({v:UInt32}, {n:String})",
            {"v": number, "n": name},
        )
        version = number
    return version


def apply_retention(backend: Backend, ttl_days: int) -> None:
    """Make the TTL of every table match the configured retention (it may change between runs).

    Only tables whose TTL differs are altered: MODIFY TTL re-checks every part of a table.
    """
    statements("", ttl_days)  # validates the number
    ddl = _table_ddl(backend)
    wanted = f"toIntervalDay({int(ttl_days)})"
    for table, column in _TTL_COLUMNS.items():
        if wanted not in ddl.get(table, wanted):
            backend.execute(f"ALTER TABLE {table} MODIFY TTL toDateTime({column}) + {wanted}")


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
        wanted = dict(EMBEDDED_PACKED_SETTINGS)
        if table in WRITE_HEAVY_TABLES:
            wanted.update(EMBEDDED_MERGE_SETTINGS)
        missing = {k: v for k, v in wanted.items() if f"{k} = {v}" not in ddl.get(table, "")}
        if missing:
            settings = ", ".join(f"{k} = {v}" for k, v in missing.items())
            backend.execute(f"ALTER TABLE {table} MODIFY SETTING {settings}")

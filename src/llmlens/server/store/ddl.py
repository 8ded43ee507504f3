"""The schema's DDL for one layout: the embedded store or a single ClickHouse server, or a cluster.

The numbered files in sql/ are templates. One renderer turns them into statements for either layout,
so the embedded store, a server and a cluster never drift apart:

    {ttl_days}                    retention in days (an integer from settings, never user input)
    {on_cluster}                  nothing, or ` ON CLUSTER 'name'`
    {name:T}                      T as queries name it: `T`, or `db.T` on a cluster (the Distributed table)
    {local:T}                     the table that stores T's rows: `T`, or `db.T_local` on a cluster
    {engine:MergeTree()}          the engine as written, or its Replicated form on a cluster:
                                  ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
    {distributed:T BY KEY}        a statement of its own: nothing, or on a cluster the Distributed table T
                                  over T_local on every shard, rows placed by KEY
    {each:T}                      the statement runs once per table of T's shape: T; on a cluster T_local
                                  then T (an ALTER ... ADD COLUMN must reach both)

The embedded store and a single server get the same text (what the files held before they were
templates). On a cluster every statement says ON CLUSTER and names its database: DDL run ON CLUSTER
has resolved unqualified names in the other hosts' default database in several ClickHouse releases
(`AS t`, `currentDatabase()` in engine arguments, MODIFY TTL), so nothing is left to that.

Why a sharding key must be deterministic (no rand()): the writer retries a failed block with the
same insert_deduplication_token, and a Distributed table forwards the token with each shard's part
of the block; only a block split the same way the second time is recognised by every shard.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_TTL_DAYS = 3650
_PLACEHOLDER = re.compile(r"\{(\w+)(?::([^{}]*))?\}")
_ENGINE = re.compile(r"(\w*MergeTree)\((.*)\)", re.DOTALL)
_DISTRIBUTED = re.compile(r"(\w+) BY (.+)", re.DOTALL)
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*|\{[A-Za-z0-9_]+\}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Where a shard's replicas keep their table's state in Keeper. {shard}, {replica} come from each
# server's <macros>; {database} and {table} are filled in by ClickHouse when the table is created.
REPLICA_PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
# The migrations table: one copy on every host of every shard (one Keeper path for the whole cluster),
# so a migration is recorded once and every host reads the same version. Replica names must then be
# unique over the cluster, hence the shard in them.
MIGRATIONS_REPLICA_PATH = "'/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}'"
MIGRATIONS = "llmlens_schema_migrations"


class TemplateError(ValueError):
    """A schema file uses a placeholder wrongly (a bug in the file, caught by the tests)."""


def check_cluster_name(name: str) -> str:
    """A cluster name from <remote_servers> (or a macro such as {cluster}); raises ValueError."""
    if not _CLUSTER_NAME.fullmatch(name or ""):
        raise ValueError(f"bad ClickHouse cluster name {name!r}: letters, digits, '_', '.', '-' "
                         "(as in the server's <remote_servers>), or a macro such as {cluster}")
    return name


@dataclass(frozen=True)
class Layout:
    """Where the schema goes: `Layout()` for the embedded store or a single server (the same DDL),
    `Layout(cluster=NAME, database=DB)` for a cluster: local Replicated tables on every shard,
    Distributed tables under the names the queries use."""

    cluster: str | None = None
    database: str = "default"

    def __post_init__(self) -> None:
        if self.cluster is not None:
            check_cluster_name(self.cluster)
        if not self.database or "\x00" in self.database:
            raise ValueError("the database name must not be empty")

    @property
    def mode(self) -> str:
        return "cluster" if self.cluster else "single"

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {string_literal(self.cluster)}" if self.cluster else ""

    def name(self, table: str) -> str:
        """The table (or view) as queries name it; qualified on a cluster."""
        return f"{identifier(self.database)}.{table}" if self.cluster else table

    def local(self, table: str) -> str:
        """The table that stores `table`'s rows: itself, or its local table on each shard."""
        return self.name(f"{table}_local") if self.cluster else table

    def local_name(self, table: str) -> str:
        """The local table's bare name (as system.tables lists it)."""
        return f"{table}_local" if self.cluster else table

    def engine(self, spec: str) -> str:
        match = _ENGINE.fullmatch(spec.strip())
        if not match:
            raise TemplateError(f"{{engine:{spec}}}: expected a MergeTree-family engine like MergeTree()")
        if not self.cluster:
            return spec
        family, args = match.group(1), match.group(2).strip()
        return f"Replicated{family}({REPLICA_PATH}{', ' + args if args else ''})"

    def distributed(self, spec: str) -> str:
        match = _DISTRIBUTED.fullmatch(spec.strip())
        if not match:
            raise TemplateError(f"{{distributed:{spec}}}: expected {{distributed:TABLE BY KEY}}")
        if not self.cluster:
            return ""
        table, key = match.group(1), match.group(2).strip()
        return (f"CREATE TABLE IF NOT EXISTS {self.name(table)}{self.on_cluster} AS {self.local(table)}\n"
                f"ENGINE = Distributed({string_literal(self.cluster)}, {string_literal(self.database)}, "
                f"{string_literal(self.local_name(table))}, {key})")

    def each(self, table: str) -> list[str]:
        return [self.local(table), self.name(table)] if self.cluster else [table]


def render(sql: str, layout: Layout, ttl_days: int) -> list[str]:
    """A schema file's statements for `layout`: comments removed, placeholders filled in.

    Statements end with ';' at a line end. A statement that renders empty ({distributed:...} off a
    cluster) is left out; one with {each:T} is repeated per table of T.
    """
    check_ttl_days(ttl_days)
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    text = "\n".join(lines)
    out = []
    for statement in re.split(r";\s*$", text, flags=re.MULTILINE):
        for rendered in _expand(statement, layout, ttl_days):
            rendered = rendered.strip()
            if rendered:
                out.append(rendered)
    return out


def _expand(statement: str, layout: Layout, ttl_days: int) -> Iterator[str]:
    tables = {arg for kind, arg in _PLACEHOLDER.findall(statement) if kind == "each"}
    if len(tables) > 1:
        raise TemplateError(f"one {{each:...}} table per statement, got {sorted(tables)}")
    targets = layout.each(tables.pop()) if tables else [None]
    for target in targets:
        yield _PLACEHOLDER.sub(lambda m, t=target: _fill(m, layout, ttl_days, t), statement)


def _fill(match: re.Match[str], layout: Layout, ttl_days: int, each: str | None) -> str:
    kind, arg = match.group(1), match.group(2)
    if kind == "ttl_days" and arg is None:
        return str(ttl_days)
    if kind == "on_cluster" and arg is None:
        return layout.on_cluster
    if arg is None or not arg.strip():
        raise TemplateError(f"unknown placeholder {match.group(0)}")
    if kind == "name":
        return layout.name(arg)
    if kind == "local":
        return layout.local(arg)
    if kind == "engine":
        return layout.engine(arg)
    if kind == "distributed":
        return layout.distributed(arg)
    if kind == "each":
        assert each is not None
        return each
    raise TemplateError(f"unknown placeholder {match.group(0)}")


def check_ttl_days(ttl_days: int) -> None:
    # DateTime runs out in 2106: a longer TTL would wrap around and drop every insert.
    if not isinstance(ttl_days, int) or isinstance(ttl_days, bool) or not 1 <= ttl_days <= MAX_TTL_DAYS:
        raise ValueError(f"ttl_days must be an integer from 1 to {MAX_TTL_DAYS}")


# --- statements the code issues itself (not from a file) -------------------------------------------

def create_database(layout: Layout) -> str:
    """On a cluster the database must exist on every host before ON CLUSTER DDL names it."""
    return f"CREATE DATABASE IF NOT EXISTS {identifier(layout.database)}{layout.on_cluster}"


def migrations_table(layout: Layout) -> str:
    engine = f"ReplicatedMergeTree({MIGRATIONS_REPLICA_PATH})" if layout.cluster else "MergeTree"
    return (f"CREATE TABLE IF NOT EXISTS {layout.name(MIGRATIONS)}{layout.on_cluster} "
            f"(Version UInt32, Name String, AppliedAt DateTime DEFAULT now()) ENGINE = {engine} ORDER BY Version")


def record_migration(layout: Layout) -> str:
    """Parameters v (UInt32) and n (String). On a cluster the row is replicated to every host."""
    return f"INSERT INTO {layout.name(MIGRATIONS)} (Version, Name) VALUES ({{v:UInt32}}, {{n:String}})"


def record_migration_literal(layout: Layout, version: int, name: str) -> str:
    """The same INSERT with its values written out, for a script a DBA runs by hand."""
    return f"INSERT INTO {layout.name(MIGRATIONS)} (Version, Name) VALUES ({int(version)}, {string_literal(name)})"


def modify_ttl(layout: Layout, table: str, column: str, ttl_days: int) -> str:
    """TTL lives on the tables that hold rows (a Distributed table rejects MODIFY TTL); ON CLUSTER
    changes it on every shard (replicas of a shard share it through Keeper)."""
    check_ttl_days(ttl_days)
    return (f"ALTER TABLE {layout.local(table)}{layout.on_cluster} "
            f"MODIFY TTL toDateTime({column}) + toIntervalDay({ttl_days})")


def string_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def identifier(name: str) -> str:
    if _IDENTIFIER.fullmatch(name):
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"

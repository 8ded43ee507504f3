"""What the read-only SQL engine adds to a query: ClickHouse's parser run twice (formatQuery, then
EXPLAIN AST and the guard's walk of its tree) before the statement itself, on the embedded store.

Prints the median milliseconds of each query run straight on a chDB connection and through
SqlEngine (the path of POST /api/v1/sql, the SQL page and --sql-port), interleaved, in this
process, on an empty store (the statements read generated rows: the overhead is per statement,
not per row), and the Native rewrite for a client protocol revision per MB.

    python benchmarks/sql_overhead.py [--repeat 51]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

QUERIES = {
    "SELECT 1": "SELECT 1",
    "group by over 1M generated rows": "SELECT number % 10 AS k, count() FROM numbers(1000000) GROUP BY k ORDER BY k",
    "a 40-line query with joins": "WITH a AS (SELECT number AS n FROM numbers(1000)), b AS (SELECT number AS n, "
                                   "toString(number) AS s FROM numbers(1000)) SELECT a.n, b.s FROM a JOIN b ON a.n = b.n "
                                   + " ".join(f"AND a.n != {i}" for i in range(200)) + " ORDER BY a.n LIMIT 10",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=51)
    args = parser.parse_args()

    import chdb

    from llmlens.server.settings import load_settings
    from llmlens.server.sql.engine import SqlEngine
    from llmlens.server.sql.native import with_revision
    from llmlens.server.store.chdb_backend import ChdbBackend

    folder = tempfile.mkdtemp(prefix="llmlens-sql-bench-")
    backend = ChdbBackend(folder)
    engine = SqlEngine(backend, load_settings({}, env={}).sql)
    direct = chdb.connect(folder)
    try:
        print(f"{'query':<34} {'chDB ms':>9} {'engine ms':>10} {'added ms':>9}")
        for label, sql in QUERIES.items():
            plain, checked = [], []
            for _ in range(args.repeat):  # interleaved, so load on the machine hits both alike
                started = time.perf_counter()
                direct.query(sql, "JSONCompact").bytes()
                plain.append(time.perf_counter() - started)
                started = time.perf_counter()
                engine.run_sync(sql, "JSONCompact")
                checked.append(time.perf_counter() - started)
            a, b = statistics.median(plain) * 1e3, statistics.median(checked) * 1e3
            print(f"{label:<34} {a:9.2f} {b:10.2f} {b - a:9.2f}")
        native = direct.query("SELECT number, toString(number) AS s, toLowCardinality(toString(number % 100)) AS lc, "
                              "map('k', number) AS m FROM numbers(1000000)", "Native").bytes()
        times = []
        for _ in range(max(3, args.repeat // 10)):
            started = time.perf_counter()
            with_revision(native, 54460)
            times.append(time.perf_counter() - started)
        mb = len(native) / 1e6
        print(f"Native rewrite for client_protocol_version: {statistics.median(times) * 1e3:.1f} ms for "
              f"{mb:.1f} MB ({mb / statistics.median(times):.0f} MB/s; 1M rows of 4 columns)")
    finally:
        engine.close()
        direct.close()
        backend.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

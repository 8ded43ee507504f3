"""A store written by an older schema is upgraded in place and keeps everything it had.

Each phase runs in its own Python process: chDB allows one engine per process, and an
upgrade is, in real life, a new server process opening an old data directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from llmlens.server.store.schema import migrations

WRITE_AT_VERSION_2 = textwrap.dedent("""
    import sys, time
    from llmlens.server.store import Store, open_backend, schema
    from llmlens.server.normalise import build_cost_model
    from llmlens.server.receive.workers import build_batch
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    every = schema.migrations
    schema.migrations = lambda: [m for m in every() if m[0] <= 2]  # the release before schema 3
    store = Store(open_backend(data_dir=sys.argv[1]))
    assert store.schema_version == 2, store.schema_version
    start = (time.time_ns() // 10**9 - 600) * 10**9
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i in range(3):
        spans.add(trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"), span_id=(i + 1).to_bytes(8, "big"),
                  name=f"step {i}", start_time_unix_nano=start + i * 10**9, end_time_unix_nano=start + (i + 2) * 10**9,
                  attributes=[{"key": "gen_ai.operation.name", "value": {"string_value": "chat"}},
                              {"key": "gen_ai.request.model", "value": {"string_value": "gpt-4o-mini"}}])
    batch = build_batch("traces", request.SerializeToString(), "protobuf", build_cost_model())
    # That release's writer knew only the columns of its schema (later ones add columns, e.g. schema 7).
    for table, data in batch.arrow.items():
        known = {r["name"] for r in store.backend.fetch(
            "SELECT name FROM system.columns WHERE table = {t:String} AND database = currentDatabase()", {"t": table})}
        batch.arrow[table] = data.select([c for c in data.column_names if c in known])
    store.write_sync(batch, timeout=60)
    kind = store.backend.fetch("SELECT engine FROM system.tables WHERE name = 'otel_traces_trace_id_ts' "
                               "AND database = currentDatabase()")
    print(kind[0]["engine"], start)
    store.close()
""")

READ_AFTER_UPGRADE = textwrap.dedent("""
    import json, sys
    from llmlens.server.store import Store, open_backend

    store = Store(open_backend(data_dir=sys.argv[1]))
    fetch = store.backend.fetch
    print(json.dumps({
        "version": store.schema_version,
        "migrations": [r["Version"] for r in fetch("SELECT Version FROM llmlens_schema_migrations ORDER BY Version")],
        "engine": fetch("SELECT engine FROM system.tables WHERE name = 'otel_traces_trace_id_ts' "
                        "AND database = currentDatabase()")[0]["engine"],
        "spans": fetch("SELECT count() AS c FROM otel_traces")[0]["c"],
        "calls": fetch("SELECT count() AS c FROM llm_calls")[0]["c"],
        "bounds": fetch("SELECT toUnixTimestamp(min(Start)) AS s, toUnixTimestamp(max(End)) AS e "
                        "FROM otel_traces_trace_id_ts WHERE TraceId = '0af7651916cd43dd8448eb211c80319c'"),
    }))
    store.close()
""")


def _run(script: str, data_dir: Path) -> str:
    done = subprocess.run([sys.executable, "-c", script, str(data_dir)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_version_2_store_upgrades_to_the_newest_schema_and_keeps_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    engine, start = _run(WRITE_AT_VERSION_2, data_dir).split()
    assert engine == "MergeTree"  # schema 2 still had the table fed by a materialized view
    after = json.loads(_run(READ_AFTER_UPGRADE, data_dir))
    start_s = int(start) // 10**9
    newest = [number for number, _, _ in migrations()]
    assert after == {
        "version": newest[-1], "migrations": newest, "engine": "View", "spans": 3, "calls": 3,
        "bounds": [{"s": start_s, "e": start_s + 4}],  # the last span ends 4 s after the first starts
    }

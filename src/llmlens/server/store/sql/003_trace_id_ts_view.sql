-- llmlens schema, version 3: otel_traces_trace_id_ts becomes a view over trace_index.
-- The OTel exporter's layout keeps this table for "when did trace X run" lookups (Grafana's
-- ClickHouse data source reads it before fetching a trace's spans). trace_index already holds
-- the same facts per trace, and the table's materialized view wrote one more part on every
-- commit: measured on this project's ingest benchmark, a quarter of the files each commit
-- creates, plus a GROUP BY and its merges. The view keeps the name, columns and types.
-- Nothing is lost: trace_index has had Start and End of every stored trace since version 1.
-- On a cluster the view reads the Distributed trace_index. trace_index is sharded by TraceId, so a
-- trace's rows sit on one shard: with optimize_distributed_group_by_sharding_key (on by default)
-- each shard finishes its GROUP BY TraceId itself, and a lookup of one trace (WHERE TraceId = ...,
-- pushed into the view) reads one shard when optimize_skip_unused_shards is on, as llmlens sets it.

DROP VIEW IF EXISTS {name:otel_traces_trace_id_ts_mv}{on_cluster};

DROP TABLE IF EXISTS {each:otel_traces_trace_id_ts}{on_cluster};

CREATE VIEW IF NOT EXISTS {name:otel_traces_trace_id_ts}{on_cluster} AS
SELECT TraceId, toDateTime(min(Start)) AS Start, toDateTime(max(End)) AS End
FROM {name:trace_index}
GROUP BY TraceId;

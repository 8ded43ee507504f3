-- llmlens schema, version 3: otel_traces_trace_id_ts becomes a view over trace_index.
-- The OTel exporter's layout keeps this table for "when did trace X run" lookups (Grafana's
-- ClickHouse data source reads it before fetching a trace's spans). trace_index already holds
-- the same facts per trace, and the table's materialized view wrote one more part on every
-- commit: measured on this project's ingest benchmark, a quarter of the files each commit
-- creates, plus a GROUP BY and its merges. The view keeps the name, columns and types.
-- Nothing is lost: trace_index has had Start and End of every stored trace since version 1.

DROP VIEW IF EXISTS otel_traces_trace_id_ts_mv;

DROP TABLE IF EXISTS otel_traces_trace_id_ts;

CREATE VIEW IF NOT EXISTS otel_traces_trace_id_ts AS
SELECT TraceId, toDateTime(min(Start)) AS Start, toDateTime(max(End)) AS End
FROM trace_index
GROUP BY TraceId;

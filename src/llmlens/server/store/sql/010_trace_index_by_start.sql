-- llmlens schema, version 10: trace_index's rows also sorted by Start (a projection of Day, Start
-- and TraceId), so "the newest traces" reads the last granules of that order instead of a whole
-- day's Start column, which grew with the store: the trace list first finds the Start of its k-th
-- newest row there, then groups only the traces from that time on (query/traces.py).
-- An AggregatingMergeTree keeps a projection only if its merges rebuild it ('rebuild').
-- Parts written before this version get the projection as merges rewrite them (no MATERIALIZE
-- mutation: it would rewrite a big store's whole index at upgrade, and a cluster's read-only
-- replicas refuse it); until then ClickHouse reads those parts as before (same results, slower).

ALTER TABLE {local:trace_index}{on_cluster} MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE {local:trace_index}{on_cluster} ADD PROJECTION IF NOT EXISTS by_start (SELECT Day, Start, TraceId ORDER BY Start);

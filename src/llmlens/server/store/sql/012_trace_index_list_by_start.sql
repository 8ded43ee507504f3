-- llmlens schema, version 12: trace_index's rows also kept whole in Start order (a projection with
-- every column the trace list shows), so "the newest 50 traces" reads the last granule or two of
-- that order (query/traces.py) instead of one granule of the (Day, TraceId) order per listed trace:
-- fifty random trace ids hit about fifty granules per day, so the list grew with the store.
-- by_start (version 10) stays: it is what parts written before this version have, and the list's
-- first step (the k-th newest Start) reads either.
-- Parts written before this version get the projection as merges rewrite them; until then
-- ClickHouse reads them as before (same results, slower). No MATERIALIZE mutation at upgrade (as in
-- versions 10 and 11); an operator who wants the faster list on old parts at once runs
--   ALTER TABLE trace_index MATERIALIZE PROJECTION list_by_start
-- (it rewrites trace_index in the background: seconds for a few million traces).

ALTER TABLE {local:trace_index}{on_cluster} ADD PROJECTION IF NOT EXISTS list_by_start (
    SELECT Day, Start, TraceId, End, SpanCount, ErrorCount, RootService, RootName, RootStart,
        LlmCalls, InputTokens, OutputTokens, CostUsd
    ORDER BY Start
);

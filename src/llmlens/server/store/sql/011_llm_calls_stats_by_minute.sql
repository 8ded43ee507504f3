-- llmlens schema, version 11: llm_calls keeps, beside its rows, the aggregates of /api/v1/llm/stats
-- per minute and per (service, operation, provider, request model, response model):
-- a projection that each insert and merge maintains. A bucketed stats query reads its whole
-- buckets from it, a few rows a minute instead of every call (query/stats.py), so 24 h of stats
-- costs the same on a big store as on a small one; the buckets at the window's two ends, and
-- queries grouped or filtered by app, department, user or session (a call inherits those from its
-- trace: query/call_context.py), read the calls as before. Same results.
-- The aggregates must be written exactly as the stats query writes them: ClickHouse uses an
-- aggregate projection only for the same expressions.
-- Parts written before this version are read row by row as before (same results, slower) until
-- retention drops them: no MATERIALIZE mutation, which would rewrite a big store's calls at upgrade
-- (as in version 10). ClickHouse merges only parts with the same projections, so on the day of the
-- upgrade the older parts stay apart from the newer ones (a few more parts that day, no more).

ALTER TABLE {local:llm_calls}{on_cluster} ADD PROJECTION IF NOT EXISTS stats_by_minute (
    SELECT toStartOfMinute(Timestamp), ServiceName, Operation, Provider, RequestModel, ResponseModel,
        count(),
        countIf(IsError),
        quantiles(0.5, 0.95, 0.99)(Duration / 1e6),
        quantilesIf(0.5, 0.95)(assumeNotNull(TtftMs), TtftMs IS NOT NULL),
        countIf(TtftMs IS NOT NULL),
        sum(InputTokens),
        sum(OutputTokens),
        sum(CostUsd),
        countIf(NOT Priced),
        sumIf(OutputTokens, Streaming AND TtftMs IS NOT NULL),
        sumIf(Duration / 1e9 - assumeNotNull(TtftMs) / 1e3, Streaming AND TtftMs IS NOT NULL)
    GROUP BY toStartOfMinute(Timestamp), ServiceName, Operation, Provider, RequestModel, ResponseModel
);

-- llmlens schema, version 13: llm_calls keeps, beside its rows, a copy of the columns one session's
-- turns need, ordered by (SessionId, Timestamp): a projection that each insert and merge maintains.
-- One session (query/sessions.py) then reads its calls as one key range, ~80k rows for a
-- 2,000-turn session of a 5M-span store, instead of every call of the window (its session
-- column, plus the columns of every granule holding one of its calls).
-- Cost: ~41 bytes a call on disk (projections take the default codec, not the columns' ZSTD),
-- and a second sort of each insert's calls.
-- Parts written before this version are read row by row as before (same results, slower) until
-- merges or retention replace them: no MATERIALIZE at upgrade, which would rewrite a big store's
-- calls while it starts (as in versions 10 and 11). To build it for the older parts at once:
--   ALTER TABLE llm_calls MATERIALIZE PROJECTION by_session
-- (a mutation, in the background: ~6 s for 3.75M calls). ClickHouse merges only parts with the
-- same projections, so on the day of the upgrade the older parts stay apart from the newer ones.

ALTER TABLE {local:llm_calls}{on_cluster} ADD PROJECTION IF NOT EXISTS by_session (
    SELECT SessionId, Timestamp, TraceId, SpanId, UserId, Operation, InputTokens, OutputTokens, CostUsd, Priced,
        IsError
    ORDER BY SessionId, Timestamp
);

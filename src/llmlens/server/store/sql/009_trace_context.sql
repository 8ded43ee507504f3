-- llmlens schema, version 9: the session, user, app and department of a trace, as its spans set them
-- (store/trace_index.py: the root span's, else any span's; across the batches of a trace, the largest).
-- An LLM call that sets none itself and whose request span was exported in another request than the
-- call (a BatchSpanProcessor exports a child before its parent) gets its trace's at query time
-- (query/call_context.py). Rows stored before this version read ''.
-- On a cluster each column goes on the local table first, then on the Distributed table over it.

ALTER TABLE {each:trace_index}{on_cluster} ADD COLUMN IF NOT EXISTS SessionId SimpleAggregateFunction(max, String);

ALTER TABLE {each:trace_index}{on_cluster} ADD COLUMN IF NOT EXISTS UserId SimpleAggregateFunction(max, String);

ALTER TABLE {each:trace_index}{on_cluster} ADD COLUMN IF NOT EXISTS App SimpleAggregateFunction(max, String);

ALTER TABLE {each:trace_index}{on_cluster} ADD COLUMN IF NOT EXISTS Department SimpleAggregateFunction(max, String);

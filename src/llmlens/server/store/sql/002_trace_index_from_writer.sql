-- llmlens schema, version 2: the writer builds trace_index rows itself (store/trace_index.py),
-- which costs less insert CPU than two GROUP BY views on every insert. Drop the views.

DROP VIEW IF EXISTS {name:trace_index_spans_mv}{on_cluster};

DROP VIEW IF EXISTS {name:trace_index_llm_mv}{on_cluster};

-- llmlens schema, version 7: facts of LLM calls that agent frameworks and other instrumentors record
-- in their own shapes (semconv.py). ToolNames: the tools a model call asked for, or the tool a step ran
-- (searchable as { tool = "get_weather" }). TokensEstimated: the instrumentor counted the tokens itself
-- instead of reading the provider's usage, so the cost is an estimate. ProviderRaw, RequestModelRaw:
-- the provider and model as the span spelled them ("openai.chat", "openai/gpt-4o-mini") when the
-- normalised value differs; '' otherwise. Rows stored before this version read the defaults.
-- On a cluster each column goes on the local tables first, then on the Distributed table over them.

ALTER TABLE {each:llm_calls}{on_cluster} ADD COLUMN IF NOT EXISTS ToolNames Array(LowCardinality(String));

ALTER TABLE {each:llm_calls}{on_cluster} ADD COLUMN IF NOT EXISTS TokensEstimated Bool DEFAULT false;

ALTER TABLE {each:llm_calls}{on_cluster} ADD COLUMN IF NOT EXISTS ProviderRaw LowCardinality(String);

ALTER TABLE {each:llm_calls}{on_cluster} ADD COLUMN IF NOT EXISTS RequestModelRaw LowCardinality(String);

-- llmlens schema, version 5: digests of the log and metric export requests committed in the last
-- two days. Log records and metric points carry no ids, so a resent request (an exporter that timed
-- out, or got a 503, sends the same bytes again) is recognised by the digest of its body and stored
-- once, after a restart too. Written in the same commit as the request's rows, after them.
-- (Spans are deduplicated on their own ids; see store/dedup.py.)

CREATE TABLE IF NOT EXISTS llmlens_request_digests (
    Timestamp DateTime64(9),
    Digest String,
    Signal LowCardinality(String)
) ENGINE = MergeTree()
PARTITION BY toDate(Timestamp)
ORDER BY Digest
TTL toDateTime(Timestamp) + toIntervalDay(2)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

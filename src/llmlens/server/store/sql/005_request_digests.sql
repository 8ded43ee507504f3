-- llmlens schema, version 5: digests of the log and metric export requests committed in the last
-- two days. Log records and metric points carry no ids, so a resent request (an exporter that timed
-- out, or got a 503, sends the same bytes again) is recognised by the digest of its body and stored
-- once, after a restart too. Written in the same commit as the request's rows, after them.
-- (Spans are deduplicated on their own ids; see store/dedup.py.)
-- On a cluster, sharded by the digest: a lookup of a request's digests reads the shards they hash to.

CREATE TABLE IF NOT EXISTS {local:llmlens_request_digests}{on_cluster} (
    Timestamp DateTime64(9),
    Digest String,
    Signal LowCardinality(String)
) ENGINE = {engine:MergeTree()}
PARTITION BY toDate(Timestamp)
ORDER BY Digest
TTL toDateTime(Timestamp) + toIntervalDay(2)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

{distributed:llmlens_request_digests BY cityHash64(Digest)};

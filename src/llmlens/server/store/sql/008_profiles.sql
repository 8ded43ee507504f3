-- llmlens schema, version 8: profiles (normalise/profiles.py). A sample row names its stack by id;
-- a stack is a list of frame ids, root first; a frame is a name, `function (file:line)`. Stacks and
-- frames are written again by every request that uses them, so their tables keep the newest row per
-- id (ReplacingMergeTree on Timestamp) and readers take any one row of an id; an id unused for the
-- retention is dropped with its samples by the TTL.
-- On a cluster samples are sharded by service and stack, stacks and frames by their ids.

CREATE TABLE IF NOT EXISTS {local:llmlens_profile_frames}{on_cluster} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    FrameId UInt64,
    Name String CODEC(ZSTD(1))
) ENGINE = {engine:ReplacingMergeTree(Timestamp)}
ORDER BY FrameId
TTL toDateTime(Timestamp) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192;

{distributed:llmlens_profile_frames BY FrameId};

CREATE TABLE IF NOT EXISTS {local:llmlens_profile_stacks}{on_cluster} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    StackId UInt64,
    FrameIds Array(UInt64) CODEC(ZSTD(1))
) ENGINE = {engine:ReplacingMergeTree(Timestamp)}
ORDER BY StackId
TTL toDateTime(Timestamp) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192;

{distributed:llmlens_profile_stacks BY StackId};

-- One row per sample entry of a profile: the profile's start time, its stack and count (samples
-- for CPU and wall profiles), and the trace, span and thread it was taken in.
CREATE TABLE IF NOT EXISTS {local:llmlens_profile_samples}{on_cluster} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    ServiceName LowCardinality(String),
    ProfileType LowCardinality(String),
    StackId UInt64,
    Value Int64 CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    SpanName LowCardinality(String),
    ThreadName LowCardinality(String),
    INDEX idx_span_id SpanId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    -- A profile's entries summed per stack (its spans and threads dropped): ~8x fewer rows for flame
    -- graphs filtered by nothing but service, type and time, which ClickHouse reads from here itself.
    PROJECTION stack_totals (
        SELECT ServiceName, ProfileType, Timestamp, StackId, sum(Value)
        GROUP BY ServiceName, ProfileType, Timestamp, StackId
    )
) ENGINE = {engine:MergeTree()}
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, ProfileType, toUnixTimestamp(Timestamp), StackId)
TTL toDateTime(Timestamp) + toIntervalDay({ttl_days})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

{distributed:llmlens_profile_samples BY cityHash64(ServiceName, StackId)};

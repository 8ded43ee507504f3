-- llmlens schema, version 6: alert state, history and mutes (server/alerts/state.py).
-- State holds one row per rule and group (its labels' fingerprint), rewritten on each change with a
-- newer UpdatedAt; readers take the newest (FINAL). A group whose alert ended is written as
-- 'inactive'; FiredAt and ResolvedAt are 1970 until they happen. Notified is the last state whose message went out, so a restarted server sends
-- what it still owes and nothing twice. Labels and annotations are JSON objects.
-- On a cluster all three are sharded by Rule: every version of a row sits on one shard, so FINAL
-- (which each shard applies to its own rows) still keeps only the newest.

CREATE TABLE IF NOT EXISTS {local:llmlens_alert_state}{on_cluster} (
    Rule String,
    Fingerprint String,
    Labels String,
    State LowCardinality(String),
    Value Float64,
    ActiveAt DateTime64(6),
    FiredAt DateTime64(6),
    ResolvedAt DateTime64(6),
    Notified LowCardinality(String),
    Annotations String,
    UpdatedAt DateTime64(6)
) ENGINE = {engine:ReplacingMergeTree(UpdatedAt)}
ORDER BY (Rule, Fingerprint);

{distributed:llmlens_alert_state BY cityHash64(Rule)};

-- Every state change of every alert, newest last: what /api/v1/alerts/history reads.
CREATE TABLE IF NOT EXISTS {local:llmlens_alert_history}{on_cluster} (
    Timestamp DateTime64(6),
    Rule LowCardinality(String),
    Fingerprint String,
    Labels String,
    FromState LowCardinality(String),
    ToState LowCardinality(String),
    Value Float64,
    Annotations String
) ENGINE = {engine:MergeTree()}
PARTITION BY toYYYYMM(Timestamp)
ORDER BY (Timestamp, Rule)
TTL toDateTime(Timestamp) + toIntervalDay({ttl_days});

{distributed:llmlens_alert_history BY cityHash64(Rule)};

-- A muted rule is evaluated and shown, but sends nothing until MutedUntil.
CREATE TABLE IF NOT EXISTS {local:llmlens_alert_mutes}{on_cluster} (
    Rule String,
    MutedUntil DateTime64(6),
    UpdatedAt DateTime64(6)
) ENGINE = {engine:ReplacingMergeTree(UpdatedAt)}
ORDER BY Rule;

{distributed:llmlens_alert_mutes BY cityHash64(Rule)};

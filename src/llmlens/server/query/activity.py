"""When the store last saw data, and the time range every UI page opens on by default.

One rule for every page: the smallest preset range that holds the newest *active period* (the run
of minutes with spans or logs, up to now, with no gap longer than ACTIVE_GAP), so a demo that ran
for a few minutes opens on 15 minutes and a service busy all day on 24 hours. Data older than a
day opens on the smallest of 7 or 30 days holding the newest of it; an empty store on one hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from llmlens.server.query.window import rfc3339, sql_time
from llmlens.server.store import Store

# Presets of the UI's range picker (lib/state.js RANGES), smallest first.
ACTIVE_PRESETS = (("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)), ("6h", timedelta(hours=6)),
                  ("24h", timedelta(hours=24)))
OLDER_PRESETS = (("7d", timedelta(days=7)), ("30d", timedelta(days=30)))
EMPTY_STORE_RANGE = "1h"
ACTIVE_GAP = timedelta(minutes=30)
LOOKBACK = timedelta(hours=24)

# Minutes holding a trace start or a log line in the last day (at most 1,440 rows either way).
_MINUTES_SQL = """
SELECT toUnixTimestamp(m) AS minute FROM (
    SELECT DISTINCT toStartOfMinute(Start) AS m FROM trace_index
    WHERE Day >= toDate({since:DateTime64(9)}) AND Start >= {since:DateTime64(9)} AND Start <= {now:DateTime64(9)}
    UNION DISTINCT
    SELECT DISTINCT toStartOfMinute(TimestampTime) AS m FROM otel_logs
    WHERE TimestampTime >= toDateTime({since:DateTime64(9)}) AND TimestampTime <= toDateTime({now:DateTime64(9)})
) ORDER BY minute DESC"""

_NEWEST_SQL = """
SELECT greatest(
    (SELECT toUnixTimestamp(max(Start)) FROM trace_index WHERE Start <= {now:DateTime64(9)}),
    (SELECT toUnixTimestamp(max(TimestampTime)) FROM otel_logs WHERE TimestampTime <= toDateTime({now:DateTime64(9)}))
) AS newest"""


def active_since(minutes_desc: list[int]) -> int | None:
    """The first minute (epoch seconds) of the newest run of minutes no further apart than ACTIVE_GAP."""
    if not minutes_desc:
        return None
    first = minutes_desc[0]
    for minute in minutes_desc[1:]:
        if first - minute > ACTIVE_GAP.total_seconds():
            break
        first = minute
    return first


def default_range(now: datetime, since: datetime | None, newest: datetime | None) -> str:
    """The preset for an active period starting at ``since``; else one holding ``newest``."""
    if since is not None:
        for name, length in ACTIVE_PRESETS:
            if now - length <= since:
                return name
        return ACTIVE_PRESETS[-1][0]
    if newest is None:
        return EMPTY_STORE_RANGE
    for name, length in OLDER_PRESETS:
        if now - length <= newest:
            return name
    return OLDER_PRESETS[-1][0]


async def activity(store: Store, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    params = {"now": sql_time(now), "since": sql_time(now - LOOKBACK)}
    minutes = [int(r["minute"]) for r in await store.fetch(_MINUTES_SQL, params)]
    first = active_since(minutes)
    since = datetime.fromtimestamp(first, UTC) if first is not None else None
    if minutes:
        newest: datetime | None = datetime.fromtimestamp(minutes[0], UTC)
    else:
        rows = await store.fetch(_NEWEST_SQL, params)
        value = int(rows[0]["newest"] or 0) if rows else 0
        newest = datetime.fromtimestamp(value, UTC) if value > 0 else None
    return {
        "now": rfc3339(sql_time(now)),
        "newest_minute": rfc3339(sql_time(newest)) if newest else None,
        "active_since": rfc3339(sql_time(since)) if since else None,
        "default_range": default_range(now, since, newest),
    }

"""The quality view: each score name over time, by model and app, and its distribution.

A score belongs to a trace (and often a span); its model is that of the model call it scores: the
call on the scored span, else the trace's last model call. Its app is the score's own, else the call's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llmlens.server.errors import BadParameter
from llmlens.server.query.llm_filter import MODEL_CALLS
from llmlens.server.query.window import Window
from llmlens.server.store import Store

GROUP_BY = ("model", "app")
BINS = 10

_NAMES_SQL = """
    SELECT Name AS name, count() AS count, avg(Value) AS avg, min(Value) AS min, max(Value) AS max
    FROM llm_scores
    WHERE Timestamp >= {start:DateTime64(9)} AND Timestamp <= {end:DateTime64(9)}
    GROUP BY Name ORDER BY count DESC, Name LIMIT 1000
"""

# The scores of one name with their model and app; the outer queries filter and aggregate it.
# A model call starts before the score made of its answer: calls are looked for an hour earlier.
_SCORED = f"""
    WITH scored AS (
        SELECT Timestamp AS ts, TraceId AS trace_id, SpanId AS span_id, App AS score_app, Value AS value,
               Label AS label
        FROM llm_scores
        WHERE Timestamp >= {{start:DateTime64(9)}} AND Timestamp <= {{end:DateTime64(9)}} AND Name = {{name:String}}
    ),
    calls AS (
        SELECT TraceId AS trace_id,
               arraySort(c -> c.1, groupArray((Timestamp, SpanId, if(RequestModel != '', RequestModel, ResponseModel))))
                   AS ordered,
               any(App) AS call_app
        FROM llm_calls
        WHERE Timestamp >= {{start:DateTime64(9)}} - INTERVAL 1 HOUR AND Timestamp <= {{end:DateTime64(9)}}
          AND {MODEL_CALLS} AND TraceId IN (SELECT trace_id FROM scored)
        GROUP BY TraceId
    ),
    attributed AS (
        SELECT ts, value, label,
               if(empty(ordered), '',
                  if(has(arrayMap(c -> c.2, ordered), span_id), arrayFilter(c -> c.2 = span_id, ordered)[1].3,
                     ordered[-1].3)) AS model,
               if(score_app != '', score_app, call_app) AS app
        FROM scored LEFT JOIN calls USING trace_id
    )
"""


def _where(filters: dict[str, str]) -> str:
    return " AND ".join(["1", *(f"{key} = {{f_{key}:String}}" for key in filters)])


async def quality(store: Store, window: Window, *, name: str | None, group_by: str, step_seconds: int,
                  filters: dict[str, str]) -> dict[str, Any]:
    if group_by not in GROUP_BY:
        raise BadParameter("group_by", f"group_by must be one of {', '.join(GROUP_BY)}, got {group_by[:40]!r}")
    names = [{"name": r["name"], "count": int(r["count"]), "avg": float(r["avg"]), "min": float(r["min"]),
              "max": float(r["max"])} for r in await store.fetch(_NAMES_SQL, window.params())]
    chosen = next((n for n in names if n["name"] == name), None) if name else (names[0] if names else None)
    answer: dict[str, Any] = {"names": names, "name": chosen["name"] if chosen else None, "group_by": group_by,
                              "step_seconds": step_seconds, "buckets": window.buckets(step_seconds), "series": [],
                              "groups": [], "distribution": [], "labels": []}
    if chosen is None:
        return answer
    lo, hi = (0.0, 1.0) if chosen["min"] >= 0 and chosen["max"] <= 1 else (chosen["min"], chosen["max"])
    width = (hi - lo) / BINS or 1.0
    params = {**window.params(), "name": chosen["name"], "step": step_seconds, "lo": lo, "width": width,
              **{f"f_{k}": v for k, v in filters.items()}}
    where = _where(filters)
    series, groups, bins, labels = await asyncio.gather(
        store.fetch(f"""{_SCORED}
            SELECT formatDateTime(toStartOfInterval(toDateTime(ts), toIntervalSecond({{step:UInt32}})),
                                  '%Y-%m-%dT%H:%i:%SZ') AS bucket,
                   {group_by} AS key, count() AS count, sum(value) AS total
            FROM attributed WHERE {where} GROUP BY bucket, key ORDER BY bucket, key""", params),
        store.fetch(f"""{_SCORED}
            SELECT model, app, count() AS count, avg(value) AS avg, min(value) AS min, max(value) AS max,
                   quantiles(0.1, 0.5, 0.9)(value) AS q
            FROM attributed WHERE {where} GROUP BY model, app ORDER BY count DESC, model, app LIMIT 500""", params),
        store.fetch(f"""{_SCORED}
            SELECT least(toUInt32(greatest(floor((value - {{lo:Float64}}) / {{width:Float64}}), 0)), {BINS - 1}) AS bin,
                   count() AS count
            FROM attributed WHERE {where} GROUP BY bin ORDER BY bin""", params),
        store.fetch(f"""{_SCORED}
            SELECT label, count() AS count FROM attributed WHERE {where} AND label != ''
            GROUP BY label ORDER BY count DESC, label LIMIT 50""", params),
    )
    answer["series"] = _series(series, answer["buckets"])
    answer["groups"] = [{"model": r["model"] or None, "app": r["app"] or None, "count": int(r["count"]),
                         "avg": float(r["avg"]), "min": float(r["min"]), "max": float(r["max"]),
                         "p10": float(r["q"][0]), "p50": float(r["q"][1]), "p90": float(r["q"][2])} for r in groups]
    counts = {int(r["bin"]): int(r["count"]) for r in bins}
    answer["distribution"] = [{"lo": lo + i * width, "hi": lo + (i + 1) * width, "count": counts.get(i, 0)}
                              for i in range(BINS)]
    answer["labels"] = [{"label": r["label"], "count": int(r["count"])} for r in labels]
    return answer


def _series(rows: list[dict[str, Any]], buckets: list[str]) -> list[dict[str, Any]]:
    """One line per model (or app): the average score and the count in every bucket (null when none)."""
    keys = sorted({r["key"] for r in rows})
    at = {b: i for i, b in enumerate(buckets)}
    lines = {k: {"key": k or None, "avg": [None] * len(buckets), "count": [0] * len(buckets)} for k in keys}
    for r in rows:
        i = at.get(r["bucket"])
        if i is None:
            continue
        line = lines[r["key"]]
        line["count"][i] = int(r["count"])
        line["avg"][i] = float(r["total"]) / int(r["count"])
    return list(lines.values())

"""The metrics explorer: one stored OTLP metric's attributes, and its series over time, filtered by
attribute values and grouped by attribute keys (`service` is the resource's service.name).

Per bucket of the chosen step, a group's line is:
- gauge: the mean of its points;
- sum: the sum over the group's series of each one's value (its last cumulative value, or its deltas
  added up), and for a monotonic sum also the rate per second (cumulative values differenced, a
  drop counted as a restart);
- histogram and exponential histogram: percentiles of the merged bucket counts the bucket adds
  (cumulative points differenced), with the count and the mean (sum / count);
- summary: the mean (sum / count) and the count.
A cumulative series' first point counts whole only if the series started inside the time range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from llmlens.server.errors import BadParameter
from llmlens.server.query import histograms
from llmlens.server.query.metrics import TYPES
from llmlens.server.query.window import Window
from llmlens.server.store import Store

SERVICE = "service"  # the pseudo attribute key for the resource's service.name
MAX_GROUPS = 30
MAX_POINTS = 100_000
DELTA, CUMULATIVE = 1, 2  # OTLP AggregationTemporality


@dataclass(frozen=True)
class MetricQuery:
    name: str
    step_seconds: int
    filters: list[tuple[str, str]]
    group_by: list[str]
    percentiles: list[float]  # 0 < q < 100


async def find_metric(store: Store, window: Window, name: str) -> dict[str, Any] | None:
    """The metric's type, unit and description (the first table holding points of it in the window)."""
    union = " UNION ALL ".join(
        f"SELECT '{kind}' AS type, any(MetricUnit) AS unit, any(MetricDescription) AS description, count() AS points "
        f"FROM {table} WHERE MetricName = {{name:String}} AND TimeUnix >= {{start:DateTime64(9)}} "
        "AND TimeUnix <= {end:DateTime64(9)}"
        for kind, table in TYPES.items())
    rows = await store.fetch(f"SELECT * FROM ({union}) WHERE points > 0 ORDER BY points DESC LIMIT 1",
                             {**window.params(), "name": name})
    if not rows:
        return None
    r = rows[0]
    return {"name": name, "type": r["type"], "unit": r["unit"], "description": r["description"],
            "points": int(r["points"])}


async def attributes(store: Store, window: Window, metric: dict[str, Any]) -> list[dict[str, Any]]:
    """Each attribute key of the metric's points (and `service`), with up to 50 of its values."""
    table = TYPES[metric["type"]]
    params = {**window.params(), "name": metric["name"]}
    where = "MetricName = {name:String} AND TimeUnix >= {start:DateTime64(9)} AND TimeUnix <= {end:DateTime64(9)}"
    rows = await store.fetch(
        f"""SELECT key, groupUniqArray(50)(value) AS values, uniqExact(value) AS cardinality FROM (
                SELECT '{SERVICE}' AS key, toString(ServiceName) AS value FROM {table} WHERE {where}
                UNION ALL
                SELECT kv.1 AS key, kv.2 AS value FROM {table} ARRAY JOIN CAST(Attributes, 'Array(Tuple(String, String))') AS kv
                WHERE {where})
            GROUP BY key ORDER BY key = '{SERVICE}' DESC, key LIMIT 200""", params)
    return [{"key": r["key"], "values": sorted(r["values"]), "cardinality": int(r["cardinality"])} for r in rows]


def _column(key: str, params: dict[str, Any], slot: str) -> str:
    if key == SERVICE:
        return "toString(ServiceName)"
    params[slot] = key
    return f"Attributes[{{{slot}:String}}]"


def _where(query: MetricQuery, params: dict[str, Any]) -> str:
    parts = ["MetricName = {name:String}", "TimeUnix >= {start:DateTime64(9)}", "TimeUnix <= {end:DateTime64(9)}"]
    for i, (key, value) in enumerate(query.filters):
        parts.append(f"{_column(key, params, f'fk{i}')} = {{fv{i}:String}}")
        params[f"fv{i}"] = value
    return " AND ".join(parts)


async def series(store: Store, window: Window, metric: dict[str, Any], query: MetricQuery) -> dict[str, Any]:
    params: dict[str, Any] = {**window.params(), "name": query.name, "step": query.step_seconds}
    where = _where(query, params)
    groups = ", ".join(f"{_column(key, params, f'gk{i}')} AS g{i}" for i, key in enumerate(query.group_by))
    group_cols = "".join(f", g{i}" for i in range(len(query.group_by)))
    bucket = "toUnixTimestamp(toStartOfInterval(toDateTime(TimeUnix), toIntervalSecond({step:UInt32})))"
    kind, table = metric["type"], TYPES[metric["type"]]
    select_groups = f", {groups}" if groups else ""
    answer = {**metric, "step_seconds": query.step_seconds, "buckets": window.buckets(query.step_seconds),
              "group_by": query.group_by, "filters": [{"key": k, "value": v} for k, v in query.filters],
              "temporality": None, "monotonic": None, "truncated": False}
    if kind == "gauge":
        rows = await store.fetch(
            f"""SELECT {bucket} AS b{select_groups}, avg(Value) AS value FROM {table} WHERE {where}
                GROUP BY b{group_cols} ORDER BY b LIMIT {MAX_POINTS}""", params)
        lines = _lines(rows, query, answer, lambda rs: {"value": _by_bucket(rs, "value")})
        return {**answer, "measures": ["value"], "series": lines}
    series_key = "ServiceName, Attributes"
    if kind == "sum":
        rows = await store.fetch(
            f"""SELECT {bucket} AS b{select_groups}, {series_key}, argMax(Value, TimeUnix) AS last, sum(Value) AS total,
                       min(StartTimeUnix) AS started, any(AggregationTemporality) AS temporality,
                       any(IsMonotonic) AS monotonic
                FROM {table} WHERE {where} GROUP BY b{group_cols}, {series_key} ORDER BY b LIMIT {MAX_POINTS}""",
            params)
        temporality = int(rows[0]["temporality"]) if rows else CUMULATIVE
        monotonic = bool(rows[0]["monotonic"]) if rows else False
        answer.update(temporality="delta" if temporality == DELTA else "cumulative", monotonic=monotonic,
                      truncated=len(rows) >= MAX_POINTS)
        lines = _lines(rows, query, answer, lambda rs: _sum_measures(rs, window, query.step_seconds, temporality))
        return {**answer, "measures": ["value", "rate"] if monotonic else ["value"], "series": lines}
    if kind == "summary":
        rows = await store.fetch(
            f"""SELECT {bucket} AS b{select_groups}, sum(Sum) AS total, sum(Count) AS count FROM {table}
                WHERE {where} GROUP BY b{group_cols} ORDER BY b LIMIT {MAX_POINTS}""", params)
        for r in rows:
            r["mean"] = r["total"] / r["count"] if r["count"] else None
        lines = _lines(rows, query, answer, lambda rs: {"mean": _by_bucket(rs, "mean"), "count": _by_bucket(rs, "count")})
        return {**answer, "measures": ["mean", "count"], "series": lines}
    # One row per bucket and series (and bucket layout): a cumulative series' last point in the bucket,
    # a delta series' points added up; the differences and percentiles are computed in Python.
    def latest_or_sum(column: str, each: bool = False) -> str:
        added = f"sumForEach({column})" if each else f"sum({column})"
        return f"if(temporality = {DELTA}, {added}, argMax({column}, TimeUnix))"

    if kind == "histogram":
        shape = (f"ExplicitBounds AS bounds, {latest_or_sum('BucketCounts', each=True)} AS counts", ", bounds")
    else:
        shape = ("Scale AS scale, PositiveOffset AS positive_offset, NegativeOffset AS negative_offset, "
                 f"{latest_or_sum('ZeroCount')} AS zero_count, {latest_or_sum('PositiveBucketCounts', each=True)} "
                 f"AS positive, {latest_or_sum('NegativeBucketCounts', each=True)} AS negative",
                 ", scale, positive_offset, negative_offset")
    rows = await store.fetch(
        f"""SELECT {bucket} AS b{select_groups}, {series_key}, AggregationTemporality AS temporality,
                   min(StartTimeUnix) AS started, max(TimeUnix) AS t, {latest_or_sum('Count')} AS count,
                   {latest_or_sum('Sum')} AS total, {shape[0]}
            FROM {table} WHERE {where}
            GROUP BY b{group_cols}, {series_key}, temporality{shape[1]}
            ORDER BY b, t LIMIT {MAX_POINTS}""", params)
    temporality = int(rows[0]["temporality"]) if rows else CUMULATIVE
    answer.update(temporality="delta" if temporality == DELTA else "cumulative", truncated=len(rows) >= MAX_POINTS)
    names = [_percentile_name(q) for q in query.percentiles]
    lines = _lines(rows, query, answer, lambda rs: _histogram_measures(rs, window, query, kind, temporality))
    return {**answer, "measures": [*names, "count", "mean"], "series": lines}


def _percentile_name(q: float) -> str:
    return f"p{q:g}"


def _lines(rows: list[dict[str, Any]], query: MetricQuery, answer: dict[str, Any], measures) -> list[dict[str, Any]]:
    """Rows split by group (the g0, g1, ... columns), each turned into its measures per bucket; the
    groups with the most rows first, at most MAX_GROUPS of them."""
    by_group: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        by_group.setdefault(tuple(r[f"g{i}"] for i in range(len(query.group_by))), []).append(r)
    ordered = sorted(by_group.items(), key=lambda item: (-len(item[1]), item[0]))
    if len(ordered) > MAX_GROUPS:
        answer["truncated"] = True
    buckets = answer["buckets"]
    lines = []
    for key, group_rows in ordered[:MAX_GROUPS]:
        values = measures(group_rows)
        lines.append({"labels": dict(zip(query.group_by, key, strict=True)),
                      "values": {m: [v.get(b) for b in buckets] for m, v in values.items()}})
    return lines


def _iso(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(int(epoch_seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _by_bucket(rows: list[dict[str, Any]], field: str) -> dict[str, Any]:
    return {_iso(r["b"]): (float(r[field]) if r[field] is not None else None) for r in rows}


def _started_inside(started: object, window: Window) -> bool:
    text = str(started)
    return text[:19] >= window.start.strftime("%Y-%m-%d %H:%M:%S") and not text.startswith("1970-01-01")


def _sum_measures(rows: list[dict[str, Any]], window: Window, step: int, temporality: int) -> dict[str, dict]:
    value: dict[str, float] = {}
    rate: dict[str, float] = {}
    previous: dict[tuple, float] = {}
    for r in sorted(rows, key=lambda r: r["b"]):
        at = _iso(r["b"])
        series_id = (r["ServiceName"], tuple(sorted(r["Attributes"].items())))
        if temporality == DELTA:
            value[at] = value.get(at, 0.0) + float(r["total"])
            rate[at] = rate.get(at, 0.0) + float(r["total"]) / step
            continue
        last = float(r["last"])
        value[at] = value.get(at, 0.0) + last
        before = previous.get(series_id)
        if before is None:
            increase = last if _started_inside(r["started"], window) else None
        else:
            increase = last - before if last >= before else last  # a drop: the counter restarted
        previous[series_id] = last
        if increase is not None:
            rate[at] = rate.get(at, 0.0) + increase / step
    return {"value": value, "rate": rate}


def _distribution(r: dict[str, Any], kind: str) -> histograms.Distribution:
    if kind == "histogram":
        return histograms.explicit(r["bounds"], r["counts"])
    return histograms.exponential(r["scale"], r["zero_count"], r["positive_offset"], r["positive"],
                                  r["negative_offset"], r["negative"])


def _histogram_measures(rows: list[dict[str, Any]], window: Window, query: MetricQuery, kind: str,
                        temporality: int) -> dict[str, dict]:
    """Per bucket: what each series added (its delta points whole; for cumulative ones, its last point
    in the bucket less its last point before the bucket), merged over the group's series, as
    percentiles, count and mean."""
    Point = tuple[histograms.Distribution, float, float]  # counts, count, sum
    added: dict[str, dict[object, Point]] = {}
    last: dict[tuple, Point] = {}                    # each series' latest point
    base: dict[tuple, tuple[str, Point | None]] = {}  # each series' bucket and its point before that bucket
    for n, r in enumerate(rows):  # a series' bucket (its last point, or its deltas added up), in time order
        at = _iso(r["b"])
        series_id = (r["ServiceName"], tuple(sorted(r["Attributes"].items())))
        point: Point = (_distribution(r, kind), float(r["count"]), float(r["total"]))
        if temporality == DELTA:
            added.setdefault(at, {})[n] = point
            continue
        if base.get(series_id, (None,))[0] != at:
            base[series_id] = (at, last.get(series_id))
        before = base[series_id][1]
        last[series_id] = point
        if before is None:
            if not _started_inside(r["started"], window):
                continue  # no baseline: this point only starts the differences
            before = ({}, 0.0, 0.0)
        if point[1] < before[1]:  # the series restarted: its point counts whole
            change = point
        else:
            change = (histograms.difference(point[0], before[0]), point[1] - before[1], point[2] - before[2])
        added.setdefault(at, {})[series_id] = change
    measures: dict[str, dict[str, float | None]] = {_percentile_name(q): {} for q in query.percentiles}
    measures.update(count={}, mean={})
    for at, points in added.items():
        merged = histograms.merge(p[0] for p in points.values())
        count = sum(p[1] for p in points.values())
        total = sum(p[2] for p in points.values())
        for q in query.percentiles:
            measures[_percentile_name(q)][at] = histograms.percentile(merged, q / 100)
        measures["count"][at] = count
        measures["mean"][at] = total / count if count else None
    return measures


def parse_pairs(items: list[str] | None, parameter: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items or []:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise BadParameter(parameter, f"{parameter} must be key:value, got {item[:60]!r}")
        pairs.append((key, value))
    return pairs


def parse_percentiles(items: list[str] | None) -> list[float]:
    found = []
    for item in items or ["50", "90", "99"]:
        for part in item.split(","):
            try:
                q = float(part.strip().removeprefix("p"))
            except ValueError:
                raise BadParameter("percentile", f"percentile must be a number between 0 and 100, got {part[:20]!r}") from None
            if not 0 < q < 100:
                raise BadParameter("percentile", f"percentile must be between 0 and 100 (exclusive), got {q:g}")
            found.append(q)
    return sorted(set(found))

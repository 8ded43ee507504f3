"""Arrow column types of every table we insert into, in INSERT order.

The normaliser produces plain Python lists per column, or row tuples in this column order for
the busiest tables; the ingest workers turn them into Arrow tables with these types (Arrow is
chDB's fastest insert path and clickhouse-connect's too).
"""

from __future__ import annotations

from itertools import accumulate, chain

import pyarrow as pa

_MAP = pa.map_(pa.string(), pa.string())
_TS = pa.timestamp("ns")
_STR = pa.string()

_METRIC_COMMON: list[tuple[str, pa.DataType]] = [
    ("ResourceAttributes", _MAP),
    ("ResourceSchemaUrl", _STR),
    ("ScopeName", _STR),
    ("ScopeVersion", _STR),
    ("ScopeAttributes", _MAP),
    ("ScopeDroppedAttrCount", pa.uint32()),
    ("ScopeSchemaUrl", _STR),
    ("ServiceName", _STR),
    ("MetricName", _STR),
    ("MetricDescription", _STR),
    ("MetricUnit", _STR),
    ("Attributes", _MAP),
    ("StartTimeUnix", _TS),
    ("TimeUnix", _TS),
]
_EXEMPLARS: list[tuple[str, pa.DataType]] = [
    ("Exemplars.FilteredAttributes", pa.list_(_MAP)),
    ("Exemplars.TimeUnix", pa.list_(_TS)),
    ("Exemplars.Value", pa.list_(pa.float64())),
    ("Exemplars.SpanId", pa.list_(_STR)),
    ("Exemplars.TraceId", pa.list_(_STR)),
]

TABLES: dict[str, list[tuple[str, pa.DataType]]] = {
    "otel_traces": [
        ("Timestamp", _TS),
        ("TraceId", _STR),
        ("SpanId", _STR),
        ("ParentSpanId", _STR),
        ("TraceState", _STR),
        ("SpanName", _STR),
        ("SpanKind", _STR),
        ("ServiceName", _STR),
        ("ResourceAttributes", _MAP),
        ("ScopeName", _STR),
        ("ScopeVersion", _STR),
        ("SpanAttributes", _MAP),
        ("Duration", pa.uint64()),
        ("StatusCode", _STR),
        ("StatusMessage", _STR),
        ("Events.Timestamp", pa.list_(_TS)),
        ("Events.Name", pa.list_(_STR)),
        ("Events.Attributes", pa.list_(_MAP)),
        ("Links.TraceId", pa.list_(_STR)),
        ("Links.SpanId", pa.list_(_STR)),
        ("Links.TraceState", pa.list_(_STR)),
        ("Links.Attributes", pa.list_(_MAP)),
    ],
    "llm_calls": [
        ("Timestamp", _TS),
        ("TraceId", _STR),
        ("SpanId", _STR),
        ("ServiceName", _STR),
        ("SpanName", _STR),
        ("Duration", pa.uint64()),
        ("IsError", pa.bool_()),
        ("Convention", _STR),
        ("Operation", _STR),
        ("Provider", _STR),
        ("RequestModel", _STR),
        ("ResponseModel", _STR),
        ("InputTokens", pa.uint64()),
        ("OutputTokens", pa.uint64()),
        ("CachedInputTokens", pa.uint64()),
        ("ReasoningTokens", pa.uint64()),
        ("CostUsd", pa.float64()),
        ("Priced", pa.bool_()),
        ("Streaming", pa.bool_()),
        ("TtftMs", pa.float64()),
        ("FinishReasons", pa.list_(_STR)),
        ("ErrorType", _STR),
        ("App", _STR),
        ("Department", _STR),
        ("UserId", _STR),
        ("SessionId", _STR),
        ("Input", _STR),
        ("Output", _STR),
        ("ToolNames", pa.list_(_STR)),
        ("TokensEstimated", pa.bool_()),
        ("ProviderRaw", _STR),
        ("RequestModelRaw", _STR),
    ],
    "llm_scores": [
        ("Timestamp", _TS),
        ("TraceId", _STR),
        ("SpanId", _STR),
        ("ServiceName", _STR),
        ("App", _STR),
        ("Name", _STR),
        ("Value", pa.float64()),
        ("Label", _STR),
        ("Comment", _STR),
        ("Source", _STR),
    ],
    "otel_logs": [
        ("Timestamp", _TS),
        ("TraceId", _STR),
        ("SpanId", _STR),
        ("TraceFlags", pa.uint8()),
        ("SeverityText", _STR),
        ("SeverityNumber", pa.uint8()),
        ("ServiceName", _STR),
        ("Body", _STR),
        ("ResourceSchemaUrl", _STR),
        ("ResourceAttributes", _MAP),
        ("ScopeSchemaUrl", _STR),
        ("ScopeName", _STR),
        ("ScopeVersion", _STR),
        ("ScopeAttributes", _MAP),
        ("LogAttributes", _MAP),
        ("EventName", _STR),
    ],
    "otel_metrics_gauge": [*_METRIC_COMMON, ("Value", pa.float64()), ("Flags", pa.uint32()), *_EXEMPLARS],
    "otel_metrics_sum": [
        *_METRIC_COMMON,
        ("Value", pa.float64()),
        ("Flags", pa.uint32()),
        *_EXEMPLARS,
        ("AggregationTemporality", pa.int32()),
        ("IsMonotonic", pa.bool_()),
    ],
    "otel_metrics_histogram": [
        *_METRIC_COMMON,
        ("Count", pa.uint64()),
        ("Sum", pa.float64()),
        ("BucketCounts", pa.list_(pa.uint64())),
        ("ExplicitBounds", pa.list_(pa.float64())),
        *_EXEMPLARS,
        ("Flags", pa.uint32()),
        ("Min", pa.float64()),
        ("Max", pa.float64()),
        ("AggregationTemporality", pa.int32()),
    ],
    "otel_metrics_exponential_histogram": [
        *_METRIC_COMMON,
        ("Count", pa.uint64()),
        ("Sum", pa.float64()),
        ("Scale", pa.int32()),
        ("ZeroCount", pa.uint64()),
        ("PositiveOffset", pa.int32()),
        ("PositiveBucketCounts", pa.list_(pa.uint64())),
        ("NegativeOffset", pa.int32()),
        ("NegativeBucketCounts", pa.list_(pa.uint64())),
        *_EXEMPLARS,
        ("Flags", pa.uint32()),
        ("Min", pa.float64()),
        ("Max", pa.float64()),
        ("AggregationTemporality", pa.int32()),
    ],
    "otel_metrics_summary": [
        *_METRIC_COMMON,
        ("Count", pa.uint64()),
        ("Sum", pa.float64()),
        ("ValueAtQuantiles.Quantile", pa.list_(pa.float64())),
        ("ValueAtQuantiles.Value", pa.list_(pa.float64())),
        ("Flags", pa.uint32()),
    ],
    # Profiles (normalise/profiles.py): frames and stacks before the samples that name them, so a
    # query never meets a sample whose stack is not stored yet.
    "llmlens_profile_frames": [("Timestamp", _TS), ("FrameId", pa.uint64()), ("Name", _STR)],
    "llmlens_profile_stacks": [("Timestamp", _TS), ("StackId", pa.uint64()), ("FrameIds", pa.list_(pa.uint64()))],
    "llmlens_profile_samples": [
        ("Timestamp", _TS),
        ("ServiceName", _STR),
        ("ProfileType", _STR),
        ("StackId", pa.uint64()),
        ("Value", pa.int64()),
        ("TraceId", _STR),
        ("SpanId", _STR),
        ("SpanName", _STR),
        ("ThreadName", _STR),
    ],
}

# The column each table's rows are partitioned by (a day of this timestamp).
TIME_COLUMN = {name: ("TimeUnix" if name.startswith("otel_metrics") else "Timestamp") for name in TABLES}
# What /api/v1/status counts as a metric point.
METRIC_TABLES = tuple(name for name in TABLES if name.startswith("otel_metrics"))


_SCHEMAS = {name: pa.schema(cols) for name, cols in TABLES.items()}


def schema(table: str) -> pa.Schema:
    return _SCHEMAS[table]


class MapColumn:
    """A Map(String, String) column kept as Arrow wants it: flat keys, flat values, offsets.

    Converting a list of dicts to an Arrow map array is the slowest step of an insert;
    appending each dict's keys and values to two flat lists is ~5x cheaper.
    """

    __slots__ = ("keys", "offsets", "values")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.values: list[str] = []
        self.offsets: list[int] = [0]

    def append(self, mapping: dict[str, str]) -> None:
        self.keys.extend(mapping)
        self.values.extend(mapping.values())
        self.offsets.append(len(self.keys))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __iter__(self):  # rows as dicts: for tests and debugging, not the hot path
        for i in range(len(self)):
            lo, hi = self.offsets[i], self.offsets[i + 1]
            yield dict(zip(self.keys[lo:hi], self.values[lo:hi], strict=True))

    def __getitem__(self, index: int) -> dict[str, str]:
        return list(self)[index]

    def to_arrow(self) -> pa.Array:
        return pa.MapArray.from_arrays(pa.array(self.offsets, pa.int32()), pa.array(self.keys, _STR),
                                       pa.array(self.values, _STR))


def new_columns(table: str) -> dict[str, list | MapColumn]:
    return {name: MapColumn() if kind == _MAP else [] for name, kind in TABLES[table]}


_NS_LIST = pa.list_(pa.uint64())
_TS_LIST = pa.list_(_TS)


def _array(values: list | MapColumn, kind: pa.DataType) -> pa.Array:
    if isinstance(values, MapColumn):
        return values.to_arrow()
    # pyarrow converts large Python ints to timestamp or int64 ~100x slower than to uint64
    # (measured: 2.3 us vs 0.02 us a value); nanosecond times are positive, so go via uint64.
    if kind == _TS:
        return pa.array(values, pa.uint64()).cast(pa.int64()).cast(_TS)
    if kind == _TS_LIST:
        return pa.array(values, _NS_LIST).cast(pa.list_(pa.int64())).cast(_TS_LIST)
    return pa.array(values, kind)


def to_arrow(table: str, columns: dict[str, list | MapColumn]) -> pa.Table:
    arrays = [_array(columns[name], kind) for name, kind in TABLES[table]]
    return pa.Table.from_arrays(arrays, schema=schema(table))


def rows_to_arrow(table: str, rows: list[tuple]) -> pa.Table:
    """Rows (tuples in the table's column order, TABLES) as an Arrow table.

    For the tables with most rows: appending one tuple a row and transposing here (in C, with
    zip) costs half as much as ~25 list appends a row.
    """
    arrays = []
    for (_, kind), values in zip(TABLES[table], zip(*rows, strict=True), strict=True):
        arrays.append(_map_array(values) if kind == _MAP else _array(values, kind))  # type: ignore[arg-type]
    return pa.Table.from_arrays(arrays, schema=schema(table))


def _map_array(mappings: tuple[dict[str, str], ...]) -> pa.Array:
    offsets = pa.array([0, *accumulate(map(len, mappings))], pa.int32())
    keys = pa.array(list(chain.from_iterable(mappings)), _STR)
    values = pa.array(list(chain.from_iterable(map(dict.values, mappings))), _STR)
    return pa.MapArray.from_arrays(offsets, keys, values)

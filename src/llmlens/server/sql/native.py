"""ClickHouse's Native format as a client of a given protocol revision reads it.

Over HTTP a client may send `client_protocol_version=N`; a server then writes Native as it would
to a native-protocol client of revision N: each block starts with its BlockInfo (revision >=
51903) and each column's type is followed by a custom-serialization flag (revision >= 54454).
clickhouse-connect probes for this (revision 54405) and clickhouse-go, which Grafana's
ClickHouse plugin uses, asks for it on every query. chDB writes Native as a file (revision 0),
so this module rewrites its blocks: it walks each column's data to find where the column ends
(the lengths follow from the types), inserting the BlockInfo and a flag of 0 (chDB never writes
sparse columns in Native). Column data itself is the same at every revision from 54405 up.
"""

from __future__ import annotations

import struct

BLOCK_INFO_REVISION = 51903  # DBMS_MIN_REVISION_WITH_BLOCK_INFO
LOW_CARDINALITY_REVISION = 54405  # below it a server would send LowCardinality columns as their plain type
CUSTOM_SERIALIZATION_REVISION = 54454
# BlockInfo: field 1 is_overflows = false, field 2 bucket_num = -1, end of fields.
_BLOCK_INFO = b"\x01\x00\x02\xff\xff\xff\xff\x00"

_FIXED = {
    "UInt8": 1, "Int8": 1, "Bool": 1, "Enum8": 1, "UInt16": 2, "Int16": 2, "Date": 2, "Enum16": 2, "BFloat16": 2,
    "UInt32": 4, "Int32": 4, "Float32": 4, "Date32": 4, "DateTime": 4, "IPv4": 4, "Decimal32": 4, "Time": 4,
    "UInt64": 8, "Int64": 8, "Float64": 8, "DateTime64": 8, "Decimal64": 8, "Time64": 8,
    "UInt128": 16, "Int128": 16, "UUID": 16, "IPv6": 16, "Decimal128": 16,
    "UInt256": 32, "Int256": 32, "Decimal256": 32,
}
_GEO = {"Point": "Tuple(Float64, Float64)", "Ring": "Array(Point)", "LineString": "Array(Point)",
        "Polygon": "Array(Ring)", "MultiLineString": "Array(LineString)", "MultiPolygon": "Array(Polygon)"}
_INDEX_SIZES = (1, 2, 4, 8)
_HAS_ADDITIONAL_KEYS, _NEEDS_GLOBAL_DICTIONARY = 1 << 9, 1 << 8


class NativeError(ValueError):
    """A Native stream this module cannot rewrite (a type whose layout it does not know)."""


def with_revision(native: bytes, revision: int) -> bytes:
    """chDB's Native output -> the same result as a server writes it for `client_protocol_version=revision`.
    Raises NativeError on a type whose data length it cannot work out (JSON, Dynamic, Variant...)."""
    if revision < LOW_CARDINALITY_REVISION:
        if revision <= 0:
            return native
        raise NativeError(f"client_protocol_version {revision} is older than this interface writes "
                          f"(from {LOW_CARDINALITY_REVISION})")
    try:
        return _rewrite(native, revision)
    except (struct.error, IndexError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, NativeError):
            raise
        raise NativeError(f"the Native answer could not be rewritten for client_protocol_version {revision}: "
                          f"{type(exc).__name__}: {exc}") from None


def _rewrite(native: bytes, revision: int) -> bytes:
    out = bytearray()
    reader = _Reader(native)
    while not reader.done():
        out += _BLOCK_INFO
        start = reader.pos
        columns, rows = reader.varuint(), reader.varuint()
        out += native[start:reader.pos]
        for _ in range(columns):
            start = reader.pos
            reader.skip(reader.varuint())  # name
            type_text = reader.string()
            out += native[start:reader.pos]
            if revision >= CUSTOM_SERIALIZATION_REVISION:
                out.append(0)
            start = reader.pos
            if rows:  # a column of no rows has no bytes
                kind = parse_type(type_text)
                # Serialization prefixes come first, for the whole column: one per LowCardinality in the type,
                # wherever it sits (a Map's LowCardinality keys have theirs before the Map's offsets).
                reader.skip(8 * _low_cardinalities(kind))
                _skip_column(reader, kind, rows)
            out += native[start:reader.pos]
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def done(self) -> bool:
        return self.pos >= len(self.data)

    def varuint(self) -> int:
        value = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise NativeError("the Native stream ends inside a number")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def string(self) -> str:
        length = self.varuint()
        text = self.data[self.pos:self.pos + length].decode()
        self.skip(length)
        return text

    def uint64(self) -> int:
        (value,) = struct.unpack_from("<Q", self.data, self.pos)
        self.pos += 8
        return value

    def skip(self, count: int) -> None:
        self.pos += count
        if self.pos > len(self.data):
            raise NativeError("the Native stream ends inside a column")


def parse_type(text: str) -> tuple[str, list]:
    """`Map(LowCardinality(String), String)` -> ("Map", [("LowCardinality", [("String", [])]), ("String", [])]).
    Arguments that are not types (numbers, quoted strings, Enum values) come back as ("", [text])."""
    text = text.strip()
    # A named tuple element `name Type`: the type is what follows the name.
    if " " in text.split("(", 1)[0] and not text.startswith("'"):
        text = text.split(" ", 1)[1].strip()
    if not text or not (text[0].isalpha() or text[0] == "_"):
        return "", [text]
    if "(" not in text:
        return text, []
    name, inner = text.split("(", 1)
    return name.strip(), [parse_type(arg) for arg in _split_args(inner[:-1])]


def _split_args(text: str) -> list[str]:
    args, depth, quoted, start = [], 0, False, 0
    i = 0
    while i < len(text):
        char = text[i]
        if quoted:
            if char == "\\":
                i += 1
            elif char == "'":
                quoted = False
        elif char == "'":
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            args.append(text[start:i])
            start = i + 1
        i += 1
    args.append(text[start:])
    return [a for a in args if a.strip()]


def _skip_column(reader: _Reader, kind: tuple[str, list], rows: int) -> None:
    """Past `rows` values of the column's data (after its serialization prefixes)."""
    name, args = kind
    if name in _FIXED:
        reader.skip(_FIXED[name] * rows)
    elif name == "String":
        _skip_strings(reader, rows)
    elif name == "FixedString":
        reader.skip(int(_literal(args[0])) * rows)
    elif name == "Decimal":
        precision = int(_literal(args[0]))
        reader.skip((4 if precision <= 9 else 8 if precision <= 18 else 16 if precision <= 38 else 32) * rows)
    elif name == "Nullable":
        reader.skip(rows)
        _skip_column(reader, args[0], rows)
    elif name in ("Array", "Map"):
        reader.skip(8 * (rows - 1))
        elements = reader.uint64()
        if elements:
            inner = args[0] if name == "Array" else ("Tuple", args)
            _skip_column(reader, inner, elements)
    elif name == "Tuple":
        for element in args:
            _skip_column(reader, element, rows)
    elif name == "LowCardinality":
        _skip_low_cardinality(reader, args[0], rows)
    elif name == "Nothing":
        reader.skip(rows)
    elif name.startswith("Interval"):
        reader.skip(8 * rows)
    elif name in _GEO:
        _skip_column(reader, parse_type(_GEO[name]), rows)
    elif name == "SimpleAggregateFunction":
        _skip_column(reader, args[-1], rows)
    else:
        raise NativeError(f"columns of type {name} cannot be sent as Native with client_protocol_version here; "
                          "cast them (e.g. toString) or use another format")


def _skip_strings(reader: _Reader, rows: int) -> None:
    # The hot loop of a rewrite: most strings are shorter than 128 bytes, their length one byte.
    data, pos = reader.data, reader.pos
    for _ in range(rows):
        length = data[pos]
        if length < 0x80:
            pos += 1 + length
        else:
            reader.pos = pos
            pos = reader.varuint()
            pos += reader.pos
    reader.pos = pos
    if pos > len(data):
        raise NativeError("the Native stream ends inside a column")


def _low_cardinalities(kind: tuple[str, list]) -> int:
    name, args = kind
    return (name == "LowCardinality") + sum(_low_cardinalities(a) for a in args if a[0])


def _skip_low_cardinality(reader: _Reader, inner: tuple[str, list], rows: int) -> None:
    """One granule after another (index type, new dictionary keys, indexes); the prefix is skipped already."""
    keys_type = inner[1][0] if inner[0] == "Nullable" else inner
    seen = 0
    while seen < rows:
        index_type = reader.uint64()
        if index_type & _NEEDS_GLOBAL_DICTIONARY:
            raise NativeError("a LowCardinality column with a global dictionary cannot be rewritten")
        if index_type & _HAS_ADDITIONAL_KEYS:
            keys = reader.uint64()
            if keys:
                _skip_column(reader, keys_type, keys)
        count = reader.uint64()
        reader.skip(_INDEX_SIZES[index_type & 0xFF] * count)
        seen += count


def _literal(kind: tuple[str, list]) -> str:
    if kind[0] or not kind[1]:
        raise NativeError(f"expected a number as a type argument, got {kind}")
    return kind[1][0]

"""pprof's `Profile` message, and a builder that fills its tables.

The message layout is pprof's (github.com/google/pprof, proto/profile.proto): the same field
numbers and types, declared here as a descriptor for the fields the SDK writes, so the wire bytes
are a valid pprof profile. The classes come from protobuf's message factory at import in a private
descriptor pool: no generated code to keep in step with the installed protobuf runtime, and no
clash with another library that registers pprof's own package in the default pool.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "llmlens.sdk.pprof"
_F = descriptor_pb2.FieldDescriptorProto
_ONE, _MANY = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_I64, _U64, _STR, _MSG = _F.TYPE_INT64, _F.TYPE_UINT64, _F.TYPE_STRING, _F.TYPE_MESSAGE

# message -> [(field, number, label, type, message type)], as in pprof's profile.proto.
_MESSAGES: dict[str, list[tuple[str, int, int, int, str]]] = {
    "Profile": [
        ("sample_type", 1, _MANY, _MSG, "ValueType"),
        ("sample", 2, _MANY, _MSG, "Sample"),
        ("location", 4, _MANY, _MSG, "Location"),
        ("function", 5, _MANY, _MSG, "Function"),
        ("string_table", 6, _MANY, _STR, ""),
        ("time_nanos", 9, _ONE, _I64, ""),
        ("duration_nanos", 10, _ONE, _I64, ""),
        ("period_type", 11, _ONE, _MSG, "ValueType"),
        ("period", 12, _ONE, _I64, ""),
        ("default_sample_type", 14, _ONE, _I64, ""),
    ],
    "ValueType": [("type", 1, _ONE, _I64, ""), ("unit", 2, _ONE, _I64, "")],
    "Sample": [
        ("location_id", 1, _MANY, _U64, ""),  # leaf first
        ("value", 2, _MANY, _I64, ""),
        ("label", 3, _MANY, _MSG, "Label"),
    ],
    "Label": [("key", 1, _ONE, _I64, ""), ("str", 2, _ONE, _I64, ""), ("num", 3, _ONE, _I64, ""),
              ("num_unit", 4, _ONE, _I64, "")],
    "Location": [("id", 1, _ONE, _U64, ""), ("mapping_id", 2, _ONE, _U64, ""), ("address", 3, _ONE, _U64, ""),
                 ("line", 4, _MANY, _MSG, "Line")],
    "Line": [("function_id", 1, _ONE, _U64, ""), ("line", 2, _ONE, _I64, "")],
    "Function": [("id", 1, _ONE, _U64, ""), ("name", 2, _ONE, _I64, ""), ("system_name", 3, _ONE, _I64, ""),
                 ("filename", 4, _ONE, _I64, ""), ("start_line", 5, _ONE, _I64, "")],
}


def _message_classes() -> dict[str, type]:
    file = descriptor_pb2.FileDescriptorProto(name="llmlens/sdk/pprof.proto", package=_PACKAGE, syntax="proto3")
    for message, fields in _MESSAGES.items():
        out = file.message_type.add(name=message)
        for name, number, label, kind, type_name in fields:
            field = out.field.add(name=name, number=number, label=label, type=kind)
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {m: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{m}")) for m in _MESSAGES}


_CLASSES = _message_classes()
Profile = _CLASSES["Profile"]


class ProfileBuilder:
    """One pprof profile: strings, functions and locations interned, samples appended."""

    def __init__(self, sample_type: tuple[str, str], period_type: tuple[str, str], period: int,
                 time_nanos: int, duration_nanos: int) -> None:
        self.profile = Profile(period=period, time_nanos=time_nanos, duration_nanos=duration_nanos)
        self._strings: dict[str, int] = {}
        self._functions: dict[tuple[str, str, int], int] = {}
        self._locations: dict[tuple[int, int], int] = {}
        self.string("")  # pprof requires string_table[0] == ""
        self.profile.sample_type.add(type=self.string(sample_type[0]), unit=self.string(sample_type[1]))
        self.profile.period_type.type = self.string(period_type[0])
        self.profile.period_type.unit = self.string(period_type[1])

    def string(self, text: str) -> int:
        index = self._strings.get(text)
        if index is None:
            index = self._strings[text] = len(self._strings)
            self.profile.string_table.append(text)
        return index

    def location(self, function: str, filename: str, start_line: int, line: int) -> int:
        """The id of the location `line` inside `function` (added on first use)."""
        key = (function, filename, start_line)
        function_id = self._functions.get(key)
        if function_id is None:
            function_id = self._functions[key] = len(self._functions) + 1
            name = self.string(function)
            self.profile.function.add(id=function_id, name=name, system_name=name, filename=self.string(filename),
                                      start_line=start_line)
        location_id = self._locations.get((function_id, line))
        if location_id is None:
            location_id = self._locations[(function_id, line)] = len(self._locations) + 1
            self.profile.location.add(id=location_id).line.add(function_id=function_id, line=line)
        return location_id

    def sample(self, location_ids: Sequence[int], value: int, labels: Iterable[tuple[str, str]]) -> None:
        sample = self.profile.sample.add(location_id=location_ids, value=[value])
        for key, text in labels:
            sample.label.add(key=self.string(key), str=self.string(text))

    def gzipped(self) -> bytes:
        """The profile as pprof files are stored and sent: gzip'ed protobuf."""
        return gzip.compress(self.profile.SerializeToString(), compresslevel=6)

"""Profile bodies made by hand, of known trees: pprof (as Go's runtime/pprof and pyroscope-rs lay it
out: a string table, functions, locations leaf first), Pyroscope PushRequests, OTLP profiles."""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from llmlens.server.decode.proto import pprof_pb2, pyroscope_push_pb2

PERIOD_NS = 10_000_000  # 100 Hz
Frame = tuple[str, str, int]  # function, file, line


class PprofBuilder:
    def __init__(self, time_ns: int = 0, sample_types: Sequence[tuple[str, str]] = (("cpu", "nanoseconds"),)) -> None:
        self.profile = pprof_pb2.Profile(time_nanos=time_ns, duration_nanos=10 * 10**9, period=PERIOD_NS)
        self._strings: dict[str, int] = {}
        self._string("")
        for kind, unit in sample_types:
            self.profile.sample_type.add(type=self._string(kind), unit=self._string(unit))
        self.profile.period_type.type = self._string("cpu")
        self.profile.period_type.unit = self._string("nanoseconds")
        self._functions: dict[tuple[str, str], int] = {}
        self._locations: dict[Frame, int] = {}

    def _string(self, text: str) -> int:
        if text not in self._strings:
            self._strings[text] = len(self.profile.string_table)
            self.profile.string_table.append(text)
        return self._strings[text]

    def _location(self, frame: Frame) -> int:
        if frame not in self._locations:
            function, file, line = frame
            fid = self._functions.get((function, file))
            if fid is None:
                fid = self._functions[(function, file)] = len(self._functions) + 1
                self.profile.function.add(id=fid, name=self._string(function), filename=self._string(file))
            lid = self._locations[frame] = len(self._locations) + 1
            self.profile.location.add(id=lid).line.add(function_id=fid, line=line)
        return self._locations[frame]

    def sample(self, stack: Sequence[Frame], samples: int, labels: Mapping[str, str] | None = None,
               values: Sequence[int] | None = None) -> PprofBuilder:
        """`stack` root first; `samples` at 100 Hz (the value is samples x period in nanoseconds)."""
        sample = self.profile.sample.add(location_id=[self._location(f) for f in reversed(stack)],
                                         value=values or [samples * PERIOD_NS])
        for key, value in (labels or {}).items():
            sample.label.add(key=self._string(key), str=self._string(value))
        return self

    def bytes(self, gzipped: bool = True) -> bytes:
        raw = self.profile.SerializeToString()
        return gzip.compress(raw) if gzipped else raw


def push_request(service: str, profiles: Sequence[bytes], labels: Mapping[str, str] | None = None
                 ) -> pyroscope_push_pb2.PushRequest:
    request = pyroscope_push_pb2.PushRequest()
    series = request.series.add()
    for key, value in {"__name__": "process_cpu", "service_name": service, **(labels or {})}.items():
        series.labels.add(name=key, value=value)
    for i, profile in enumerate(profiles):
        series.samples.add(raw_profile=profile, ID=f"profile-{i}")
    return request


def otlp_profiles_request(service: str, stacks: Mapping[tuple[Frame, ...], int], time_ns: int,
                          span: tuple[bytes, bytes] | None = None) -> ExportProfilesServiceRequest:
    """One OTLP profile (v1development, opentelemetry-proto 1.45's messages) of cpu nanoseconds at 100 Hz;
    every sample linked to `span` (trace id, span id) when given."""
    request = ExportProfilesServiceRequest()
    d = request.dictionary
    strings: dict[str, int] = {}

    def string(text: str) -> int:
        if text not in strings:
            strings[text] = len(d.string_table)
            d.string_table.append(text)
        return strings[text]

    string("")
    d.link_table.add()  # index 0: no link
    d.location_table.add()
    d.function_table.add()
    d.stack_table.add()
    if span:
        d.link_table.add(trace_id=span[0], span_id=span[1])
    locations: dict[Frame, int] = {}
    resource = request.resource_profiles.add()
    attribute = resource.resource.attributes.add(key="service.name")
    attribute.value.string_value = service
    profile = resource.scope_profiles.add().profiles.add(time_unix_nano=time_ns, duration_nano=10 * 10**9,
                                                         period=PERIOD_NS)
    profile.sample_type.type_strindex = string("cpu")
    profile.sample_type.unit_strindex = string("nanoseconds")
    for stack, samples in stacks.items():
        indices = []
        for frame in reversed(stack):  # leaf first
            if frame not in locations:
                d.function_table.add(name_strindex=string(frame[0]), filename_strindex=string(frame[1]))
                location = d.location_table.add()
                location.lines.add(function_index=len(d.function_table) - 1, line=frame[2])
                locations[frame] = len(d.location_table) - 1
            indices.append(locations[frame])
        d.stack_table.add(location_indices=indices)
        profile.samples.add(stack_index=len(d.stack_table) - 1, values=[samples * PERIOD_NS],
                            link_index=1 if span else 0)
    return request


def names(tree: dict) -> dict:
    """A flame graph as {name: (value, self, {children})}, to compare with a known tree."""
    return {child["name"]: (child["value"], child["self"], names(child)) for child in tree["children"]}

"""Profile bodies -> stacks and samples: pprof (raw or gzip'ed), Pyroscope's folded lines, and the
multipart form Pyroscope's Go and Java clients post to /ingest.

A decoded profile is a list of unique stacks (frame names, root first) and samples over them, each
with the trace, span and thread it was taken in (pprof sample labels `span_id`, `trace_id`,
`thread_name`, as llmlens's SDK and pyroscope-otel set them). Hostile bodies (corrupt data, stacks
thousands of frames deep, millions of distinct frames) raise PayloadError before anything is kept.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP

from google.protobuf.message import DecodeError

from llmlens.server.decode.proto import pprof_pb2
from llmlens.server.errors import PayloadError, PayloadTooLarge

MAX_STACK_DEPTH = 1024  # frames; Python's own recursion limit is 1000
MAX_FRAMES = 100_000  # distinct frames in one profile
MAX_SAMPLES = 1_000_000  # sample entries in one profile
MAX_INFLATED_BYTES = 64 * 1024 * 1024  # a gzip'ed profile inside a request, once inflated
MAX_NAME_CHARS = 1024  # longer frame names are cut (C++ templates can run to pages)
_HEX16 = re.compile(r"[0-9a-f]{16}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
# pprof label keys -> the sample's columns. `profile_id` is pyroscope-otel's older name for span_id.
_SPAN_KEYS = ("span_id", "profile_id")
_THREAD_KEYS = ("thread_name", "thread")


@dataclass
class Sample:
    stack: int  # index into DecodedProfile.stacks
    value: int
    trace_id: str = ""
    span_id: str = ""
    span_name: str = ""
    thread: str = ""


@dataclass
class DecodedProfile:
    stacks: list[tuple[str, ...]] = field(default_factory=list)  # frame names, root first
    samples: list[Sample] = field(default_factory=list)
    time_ns: int = 0  # when the profile began (0: not said)
    duration_ns: int = 0


def gunzip_if_gzipped(data: bytes, what: str) -> bytes:
    """`data` inflated when it starts with gzip's magic bytes, within MAX_INFLATED_BYTES."""
    if data[:2] != b"\x1f\x8b":
        return data
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_INFLATED_BYTES + 1)
    except zlib.error as exc:
        raise PayloadError(f"{what} is not valid gzip data: {exc}") from exc
    if len(out) > MAX_INFLATED_BYTES or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"{what} inflates past {MAX_INFLATED_BYTES} bytes")
    if not inflater.eof:
        raise PayloadError(f"{what} is truncated gzip data")
    return out


def decode_pprof(data: bytes) -> DecodedProfile:
    """A pprof Profile (raw or gzip'ed). CPU and wall profiles in nanoseconds are counted in samples
    (value / period); a profile with several sample types gives its `samples` count, else its default
    type, else the first."""
    data = gunzip_if_gzipped(data, "the pprof profile")
    profile = pprof_pb2.Profile()
    try:
        profile.ParseFromString(data)
    except (DecodeError, RecursionError) as exc:
        raise PayloadError(f"not a valid pprof profile: {exc}") from exc
    strings = profile.string_table
    if len(profile.sample) > MAX_SAMPLES:
        raise PayloadError(f"the profile has {len(profile.sample)} samples, over the {MAX_SAMPLES} limit")

    def string(index: int, what: str) -> str:
        if not 0 <= index < len(strings):
            raise PayloadError(f"pprof {what} refers to string {index}, past the string table's {len(strings)}")
        return strings[index]

    value_index, divisor = _value_index(profile, string)
    functions = {f.id: f for f in profile.function}
    frames_by_location: dict[int, tuple[str, ...]] = {}
    for location in profile.location:
        names = []
        for line in reversed(location.line):  # pprof lists inlined calls callee first
            function = functions.get(line.function_id)
            if function is None:
                raise PayloadError(f"pprof location {location.id} refers to function {line.function_id}, "
                                   "which the profile does not define")
            names.append(_frame_name(string(function.name, "function name"), string(function.filename, "file name"),
                                     function.start_line or line.line))
        if not names:
            names.append(f"0x{location.address:x}")  # not symbolised
        frames_by_location[location.id] = tuple(names)
    if len({n for names in frames_by_location.values() for n in names}) > MAX_FRAMES:
        raise PayloadError(f"the profile has more than {MAX_FRAMES} distinct frames")

    decoded = DecodedProfile(time_ns=max(profile.time_nanos, 0), duration_ns=max(profile.duration_nanos, 0))
    stack_index: dict[tuple[int, ...], int] = {}
    label_sets: dict[tuple[int, ...], Sample] = {}  # a span's samples share their labels: resolve them once
    for sample in profile.sample:
        values = sample.value
        if value_index >= len(values):
            continue
        value = values[value_index]
        if divisor > 1:
            value = round(value / divisor)
        if value <= 0:
            continue
        locations = tuple(sample.location_id)
        index = stack_index.get(locations)
        if index is None:
            index = stack_index[locations] = len(decoded.stacks)
            decoded.stacks.append(_stack(locations, frames_by_location))
        key = tuple(n for label in sample.label for n in (label.key, label.str))
        labels = label_sets.get(key)
        if labels is None:
            labels = label_sets[key] = Sample(0, 0)
            for i in range(0, len(key), 2):
                _apply_label(labels, string(key[i], "label key"), string(key[i + 1], "label value"))
        decoded.samples.append(Sample(index, value, labels.trace_id, labels.span_id, labels.span_name, labels.thread))
    return decoded


def _value_index(profile: pprof_pb2.Profile, string) -> tuple[int, int]:
    """Which of the sample's values to keep, and what to divide it by to count samples."""
    types = [(string(t.type, "sample type"), string(t.unit, "sample unit")) for t in profile.sample_type]
    if not types:
        return 0, 1
    for i, (kind, unit) in enumerate(types):
        if kind == "samples" and unit in ("count", ""):
            return i, 1
    default = string(profile.default_sample_type, "default sample type") if profile.default_sample_type else ""
    index = next((i for i, (kind, _) in enumerate(types) if kind == default), 0)
    kind, unit = types[index]
    if unit == "nanoseconds" and profile.period > 0 and kind in ("cpu", "wall", "itimer"):
        return index, profile.period
    return index, 1


def _stack(locations: tuple[int, ...], frames_by_location: dict[int, tuple[str, ...]]) -> tuple[str, ...]:
    names: list[str] = []
    for location_id in reversed(locations):  # pprof lists the leaf first
        frames = frames_by_location.get(location_id)
        if frames is None:
            raise PayloadError(f"a pprof sample refers to location {location_id}, which the profile does not define")
        names.extend(frames)
    if len(names) > MAX_STACK_DEPTH:
        raise PayloadError(f"a stack of {len(names)} frames is deeper than the {MAX_STACK_DEPTH}-frame limit")
    return tuple(names)


def _frame_name(function: str, file: str, line: int) -> str:
    """`function (file:line)`: the line a function starts on when the profile says it (one node per
    function), else the line the sample was taken at."""
    name = function or "?"
    if file:
        name = f"{name} ({file}:{line})" if line > 0 else f"{name} ({file})"
    return name if len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS - 1] + "…"


def _apply_label(sample: Sample, key: str, value: str) -> None:
    if key in _SPAN_KEYS:
        value = value.lower()
        sample.span_id = value if _HEX16.fullmatch(value) else ""
    elif key == "trace_id":
        value = value.lower()
        sample.trace_id = value if _HEX32.fullmatch(value) else ""
    elif key == "span_name":
        sample.span_name = value[:MAX_NAME_CHARS]
    elif key in _THREAD_KEYS:
        sample.thread = value[:MAX_NAME_CHARS]


def decode_folded(data: bytes, *, each_line_once: bool = False) -> DecodedProfile:
    """Pyroscope's folded text: one `frame;frame;leaf count` a line (root first, the count after the
    last space); with `each_line_once` (format=lines) a line is one sample and has no count."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"folded profile is not valid UTF-8: {exc}") from exc
    decoded = DecodedProfile()
    stack_index: dict[str, int] = {}
    frames: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if each_line_once:
            stack_text, value = line, 1
        else:
            stack_text, _, count = line.rpartition(" ")
            if not stack_text or not count.isdigit():
                raise PayloadError(f"folded profile line {number}: expected 'frame;frame;... <count>', "
                                   f"got {line[:80]!r}")
            value = int(count)
        if value <= 0:
            continue
        index = stack_index.get(stack_text)
        if index is None:
            names = stack_text.split(";", MAX_STACK_DEPTH)
            if len(names) > MAX_STACK_DEPTH:
                raise PayloadError(f"folded profile line {number}: a stack deeper than the "
                                   f"{MAX_STACK_DEPTH}-frame limit")
            names = [n if len(n) <= MAX_NAME_CHARS else n[:MAX_NAME_CHARS - 1] + "…" for n in names]
            frames.update(names)
            if len(frames) > MAX_FRAMES:
                raise PayloadError(f"the profile has more than {MAX_FRAMES} distinct frames")
            index = stack_index[stack_text] = len(decoded.stacks)
            decoded.stacks.append(tuple(names))
        decoded.samples.append(Sample(index, value))
        if len(decoded.samples) > MAX_SAMPLES:
            raise PayloadError(f"the profile has more than {MAX_SAMPLES} lines")
    return decoded


def multipart_profile(content_type: str, body: bytes) -> bytes:
    """The `profile` file of a multipart/form-data body (as Pyroscope's Go and Java clients send it);
    `prev_profile` and `sample_type_config` are not read."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise PayloadError("multipart/form-data body has no parts (is the boundary right?)")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "profile":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes) and payload:
                return payload
    raise PayloadError("multipart/form-data body has no 'profile' part")


def decode_otlp_profile(profile, dictionary) -> DecodedProfile:
    """One OTLP profile (opentelemetry.proto.profiles.v1development, as opentelemetry-proto 1.45
    ships it: proto v1.10.0 with a shared ProfilesDictionary and a stack table) with the request's
    dictionary. Span links become the samples' trace and span ids; the `thread.name` attribute
    their thread."""
    strings = dictionary.string_table

    def string(index: int, what: str) -> str:
        if not 0 <= index < len(strings):
            raise PayloadError(f"OTLP profile {what} refers to string {index}, past the string table's {len(strings)}")
        return strings[index]

    def entry(table, index: int, what: str):
        if not 0 <= index < len(table):
            raise PayloadError(f"OTLP profile refers to {what} {index}, past the {what} table's {len(table)}")
        return table[index]

    if len(profile.samples) > MAX_SAMPLES:
        raise PayloadError(f"the profile has {len(profile.samples)} samples, over the {MAX_SAMPLES} limit")
    kind = string(profile.sample_type.type_strindex, "sample type")
    unit = string(profile.sample_type.unit_strindex, "sample unit")
    divisor = profile.period if unit == "nanoseconds" and profile.period > 0 and kind in ("cpu", "wall") else 1
    location_frames: dict[int, tuple[str, ...]] = {}

    def frames_of(location_index: int) -> tuple[str, ...]:
        found = location_frames.get(location_index)
        if found is None:
            location = entry(dictionary.location_table, location_index, "location")
            names = []
            for line in reversed(location.lines):
                function = entry(dictionary.function_table, line.function_index, "function")
                names.append(_frame_name(string(function.name_strindex, "function name"),
                                         string(function.filename_strindex, "file name"),
                                         function.start_line or line.line))
            found = location_frames[location_index] = tuple(names) or (f"0x{location.address:x}",)
            if len(location_frames) > MAX_FRAMES:
                raise PayloadError(f"the profile has more than {MAX_FRAMES} distinct frames")
        return found

    decoded = DecodedProfile(time_ns=profile.time_unix_nano, duration_ns=profile.duration_nano)
    stack_index: dict[int, int] = {}
    for sample in profile.samples:
        value = sum(sample.values) if sample.values else len(sample.timestamps_unix_nano)
        if divisor > 1:
            value = round(value / divisor)
        if value <= 0:
            continue
        index = stack_index.get(sample.stack_index)
        if index is None:
            stack = entry(dictionary.stack_table, sample.stack_index, "stack")
            names: list[str] = []
            for location_index in reversed(stack.location_indices):  # the leaf first, as in pprof
                names.extend(frames_of(location_index))
            if len(names) > MAX_STACK_DEPTH:
                raise PayloadError(f"a stack of {len(names)} frames is deeper than the {MAX_STACK_DEPTH}-frame limit")
            index = stack_index[sample.stack_index] = len(decoded.stacks)
            decoded.stacks.append(tuple(names))
        row = Sample(index, value)
        if sample.link_index:  # 0 is the empty link by the dictionary's convention
            link = entry(dictionary.link_table, sample.link_index, "link")
            _apply_label(row, "trace_id", link.trace_id.hex())
            _apply_label(row, "span_id", link.span_id.hex())
        for attribute_index in sample.attribute_indices:
            attribute = entry(dictionary.attribute_table, attribute_index, "attribute")
            key = string(attribute.key_strindex, "attribute key")
            if key == "thread.name":
                _apply_label(row, "thread_name", attribute.value.string_value)
        decoded.samples.append(row)
    return decoded

"""Profile requests -> rows: samples over deduplicated stacks and frames.

A frame is stored once under a 64-bit hash of its name, a stack once under a hash of its frame ids
(root first); a sample row holds the stack's id, its count, and the trace, span and thread it was
taken in. Stacks and frames are written again with each request that uses them (their tables keep
one row per id when they merge), so no lookup is needed at ingest and any request stands alone.

Two requests reach here: Pyroscope's PushRequest (from /push.v1.PusherService/Push, and from
/ingest, whose handler wraps the body and its query parameters in one, see receive/profiles.py)
and OTLP's ExportProfilesServiceRequest.
"""

from __future__ import annotations

import hashlib
from array import array
from typing import Any

from llmlens.server.decode.profiles import (
    DecodedProfile,
    decode_folded,
    decode_otlp_profile,
    decode_pprof,
    multipart_profile,
)
from llmlens.server.errors import PayloadError
from llmlens.server.normalise.cost import CostModel
from llmlens.server.normalise.time_window import Bounds
from llmlens.server.store.batch import Batch

SAMPLES, STACKS, FRAMES = "llmlens_profile_samples", "llmlens_profile_stacks", "llmlens_profile_frames"
DEFAULT_PROFILE_TYPE = "process_cpu"
# Labels /ingest's handler adds to the PushRequest it builds (Pyroscope reserves names starting "__").
FORMAT_LABEL = "__llmlens_format__"  # pprof | folded | lines | multipart
CONTENT_TYPE_LABEL = "__llmlens_content_type__"  # a multipart body's, with its boundary
FROM_LABEL = "__llmlens_from__"  # unix seconds


def hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


# One request may carry many profiles (a Push of many series): bounds over all of them.
MAX_REQUEST_FRAMES = 200_000
MAX_REQUEST_ROWS = 2_000_000


class ProfileRows:
    """Adds decoded profiles to a batch's three tables, each stack and frame once per batch."""

    def __init__(self, batch: Batch) -> None:
        self._samples = batch.rows(SAMPLES)
        self._stacks = batch.rows(STACKS)
        self._frames = batch.rows(FRAMES)
        self._frame_ids: dict[str, int] = {}
        self._stack_ids: dict[tuple[int, ...], int] = {}

    def add(self, profile: DecodedProfile, service: str, profile_type: str, time_ns: int) -> None:
        stack_ids = [self._stack_id(names, time_ns) for names in profile.stacks]
        if len(self._frame_ids) > MAX_REQUEST_FRAMES:
            raise PayloadError(f"the request's profiles have more than {MAX_REQUEST_FRAMES} distinct frames")
        if len(self._samples) + len(profile.samples) > MAX_REQUEST_ROWS:
            raise PayloadError(f"the request's profiles have more than {MAX_REQUEST_ROWS} samples")
        append = self._samples.append
        for s in profile.samples:
            append((time_ns, service, profile_type, stack_ids[s.stack], s.value, s.trace_id, s.span_id,
                    s.span_name, s.thread))

    def _stack_id(self, names: tuple[str, ...], time_ns: int) -> int:
        frame_ids = tuple(self._frame_id(name, time_ns) for name in names)
        found = self._stack_ids.get(frame_ids)
        if found is None:
            found = self._stack_ids[frame_ids] = hash64(array("Q", frame_ids).tobytes())
            self._stacks.append((time_ns, found, list(frame_ids)))
        return found

    def _frame_id(self, name: str, time_ns: int) -> int:
        found = self._frame_ids.get(name)
        if found is None:
            found = self._frame_ids[name] = hash64(name.encode("utf-8", "surrogatepass"))
            self._frames.append((time_ns, found, name))
        return found


def normalise_push(request: Any, cost: CostModel) -> Batch:
    """Pyroscope's PushRequest: each series' labels name the service (`service_name`) and the profile
    type (`__name__`, process_cpu by default); each raw sample is one profile. A profile that cannot
    be stored (no service, out of the time window) is rejected alone; a corrupt one fails the request."""
    batch = Batch()
    rows = ProfileRows(batch)
    bounds = cost.window.now() if cost.window is not None else None
    for series in request.series:
        labels = {label.name: label.value for label in series.labels}
        service = labels.get("service_name", "")
        profile_type = labels.get("__name__") or DEFAULT_PROFILE_TYPE
        for raw in series.samples:
            if not service:
                batch.reject("a profile series has no service_name label")
                continue
            profile = _decode(raw.raw_profile, labels)
            time_ns = _start(labels, profile, bounds)
            problem = bounds.check(time_ns, f"profile of {service!r}: start time") if bounds else ""
            if problem:
                batch.reject(problem)
                continue
            rows.add(profile, service, profile_type, time_ns)
            batch.accepted += 1
    return batch


def _decode(data: bytes, labels: dict[str, str]) -> DecodedProfile:
    fmt = labels.get(FORMAT_LABEL, "pprof")
    if fmt == "folded":
        return decode_folded(data)
    if fmt == "lines":
        return decode_folded(data, each_line_once=True)
    if fmt == "multipart":
        return decode_pprof(multipart_profile(labels.get(CONTENT_TYPE_LABEL, ""), data))
    if fmt == "pprof":
        return decode_pprof(data)
    raise PayloadError(f"profile format {fmt!r} is not supported (pprof, folded lines, or lines)")


def _start(labels: dict[str, str], profile: DecodedProfile, bounds: Bounds | None) -> int:
    """When the profile began: /ingest's `from`, else the pprof's time, else now."""
    given = labels.get(FROM_LABEL)
    if given:
        return int(given) * 10**9
    if profile.time_ns:
        return profile.time_ns
    return bounds.now if bounds is not None else 0


def normalise_otlp_profiles(request: Any, cost: CostModel) -> Batch:
    """OTLP ExportProfilesServiceRequest: the service from the resource's service.name, the profile
    type from the sample type (`process_cpu` for cpu, else the type's name)."""
    batch = Batch()
    rows = ProfileRows(batch)
    bounds = cost.window.now() if cost.window is not None else None
    dictionary = request.dictionary
    for resource_profiles in request.resource_profiles:
        service = "unknown_service"
        for attribute in resource_profiles.resource.attributes:
            if attribute.key == "service.name" and attribute.value.string_value:
                service = attribute.value.string_value
        for scope_profiles in resource_profiles.scope_profiles:
            for profile in scope_profiles.profiles:
                decoded = decode_otlp_profile(profile, dictionary)
                time_ns = decoded.time_ns or (bounds.now if bounds is not None else 0)
                problem = bounds.check(time_ns, f"profile of {service!r}: start time") if bounds else ""
                if problem:
                    batch.reject(problem)
                    continue
                strings = dictionary.string_table
                index = profile.sample_type.type_strindex
                kind = strings[index] if 0 <= index < len(strings) else ""
                rows.add(decoded, service, "process_cpu" if kind in ("", "cpu", "samples") else kind, time_ns)
                batch.accepted += 1
    return batch


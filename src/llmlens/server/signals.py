"""The registry of signals the server receives: one row each, read by the HTTP routes, the gRPC
services, the decoder and the ingest workers. A new signal is one more row."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from llmlens.server.decode import spans as span_decoder
from llmlens.server.decode.messages import decode_request
from llmlens.server.decode.proto import pyroscope_push_pb2
from llmlens.server.normalise import (
    CostModel,
    normalise_logs,
    normalise_metrics,
    normalise_spans,
    normalise_traces,
)
from llmlens.server.normalise.profiles import normalise_otlp_profiles, normalise_push
from llmlens.server.store.batch import Batch

BodyKind = Literal["protobuf", "json"]


@dataclass(frozen=True)
class Signal:
    name: str
    request_type: type[Message]
    response_type: type[Message]
    rejected_field: str  # the partial_success field counting what was refused
    grpc_service: str | None  # None: not served over gRPC
    normalise: Callable[[Message, CostModel], Batch]
    # Reads a protobuf body straight into rows, or returns None to leave it to the generic path.
    fast_path: Callable[[bytes, CostModel], Batch | None] | None = None
    # Rows without ids of their own: a resent request is recognised by the digest of its body.
    dedup_by_request: bool = False
    # The OTLP/HTTP path: /v1/<name> when "", none when None (the signal has routes of its own).
    http_path: str | None = ""

    @property
    def otlp_path(self) -> str | None:
        return f"/v1/{self.name}" if self.http_path == "" else self.http_path

    def build(self, body: bytes, kind: BodyKind, cost: CostModel) -> Batch:
        """Decode and normalise one request body (not yet frozen)."""
        batch = None
        if kind == "protobuf" and self.fast_path is not None:
            batch = self.fast_path(body, cost)
        if batch is None:
            batch = self.normalise(decode_request(self.request_type, body, kind), cost)
        if self.dedup_by_request:
            batch.request_digest = request_digest(self.name, kind, body)
        return batch


def request_digest(signal: str, kind: BodyKind, body: bytes) -> str:
    """What identifies a resent request: the same signal, encoding and bytes."""
    return hashlib.blake2b(body, digest_size=16, person=f"{signal}:{kind}".encode()[:16]).hexdigest()


def _spans_fast_path(body: bytes, cost: CostModel) -> Batch | None:
    resources = span_decoder.decode(body)  # the C reader; None leaves the body to protobuf
    return None if resources is None else normalise_spans(resources, cost)


SIGNALS: dict[str, Signal] = {s.name: s for s in (
    Signal("traces", trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse,
           "rejected_spans", "opentelemetry.proto.collector.trace.v1.TraceService", normalise_traces,
           _spans_fast_path),
    Signal("logs", logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse,
           "rejected_log_records", "opentelemetry.proto.collector.logs.v1.LogsService", normalise_logs,
           dedup_by_request=True),
    Signal("metrics", metrics_service_pb2.ExportMetricsServiceRequest,
           metrics_service_pb2.ExportMetricsServiceResponse, "rejected_data_points",
           "opentelemetry.proto.collector.metrics.v1.MetricsService", normalise_metrics,
           dedup_by_request=True),
    # OTLP profiles: a development signal; the messages of opentelemetry-proto as pinned (v1.10.0's).
    Signal("profiles", profiles_service_pb2.ExportProfilesServiceRequest,
           profiles_service_pb2.ExportProfilesServiceResponse, "rejected_profiles",
           "opentelemetry.proto.collector.profiles.v1development.ProfilesService", normalise_otlp_profiles,
           dedup_by_request=True, http_path="/v1development/profiles"),
    # Pyroscope's push API and /ingest (receive/profiles.py wraps an /ingest body in a PushRequest).
    Signal("pyroscope", pyroscope_push_pb2.PushRequest, pyroscope_push_pb2.PushResponse, "", None,
           normalise_push, dedup_by_request=True, http_path=None),
)}

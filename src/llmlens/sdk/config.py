"""The SDK's settings: init() arguments, then environment variables, then defaults.

A bad environment value never breaks the host app: it is reported with a warning and the
default is used instead.

Environment variables read here:
  OTEL_SERVICE_NAME                       service name
  OTEL_EXPORTER_OTLP_ENDPOINT             base URL (``/v1/traces`` etc. are appended for HTTP)
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT      full URL for traces (likewise _METRICS_ and _LOGS_)
  OTEL_EXPORTER_OTLP_PROTOCOL             ``http/protobuf`` (default) or ``grpc``
  OTEL_TRACES_SAMPLER_ARG                 sampling ratio when LLMLENS_SAMPLE_RATIO is unset
  LLMLENS_APP, LLMLENS_DEPARTMENT         app and department of this service
  LLMLENS_API_KEY                         bearer token for an llmlens server that requires one
  LLMLENS_SAMPLE_RATIO                    share of traces exported, 0..1 (metrics count all)
  LLMLENS_CAPTURE_CONTENT                 record prompts and responses (default false)
  LLMLENS_MASK_PII                        mask PII before export (default true)
  LLMLENS_PII_MODE                        mask | hash | drop
  LLMLENS_METRICS_EXPORT_INTERVAL_MS      OTLP metrics export interval (default 30000)
  LLMLENS_PROFILING                       continuous profiling on (default false)
  LLMLENS_PROFILING_MODE                  cpu (on-CPU stacks, default) | wall
  LLMLENS_PROFILING_HZ                    samples a second per thread (default 100)
  LLMLENS_PROFILING_EXPORT_INTERVAL_MS    how often a profile is pushed (default 10000)
  LLMLENS_PROFILING_ENDPOINT              base URL profiles are pushed to (`/ingest` is appended);
                                          default: the OTLP HTTP base URL
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
PROTOCOLS = ("http/protobuf", "grpc")
PII_MODES = ("mask", "hash", "drop")
PROFILING_MODES = ("cpu", "wall")
MAX_PROFILING_HZ = 1000
SIGNAL_PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}
T = TypeVar("T")


class ConfigWarning(UserWarning):
    """A setting had a value llmlens cannot use; the default is used instead."""


@dataclass(frozen=True)
class SdkConfig:
    service_name: str = "unknown_service"
    app: str = ""
    department: str = ""
    endpoint: str | None = None  # OTLP base URL; None = from env or the default
    protocol: str = "http/protobuf"
    headers: Mapping[str, str] = field(default_factory=dict)
    sample_ratio: float = 1.0
    capture_content: bool = False
    mask_pii: bool = True
    pii_mode: str = "mask"
    pii_kinds: Sequence[str] | None = None
    pii_patterns: Mapping[str, str] | None = None
    instrument_openai: bool = True
    instrument_http: bool = True  # httpx, requests and FastAPI, for trace context and baggage
    export_traces: bool = True
    export_metrics: bool = True
    metrics_export_interval_ms: int = 30_000
    profiling: bool = False
    profiling_mode: str = "cpu"
    profiling_hz: int = 100
    profiling_export_interval_ms: int = 10_000
    resource_attributes: Mapping[str, Any] = field(default_factory=dict)

    def signal_endpoint(self, signal: str) -> str:
        """Where to send one signal (traces, metrics, logs) under this config."""
        specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        if self.endpoint is None and specific:
            return specific
        base = self.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or (
            DEFAULT_GRPC_ENDPOINT if self.protocol == "grpc" else DEFAULT_HTTP_ENDPOINT
        )
        if self.protocol == "grpc":
            return base
        return base.rstrip("/") + SIGNAL_PATHS[signal]

    def profiles_endpoint(self) -> str:
        """Base URL profiles are pushed to: the server's HTTP address, where it serves OTLP/HTTP too.

        With OTLP over gRPC the configured endpoint is the gRPC port; the HTTP one is then assumed
        at the same host on 4318 (the server's default) unless LLMLENS_PROFILING_ENDPOINT says.
        """
        explicit = os.environ.get("LLMLENS_PROFILING_ENDPOINT", "").strip()
        if explicit:
            return explicit
        base = self.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_HTTP_ENDPOINT
        if self.protocol == "grpc":
            parts = urlsplit(base if "//" in base else f"http://{base}")
            return f"{parts.scheme}://{parts.hostname or 'localhost'}:4318"
        return base


def _warn(name: str, value: str, default: Any, why: str) -> None:
    warnings.warn(f"llmlens: ignoring {name}={value!r} ({why}); using {default!r}", ConfigWarning, stacklevel=4)


def _env(name: str, parse: Callable[[str], T], default: T, why: str) -> T:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except (ValueError, TypeError):
        _warn(name, raw, default, why)
        return default


def parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def parse_ratio(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError(raw)
    return value


def _choice(options: Sequence[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in options:
            raise ValueError(raw)
        return raw.lower()

    return parse


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


def _hz(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= MAX_PROFILING_HZ:
        raise ValueError(raw)
    return value


def _checked(name: str, value: T, valid: Callable[[T], bool], default: T) -> T:
    """An argument that fails its check warns and falls back, like an env value."""
    if valid(value):
        return value
    _warn(name, str(value), default, "invalid argument")
    return default


def resolve_config(
    *,
    service_name: str | None = None,
    app: str | None = None,
    department: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    api_key: str | None = None,
    headers: Mapping[str, str] | None = None,
    sample_ratio: float | None = None,
    capture_content: bool | None = None,
    mask_pii: bool | None = None,
    pii_mode: str | None = None,
    pii_kinds: Sequence[str] | None = None,
    pii_patterns: Mapping[str, str] | None = None,
    instrument_openai: bool = True,
    instrument_http: bool = True,
    export_traces: bool = True,
    export_metrics: bool = True,
    metrics_export_interval_ms: int | None = None,
    profiling: bool | None = None,
    profiling_mode: str | None = None,
    profiling_hz: int | None = None,
    profiling_export_interval_ms: int | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
) -> SdkConfig:
    """Merge init() arguments with the environment; explicit arguments win."""
    d = SdkConfig()
    env_ratio = _env("OTEL_TRACES_SAMPLER_ARG", parse_ratio, d.sample_ratio, "not a ratio in [0, 1]")
    if sample_ratio is None:
        sample_ratio = _env("LLMLENS_SAMPLE_RATIO", parse_ratio, env_ratio, "not a ratio in [0, 1]")
    else:
        sample_ratio = _checked("sample_ratio", float(sample_ratio), lambda v: 0.0 <= v <= 1.0, d.sample_ratio)
    if protocol is None:
        protocol = _env("OTEL_EXPORTER_OTLP_PROTOCOL", _choice(PROTOCOLS), d.protocol, "unknown protocol")
    else:
        protocol = _checked("protocol", protocol.lower(), lambda v: v in PROTOCOLS, d.protocol)
    if pii_mode is None:
        pii_mode = _env("LLMLENS_PII_MODE", _choice(PII_MODES), d.pii_mode, "unknown mode")
    else:
        pii_mode = _checked("pii_mode", pii_mode.lower(), lambda v: v in PII_MODES, d.pii_mode)
    all_headers = dict(headers or {})
    api_key = api_key or os.environ.get("LLMLENS_API_KEY")
    if api_key:
        all_headers.setdefault("authorization", f"Bearer {api_key}")
    interval = metrics_export_interval_ms or _env(
        "LLMLENS_METRICS_EXPORT_INTERVAL_MS", _positive_int, d.metrics_export_interval_ms, "not a positive integer"
    )
    if profiling_mode is None:
        profiling_mode = _env("LLMLENS_PROFILING_MODE", _choice(PROFILING_MODES), d.profiling_mode, "unknown mode")
    else:
        profiling_mode = _checked("profiling_mode", profiling_mode.lower(), lambda v: v in PROFILING_MODES,
                                  d.profiling_mode)
    if profiling_hz is None:
        profiling_hz = _env("LLMLENS_PROFILING_HZ", _hz, d.profiling_hz, f"not a whole number in 1..{MAX_PROFILING_HZ}")
    else:
        profiling_hz = _checked("profiling_hz", profiling_hz, lambda v: isinstance(v, int) and 1 <= v <= MAX_PROFILING_HZ,
                                d.profiling_hz)
    profile_interval = profiling_export_interval_ms or _env(
        "LLMLENS_PROFILING_EXPORT_INTERVAL_MS", _positive_int, d.profiling_export_interval_ms, "not a positive integer")
    return SdkConfig(
        service_name=service_name or os.environ.get("OTEL_SERVICE_NAME") or d.service_name,
        app=app if app is not None else os.environ.get("LLMLENS_APP", ""),
        department=department if department is not None else os.environ.get("LLMLENS_DEPARTMENT", ""),
        endpoint=endpoint,
        protocol=protocol,
        headers=all_headers,
        sample_ratio=sample_ratio,
        capture_content=capture_content if capture_content is not None else _env(
            "LLMLENS_CAPTURE_CONTENT", parse_bool, d.capture_content, "not a boolean"),
        mask_pii=mask_pii if mask_pii is not None else _env("LLMLENS_MASK_PII", parse_bool, d.mask_pii, "not a boolean"),
        pii_mode=pii_mode,
        pii_kinds=pii_kinds,
        pii_patterns=pii_patterns,
        instrument_openai=instrument_openai,
        instrument_http=instrument_http,
        export_traces=export_traces,
        export_metrics=export_metrics,
        metrics_export_interval_ms=interval,
        profiling=profiling if profiling is not None else _env("LLMLENS_PROFILING", parse_bool, d.profiling,
                                                                "not a boolean"),
        profiling_mode=profiling_mode,
        profiling_hz=profiling_hz,
        profiling_export_interval_ms=profile_interval,
        resource_attributes=dict(resource_attributes or {}),
    )

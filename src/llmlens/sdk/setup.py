"""init() and shutdown(): build the telemetry pipeline, and take it down with a flush.

init() never raises: a failure is reported as a warning and leaves the SDK a no-op. If the
app already configured an OpenTelemetry SDK tracer provider, init() adds its processors to
that provider instead of replacing it (the app's sampler then applies). A second init()
while one is active is ignored; after shutdown() init() may run again (tests rely on this).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from llmlens import __version__, semconv
from llmlens.sdk import runtime
from llmlens.sdk.aggregates import aggregates
from llmlens.sdk.config import SdkConfig, resolve_config
from llmlens.sdk.llm_metrics import LlmMetrics
from llmlens.sdk.processors import ContextAttributesProcessor, LlmMetricsProcessor
from llmlens.sdk.prom_metrics import register_collector
from llmlens.sdk.sampling import LlmSampler

log = logging.getLogger("llmlens.sdk")
SHUTDOWN_TIMEOUT_MS = 5_000


@dataclass
class _Installed:
    """What this init() put in place, so shutdown() takes down exactly that."""

    tracer_provider: Any
    owns_tracer_provider: bool
    batch_processor: Any = None
    metrics_processor: Any = None
    metrics_exporter: Any = None
    instrumentors: list[Any] = field(default_factory=list)


_lock = threading.RLock()
_installed: _Installed | None = None
# Providers llmlens set as OTel globals; only these may be replaced on a later init().
_our_globals: dict[str, Any] = {}


def init(
    service_name: str | None = None,
    *,
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
) -> None:
    """Turn on llmlens telemetry for this process (see llmlens.sdk.config for the environment)."""
    global _installed
    with _lock:
        if runtime.active is not None:
            log.debug("llmlens.init() called again while active; ignored")
            return
        try:
            config = resolve_config(
                service_name=service_name, app=app, department=department, endpoint=endpoint, protocol=protocol,
                api_key=api_key, headers=headers, sample_ratio=sample_ratio, capture_content=capture_content,
                mask_pii=mask_pii, pii_mode=pii_mode, pii_kinds=pii_kinds, pii_patterns=pii_patterns,
                instrument_openai=instrument_openai, instrument_http=instrument_http, export_traces=export_traces,
                export_metrics=export_metrics, metrics_export_interval_ms=metrics_export_interval_ms,
                profiling=profiling, profiling_mode=profiling_mode, profiling_hz=profiling_hz,
                profiling_export_interval_ms=profiling_export_interval_ms, resource_attributes=resource_attributes,
            )
            _installed = _build(config)
        except Exception as exc:  # noqa: BLE001 - the host app must keep running without telemetry
            warnings.warn(f"llmlens.init() failed, telemetry is off: {exc!r}", RuntimeWarning, stacklevel=2)
            runtime.active = None
            _installed = None


def _resource(config: SdkConfig) -> Resource:
    attrs: dict[str, Any] = {"service.name": config.service_name}
    if config.app:
        attrs[semconv.LLMLENS_APP] = config.app
    if config.department:
        attrs[semconv.LLMLENS_DEPARTMENT] = config.department
    attrs.update(config.resource_attributes)
    return Resource.create(attrs)  # also merges OTEL_RESOURCE_ATTRIBUTES


def _redactor(config: SdkConfig) -> Any:
    if not config.mask_pii:
        return None
    from llmlens.pii import Redactor

    return Redactor(mode=config.pii_mode, kinds=config.pii_kinds, custom_patterns=config.pii_patterns)


def _prices() -> Any:
    try:
        from llmlens.pricing import PriceBook

        return PriceBook.default()
    except Exception as exc:  # noqa: BLE001 - no prices means no cost, not no telemetry
        warnings.warn(f"llmlens: prices unavailable, cost will not be computed: {exc!r}", RuntimeWarning,
                      stacklevel=3)
        return None


def _set_global_tracer_provider(provider: Any) -> None:
    """Make `provider` the OTel global (the caller checked the app has not set its own)."""
    if trace.get_tracer_provider() is _our_globals.get("trace"):
        # Our own provider from an earlier init(): OTel allows one set per process, so re-arm it.
        trace._TRACER_PROVIDER_SET_ONCE._done = False  # type: ignore[attr-defined]
        trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    trace.set_tracer_provider(provider)
    _our_globals["trace"] = provider


def _build(config: SdkConfig) -> _Installed:
    resource = _resource(config)
    existing = trace.get_tracer_provider()
    if isinstance(existing, TracerProvider) and existing is not _our_globals.get("trace"):
        provider, owns = existing, False
    else:
        provider, owns = TracerProvider(resource=resource, sampler=LlmSampler(config.sample_ratio)), True
    installed = _Installed(tracer_provider=provider, owns_tracer_provider=owns)

    agg = aggregates()
    register_collector()
    if config.export_metrics:
        from llmlens.sdk.exporters import metric_exporter
        from llmlens.sdk.otel_metrics import OtlpMetricsExporter

        installed.metrics_exporter = OtlpMetricsExporter(agg, metric_exporter(config), resource,
                                                         config.metrics_export_interval_ms)

    redactor = _redactor(config)
    rt = runtime.Runtime(
        config=config,
        tracer=provider.get_tracer(runtime.SCOPE, __version__),
        metrics=LlmMetrics(agg),
        prices=_prices(),
        redactor=redactor,
        resource=resource,
    )
    provider.add_span_processor(ContextAttributesProcessor())
    installed.metrics_processor = LlmMetricsProcessor(rt)
    provider.add_span_processor(installed.metrics_processor)
    if config.export_traces:
        from llmlens.sdk.exporters import span_exporter
        from llmlens.sdk.masking import MaskingSpanExporter

        exporter = span_exporter(config)
        if redactor is not None:
            exporter = MaskingSpanExporter(exporter, redactor)
        installed.batch_processor = BatchSpanProcessor(exporter)
        provider.add_span_processor(installed.batch_processor)
    if owns:
        _set_global_tracer_provider(provider)

    if config.instrument_openai:
        from llmlens.sdk.openai_instrumentation import instrument_openai

        instrument_openai()
    if config.instrument_http:
        rt.http_instrumented = True
        installed.instrumentors = _instrument_http(provider)
    if config.profiling:
        _start_profiler(config, provider, rt)
    runtime.active = rt
    return installed


def _start_profiler(config: SdkConfig, provider: Any, rt: runtime.Runtime) -> None:
    """The continuous profiler: its span tracker on the provider, its threads started, its stop on shutdown()."""
    from llmlens.sdk.exporters import EXPORT_TIMEOUT_S
    from llmlens.sdk.profile_export import ProfilePusher
    from llmlens.sdk.profile_spans import SpanTracker
    from llmlens.sdk.profiler import Profiler, ProfilerSettings
    from llmlens.sdk.span_export import parse_headers
    from llmlens.sdk.stack_sampler import cpu_mode_supported

    mode = config.profiling_mode
    if mode == "cpu" and not cpu_mode_supported():
        warnings.warn("llmlens: on-CPU profiling needs Linux's per-thread CPU clocks; profiling wall-clock time",
                      RuntimeWarning, stacklevel=4)
        mode = "wall"
    headers = {**parse_headers(os.environ.get("OTEL_EXPORTER_OTLP_HEADERS")), **config.headers}
    pusher = ProfilePusher(config.profiles_endpoint(), config.service_name, headers, config.profiling_hz, mode,
                           EXPORT_TIMEOUT_S)
    spans = SpanTracker()
    provider.add_span_processor(spans)
    profiler = Profiler(ProfilerSettings(config.profiling_hz, mode, config.profiling_export_interval_ms / 1000),
                        pusher, spans)
    profiler.start()
    rt.profiler = profiler
    rt.closers.insert(0, profiler.stop)


# Module whose import triggers an instrumentation -> (instrumentation module, instrumentor class).
HTTP_INSTRUMENTATIONS = {
    "httpx": ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
    "requests": ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
    "fastapi": ("opentelemetry.instrumentation.fastapi", "FastAPIInstrumentor"),
}
_hooks_registered = False


def _instrument_http(provider: Any) -> list[Any]:
    """W3C trace context + baggage over httpx, requests and FastAPI, where those instrumentations exist.

    Each is applied when its library is imported (now, if it already is): init() does not pay
    for importing FastAPI into an app that never uses it.
    """
    global _hooks_registered
    done: list[Any] = []

    def hook_for(library: str) -> Any:
        def hook(_module: Any) -> None:
            with _lock:
                if _installed is None or runtime.active is None or not runtime.active.config.instrument_http:
                    return
                instrumentor = _instrument_one(library, _installed.tracer_provider)
                if instrumentor is not None:
                    _installed.instrumentors.append(instrumentor)

        return hook

    for library in HTTP_INSTRUMENTATIONS:
        if library in sys.modules:
            instrumentor = _instrument_one(library, provider)
            if instrumentor is not None:
                done.append(instrumentor)
    if not _hooks_registered:
        import wrapt

        for library in HTTP_INSTRUMENTATIONS:
            if library not in sys.modules:
                wrapt.register_post_import_hook(hook_for(library), library)
        _hooks_registered = True
    return done


def _instrument_one(library: str, provider: Any) -> Any:
    module, name = HTTP_INSTRUMENTATIONS[library]
    try:
        instrumentor = getattr(importlib.import_module(module), name)()
    except ImportError:
        return None
    if instrumentor.is_instrumented_by_opentelemetry:
        return None  # the app instrumented it itself
    try:
        instrumentor.instrument(tracer_provider=provider)
    except Exception as exc:  # noqa: BLE001 - e.g. an unsupported version of the library
        log.debug("llmlens: %s not instrumented: %r", name, exc)
        return None
    return instrumentor


def shutdown(timeout_ms: int = SHUTDOWN_TIMEOUT_MS) -> None:
    """Flush and stop everything init() started; the SDK is a no-op afterwards. Never raises."""
    global _installed
    with _lock:
        installed, _installed = _installed, None
        rt, runtime.active = runtime.active, None
        if installed is None:
            return
        for instrumentor in installed.instrumentors:
            _quietly(instrumentor.uninstrument)
        if installed.metrics_processor is not None:
            installed.metrics_processor.disable()
        if installed.owns_tracer_provider:
            _quietly(lambda: installed.tracer_provider.force_flush(timeout_ms))
            _quietly(installed.tracer_provider.shutdown)
        elif installed.batch_processor is not None:
            _quietly(installed.batch_processor.shutdown)
        for closer in rt.closers if rt is not None else ():
            _quietly(lambda closer=closer: closer(timeout_ms))
        if installed.metrics_exporter is not None:
            _quietly(installed.metrics_exporter.shutdown)


def _quietly(fn: Any) -> None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - shutdown must finish whatever one part does
        log.warning("llmlens: error during shutdown: %r", exc)

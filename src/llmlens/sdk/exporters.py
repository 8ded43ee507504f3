"""OTLP exporters for traces, metrics and logs, over HTTP/protobuf (default) or gRPC.

Spans over HTTP use llmlens's own exporter (span_export: the OTel encoder was the largest
cost of an instrumented call); everything else uses the OpenTelemetry exporters.
"""

from __future__ import annotations

from typing import Any

from llmlens.sdk.config import SdkConfig

EXPORT_TIMEOUT_S = 10.0


def _grpc_args(config: SdkConfig, signal: str) -> dict[str, Any]:
    endpoint = config.signal_endpoint(signal)
    return {"endpoint": endpoint, "insecure": endpoint.startswith("http://"),
            "headers": tuple(config.headers.items()) or None, "timeout": EXPORT_TIMEOUT_S}


def span_exporter(config: SdkConfig) -> Any:
    if config.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(**_grpc_args(config, "traces"))
    from llmlens.sdk.span_export import OtlpHttpSpanExporter

    return OtlpHttpSpanExporter(config.signal_endpoint("traces"), headers=config.headers, timeout_s=EXPORT_TIMEOUT_S)


def metric_exporter(config: SdkConfig) -> Any:
    if config.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(**_grpc_args(config, "metrics"))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter(endpoint=config.signal_endpoint("metrics"), headers=dict(config.headers) or None,
                              timeout=EXPORT_TIMEOUT_S)


def log_exporter(config: SdkConfig) -> Any:
    if config.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter(**_grpc_args(config, "logs"))
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter

    return HttpLogExporter(endpoint=config.signal_endpoint("logs"), headers=dict(config.headers) or None,
                           timeout=EXPORT_TIMEOUT_S)

"""Never break the host app: no-op before init, unreachable endpoints, bad settings, an app's own OTel setup."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import pytest

import llmlens
from llmlens.sdk.config import ConfigWarning, resolve_config
from tests.sdk.conftest import free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_public_api_names():
    assert llmlens.__version__ == "0.1.0"
    for name in ("init", "shutdown", "observe", "span", "context", "score", "configure_logging",
                 "start_metrics_server", "metrics_asgi_app"):
        assert callable(getattr(llmlens, name)), name


def test_import_is_cheap():
    code = "import sys, llmlens; print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'openai', 'llmlens.sdk'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_unreachable_endpoint_never_breaks_calls(client):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    llmlens.init(service_name="offline", endpoint=closed)
    try:
        for _ in range(3):
            assert client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    finally:
        llmlens.shutdown(timeout_ms=1000)
    assert llmlens.sdk.runtime.active is None


def test_bad_environment_values_warn_and_fall_back(monkeypatch):
    monkeypatch.setenv("LLMLENS_SAMPLE_RATIO", "lots")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
    monkeypatch.setenv("LLMLENS_CAPTURE_CONTENT", "maybe")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = resolve_config()
    assert config.sample_ratio == 1.0 and config.protocol == "http/protobuf" and config.capture_content is False
    assert len([w for w in caught if issubclass(w.category, ConfigWarning)]) == 3


def test_endpoint_precedence(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert resolve_config().signal_endpoint("traces") == "http://collector:4318/v1/traces"
    assert resolve_config(endpoint="http://arg:1").signal_endpoint("logs") == "http://arg:1/v1/logs"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:9/custom")
    assert resolve_config().signal_endpoint("traces") == "http://traces:9/custom"
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    assert resolve_config().signal_endpoint("metrics") == "http://localhost:4318/v1/metrics"
    assert resolve_config(protocol="grpc").signal_endpoint("traces") == "http://localhost:4317"


def test_init_is_idempotent_and_reinit_after_shutdown_works(sdk, receiver, client):
    sdk(service_name="first")
    sdk(service_name="ignored")  # second init while active: no-op
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}])
    llmlens.shutdown()
    sdk(service_name="second")
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "b"}])
    llmlens.shutdown()
    services = sorted(s.resource["service.name"] for s in receiver.spans_named("chat"))
    assert services == ["first", "second"]


def test_existing_tracer_provider_is_extended_not_replaced(receiver):
    """In a fresh process: the app's own provider and exporter keep working next to llmlens."""
    script = textwrap.dedent(f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import llmlens
        mine = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(mine))
        trace.set_tracer_provider(provider)
        llmlens.init(service_name="shared", endpoint="{receiver.endpoint}")
        assert trace.get_tracer_provider() is provider
        with llmlens.span("step"):
            pass
        llmlens.shutdown()
        print([s.name for s in mine.get_finished_spans()])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['step']"
    assert [s.name for s in receiver.spans] == ["step"]


@pytest.mark.parametrize("mode, expected", [("mask", "<EMAIL>"), ("drop", None)])
def test_pii_modes_on_span_attributes(sdk, receiver, mode, expected):
    sdk(pii_mode=mode)
    with llmlens.span("s", attributes={"note": "write to bob@example.org", "count": 3}):
        pass
    llmlens.shutdown()
    attrs = receiver.spans_named("s")[0].attributes
    assert attrs["count"] == 3
    if expected is None:
        assert "note" not in attrs
    else:
        assert attrs["note"] == f"write to {expected}"

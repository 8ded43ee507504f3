"""Continuous profiling: real processes burning CPU in known functions inside spans, pushing pprof
profiles to a real HTTP receiver (tests/sdk/profile_receiver.py) that decodes them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from opentelemetry import trace

import llmlens
from llmlens.sdk.config import resolve_config
from tests.sdk.conftest import free_port
from tests.sdk.profile_receiver import ProfileReceiver, ProfileSample, start_profile_receiver


@pytest.fixture
def profiles() -> Iterator[ProfileReceiver]:
    receiver = start_profile_receiver()
    yield receiver
    receiver.server.shutdown()


def run_app(endpoint: str, scenario: str, mode: str = "cpu", seconds: float = 2.0) -> tuple[dict, str]:
    out = subprocess.run([sys.executable, "-m", "tests.sdk.profiled_app", endpoint, scenario, "--mode", mode,
                          "--seconds", str(seconds)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def app_samples(receiver: ProfileReceiver) -> list[ProfileSample]:
    """Samples of the app's own threads (the profiler's export thread is profiled too)."""
    return [s for s in receiver.samples() if not s.labels["thread_name"].startswith("llmlens")]


def total(samples: list[ProfileSample]) -> int:
    return sum(s.value for s in samples)


def in_function(samples: list[ProfileSample], function: str) -> list[ProfileSample]:
    return [s for s in samples if any(frame.startswith(f"{function} (") for frame in s.frames)]


def test_cpu_samples_land_in_the_burning_function_with_its_span(profiles):
    result, _ = run_app(profiles.endpoint, "threads")
    assert result["llmlens_threads_after_shutdown"] == []
    push = profiles.pushes[0]
    assert push.params["name"] == "profiled-app.cpu{service_name=profiled-app}"
    assert (push.params["format"], push.params["spyName"], push.params["sampleRate"]) == ("pprof", "llmlens", "100")
    assert int(push.params["from"]) <= int(push.params["until"]) <= time.time() + 1
    assert (push.sample_type, push.period_type, push.period) == (("cpu", "samples"), ("cpu", "nanoseconds"), 10_000_000)

    samples = app_samples(profiles)
    burning = in_function(samples, "burn_in_span")
    assert total(burning) >= 20, samples  # 2 s of CPU at 100 Hz, on a loaded machine
    assert total(burning) >= 0.8 * total(samples)
    for sample in burning:
        assert sample.labels["span_id"] == result["burn"]["span_id"]
        assert sample.labels["trace_id"] == result["burn"]["trace_id"]
        assert sample.labels["span_name"] == "burn"
        assert sample.labels["thread_name"] == "MainThread"
        # root first, the leaf is the pure-Python loop; file names as imported, line of the def
        assert sample.frames[-1].startswith("work (tests/sdk/profiled_app.py:")
    # Threads waiting on an event or sleeping use no CPU: never sampled in on-CPU mode.
    threads = {s.labels["thread_name"] for s in samples}
    assert "idle-waiter" not in threads and "sleeper" not in threads, threads


def test_wall_mode_samples_waiting_threads(profiles):
    result, _ = run_app(profiles.endpoint, "threads", mode="wall")
    push = profiles.pushes[0]
    assert push.params["name"] == "profiled-app.wall{service_name=profiled-app}"
    assert push.sample_type == ("wall", "samples")
    samples = app_samples(profiles)
    waiting = [s for s in samples if s.labels["thread_name"] == "idle-waiter"]
    burning = in_function(samples, "burn_in_span")
    # Wall time is charged whether a thread runs or waits: about as much for both (2 s each).
    assert total(waiting) >= 0.5 * total(burning) > 0
    assert all("span_id" not in s.labels for s in waiting)
    assert {s.labels["span_id"] for s in burning} == {result["burn"]["span_id"]}


def test_asyncio_tasks_are_tagged_with_their_own_spans(profiles):
    result, _ = run_app(profiles.endpoint, "asyncio")
    samples = app_samples(profiles)
    for task, function in (("task-a", "burn_task_a"), ("task-b", "burn_task_b")):
        burning = in_function(samples, function)
        assert total(burning) >= 10
        right = [s for s in burning if s.labels.get("span_id") == result[task]["span_id"]]
        assert total(right) >= 0.9 * total(burning), (task, burning)
    # A child task inherits its creator's context: Python 3.12+ lets the sampler read it; before,
    # only spans a task started itself are seen (docs/profiling.md says so).
    child = in_function(samples, "burn_in_child")
    assert total(child) >= 5
    inherited = [s for s in child if s.labels.get("span_id") == result["parent"]["span_id"]]
    if sys.version_info >= (3, 12):
        assert total(inherited) >= 0.9 * total(child), child
    else:
        assert inherited == [] and all("span_id" not in s.labels for s in child), child


def test_a_forked_child_profiles_on_its_own(profiles):
    """A pre-fork server's worker: the profiler restarts in the child, which pushes its own samples."""
    result, _ = run_app(profiles.endpoint, "fork")
    assert result["child_exit_status"] == 0 and result["child_pid"] != result["parent_pid"]
    assert result["child_llmlens_threads"] == ["llmlens-profile-export", "llmlens-profiler"]
    samples = app_samples(profiles)
    for function, span in (("burn_in_forked_child", "child"), ("burn_in_parent", "parent")):
        burning = in_function(samples, function)
        assert total(burning) >= 20, (function, samples)  # 2 s of CPU each at 100 Hz, on a loaded machine
        assert {s.labels.get("span_id") for s in burning} == {result[span]["span_id"]}, burning
    # Each push is one process's: the child's never carry the parent's samples, nor the other way.
    for push in profiles.pushes:
        functions = {frame.split(" (")[0] for s in push.samples for frame in s.frames}
        assert not {"burn_in_forked_child", "burn_in_parent"} <= functions, functions


@pytest.mark.parametrize("failure", ["server answers 500", "nothing listening"])
def test_a_failing_export_is_dropped_with_one_warning(profiles, failure):
    if failure == "server answers 500":
        profiles.status = 500
        endpoint = profiles.endpoint
    else:
        endpoint = f"http://127.0.0.1:{free_port()}"
    result, stderr = run_app(endpoint, "threads", seconds=2.5)  # 5+ pushes at 0.5 s
    assert result["rounds"] > 0 and result["llmlens_threads_after_shutdown"] == []
    warnings = [line for line in stderr.splitlines() if "profile export" in line]
    assert len(warnings) == 1, stderr
    assert warnings[0].startswith("WARNING llmlens.sdk")
    assert profiles.pushes == []


def test_shutdown_stops_the_profiler_and_pushes_the_last_profile(profiles):
    llmlens.init(service_name="in-process", endpoint=profiles.endpoint, profiling=True,
                 profiling_export_interval_ms=600_000, export_traces=False, export_metrics=False,
                 instrument_http=False, instrument_openai=False)
    try:
        names = {t.name for t in threading.enumerate()}
        assert {"llmlens-profiler", "llmlens-profile-export"} <= names
        with trace.get_tracer("test").start_as_current_span("spin"):
            deadline = time.thread_time() + 0.3
            while time.thread_time() < deadline:
                pass
        assert profiles.pushes == []  # the export interval has not come round
    finally:
        llmlens.shutdown()
    assert not {t.name for t in threading.enumerate()} & {"llmlens-profiler", "llmlens-profile-export"}
    assert len(profiles.pushes) == 1  # pushed by shutdown()
    assert any(s.labels.get("span_name") == "spin" for s in profiles.samples())


def test_profiling_is_off_unless_asked(profiles, monkeypatch):
    monkeypatch.delenv("LLMLENS_PROFILING", raising=False)
    llmlens.init(service_name="quiet", endpoint=profiles.endpoint, export_traces=False, export_metrics=False)
    try:
        assert llmlens.sdk.runtime.active.profiler is None
        assert not any(t.name.startswith("llmlens-prof") for t in threading.enumerate())
    finally:
        llmlens.shutdown()


def test_profiling_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("LLMLENS_PROFILING", "true")
    monkeypatch.setenv("LLMLENS_PROFILING_MODE", "WALL")
    monkeypatch.setenv("LLMLENS_PROFILING_HZ", "250")
    monkeypatch.setenv("LLMLENS_PROFILING_EXPORT_INTERVAL_MS", "2500")
    config = resolve_config()
    assert (config.profiling, config.profiling_mode, config.profiling_hz, config.profiling_export_interval_ms) == (
        True, "wall", 250, 2500)
    assert resolve_config(profiling=False).profiling is False  # an argument wins over the environment


@pytest.mark.parametrize(("name", "value"), [("LLMLENS_PROFILING_HZ", "0"), ("LLMLENS_PROFILING_HZ", "5000"),
                                             ("LLMLENS_PROFILING_MODE", "gpu"), ("LLMLENS_PROFILING", "maybe")])
def test_bad_profiling_settings_warn_and_keep_the_default(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.warns(UserWarning, match=name):
        config = resolve_config()
    assert (config.profiling, config.profiling_mode, config.profiling_hz) == (False, "cpu", 100)


def test_profiles_go_to_the_servers_http_address(monkeypatch):
    monkeypatch.delenv("LLMLENS_PROFILING_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert resolve_config(endpoint="http://collector:4318").profiles_endpoint() == "http://collector:4318"
    assert resolve_config().profiles_endpoint() == "http://localhost:4318"
    # OTLP over gRPC: the same host, on the server's HTTP port
    assert resolve_config(endpoint="http://collector:4317", protocol="grpc").profiles_endpoint() == (
        "http://collector:4318")
    monkeypatch.setenv("LLMLENS_PROFILING_ENDPOINT", "https://profiles.example:8443")
    assert resolve_config(endpoint="http://collector:4317", protocol="grpc").profiles_endpoint() == (
        "https://profiles.example:8443")

"""The same LLM facts as OpenTelemetry GenAI metrics, exported over OTLP.

  gen_ai.client.operation.duration        histogram, s      (+ error.type on failures)
  gen_ai.client.token.usage               histogram, {token} gen_ai.token.type = input | output
  gen_ai.client.operation.time_to_first_chunk  histogram, s  streaming calls
  llmlens.client.cost                     counter, USD
  llmlens.quality.score                   gauge (last value per score name)
"""

from __future__ import annotations

from typing import Any

from llmlens import semconv

DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_CACHE_LIMIT = 4096  # label combinations kept; beyond that attribute dicts are built per call


class _Attrs:
    """Attribute dicts of one label combination, built once (the SDK hashes them on every record)."""

    __slots__ = ("base", "input", "output")

    def __init__(self, base: dict[str, Any]) -> None:
        self.base = base
        self.input = {**base, "gen_ai.token.type": "input"}
        self.output = {**base, "gen_ai.token.type": "output"}


class OtelLlmMetrics:
    def __init__(self, meter: Any) -> None:
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens used per GenAI operation.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
        self.ttft = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk", unit="s",
            description="Time to the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.cost = meter.create_counter("llmlens.client.cost", unit="USD", description="Cost of GenAI operations.")
        self.quality = meter.create_gauge("llmlens.quality.score", description="Last quality score recorded.")
        self._attrs: dict[tuple[Any, ...], _Attrs] = {}

    def _attributes(self, key: tuple[Any, ...]) -> _Attrs:
        a = self._attrs.get(key)
        if a is None:
            operation, provider, request_model, response_model, host, port, error_type, app, department = key
            base: dict[str, Any] = {semconv.OPERATION: operation, semconv.PROVIDER: provider}
            if request_model:
                base[semconv.REQUEST_MODEL] = request_model
            if response_model:
                base[semconv.RESPONSE_MODEL] = response_model
            if host:
                base["server.address"] = host
            if port:
                base["server.port"] = port
            if error_type:
                base[semconv.ERROR_TYPE] = error_type
            if app:
                base[semconv.LLMLENS_APP] = app
            if department:
                base[semconv.LLMLENS_DEPARTMENT] = department
            a = _Attrs(base)
            if len(self._attrs) < _CACHE_LIMIT:
                self._attrs[key] = a
        return a

    def record(self, key: tuple[Any, ...], duration_s: float, input_tokens: int, output_tokens: int,
               cost: float | None, ttft_s: float | None) -> None:
        a = self._attributes(key)
        self.duration.record(duration_s, a.base)
        if input_tokens:
            self.tokens.record(input_tokens, a.input)
        if output_tokens:
            self.tokens.record(output_tokens, a.output)
        if cost:
            self.cost.add(cost, a.base)
        if ttft_s is not None:
            self.ttft.record(ttft_s, a.base)

    def record_score(self, name: str, value: float, app: str) -> None:
        attributes = {semconv.EVALUATION_NAME: name}
        if app:
            attributes[semconv.LLMLENS_APP] = app
        self.quality.set(value, attributes)

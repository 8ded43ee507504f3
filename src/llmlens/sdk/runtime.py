"""What init() built and every instrumented call reads: one object, swapped whole on (re)init.

`active` is None before init() and after shutdown(); every entry point checks it first, which
is what makes the SDK a no-op until initialised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmlens.sdk.config import SdkConfig
from llmlens.sdk.llm_metrics import LlmMetrics

SCOPE = "llmlens"  # instrumentation scope of every span the SDK itself creates


@dataclass(eq=False)
class Runtime:
    config: SdkConfig
    tracer: Any  # opentelemetry.trace.Tracer
    metrics: LlmMetrics
    prices: Any  # llmlens.pricing.PriceBook, or None when pricing cannot load
    redactor: Any  # llmlens.pii.Redactor, or None when masking is off
    resource: Any = None  # opentelemetry Resource: the one every signal of this init() carries
    http_instrumented: bool = False
    profiler: Any = None  # llmlens.sdk.profiler.Profiler when init(profiling=True)
    # What was started on top of init() (the OTLP log pipeline of configure_logging()): shutdown()
    # calls each with its timeout in ms, so it needs to know nothing of those parts.
    closers: list[Callable[[int], None]] = field(default_factory=list)

    def cost(self, model: str, provider: str, input_tokens: int, output_tokens: int, cached: int,
             reasoning: int) -> float | None:
        if self.prices is None or not model:
            return None
        try:
            return self.prices.cost(model, provider, input_tokens=input_tokens, output_tokens=output_tokens,
                                    cached_input_tokens=cached, reasoning_tokens=reasoning)
        except ValueError:
            return None


active: Runtime | None = None

"""llmlens: OpenTelemetry-native observability for LLM applications.

    import llmlens
    llmlens.init(service_name="support-bot", app="support", department="cx")

`import llmlens` stays cheap: the SDK's parts are imported on first use of a name below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "configure_logging",
    "context",
    "init",
    "metrics_asgi_app",
    "observe",
    "score",
    "shutdown",
    "span",
    "start_metrics_server",
]

# Public name -> module that defines it.
_EXPORTS = {
    "init": "llmlens.sdk.setup",
    "shutdown": "llmlens.sdk.setup",
    "observe": "llmlens.sdk.observe",
    "span": "llmlens.sdk.observe",
    "context": "llmlens.sdk.context",
    "score": "llmlens.sdk.scores",
    "configure_logging": "llmlens.sdk.logs",
    "start_metrics_server": "llmlens.sdk.prom_metrics",
    "metrics_asgi_app": "llmlens.sdk.prom_metrics",
}

if TYPE_CHECKING:
    from llmlens.sdk.context import context
    from llmlens.sdk.logs import configure_logging
    from llmlens.sdk.observe import observe, span
    from llmlens.sdk.prom_metrics import metrics_asgi_app, start_metrics_server
    from llmlens.sdk.scores import score
    from llmlens.sdk.setup import init, shutdown


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmlens' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

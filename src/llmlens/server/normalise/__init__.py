"""Decoded OTLP requests -> rows for the store. Pure functions: no I/O, no clocks."""

from llmlens.server.normalise.cost import CostModel, build_cost_model
from llmlens.server.normalise.logs import normalise_logs
from llmlens.server.normalise.metrics import normalise_metrics
from llmlens.server.normalise.traces import normalise_spans, normalise_traces

__all__ = ["CostModel", "build_cost_model", "normalise_logs", "normalise_metrics", "normalise_spans",
           "normalise_traces"]

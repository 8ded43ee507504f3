"""Decoded OTLP requests -> rows for the store. Pure functions: no I/O; the clock is read once a
request, by the cost model's time window, to judge the records' times."""

from llmlens.server.normalise.cost import CostModel, build_cost_model
from llmlens.server.normalise.logs import normalise_logs
from llmlens.server.normalise.metrics import normalise_metrics
from llmlens.server.normalise.time_window import TimeWindow
from llmlens.server.normalise.traces import normalise_spans, normalise_traces

__all__ = ["CostModel", "TimeWindow", "build_cost_model", "normalise_logs", "normalise_metrics", "normalise_spans",
           "normalise_traces"]

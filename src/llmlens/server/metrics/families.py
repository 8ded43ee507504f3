"""Every family /metrics exposes: name, type, labels and buckets. Names and labels are a contract
(dashboards, recording rules and Grafana's own service-graph view read them), so they live here
once and nowhere else.

Sources of the names: the OpenTelemetry GenAI semantic conventions in their Prometheus form, the
llmlens SDK's in-process metrics (sdk/prom_metrics.py: the same names, labels and buckets, so one
dashboard reads either), and Tempo's metrics-generator (span metrics and service graphs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "histogram", "gauge"]

OVERFLOW = "__overflow__"  # every label of the one series that takes what a full family cannot hold


@dataclass(frozen=True)
class Family:
    name: str  # as exposed; counters end in _total
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # histograms: upper bounds, +Inf implied

    @property
    def overflow_labels(self) -> tuple[str, ...]:
        return (OVERFLOW,) * len(self.labels)


# --- buckets ---------------------------------------------------------------------------------------
# GenAI semantic conventions' recommended boundaries.
GENAI_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
GENAI_TOKEN_BUCKETS = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
                       4194304.0, 16777216.0, 67108864.0)
# The conventions' time-to-first-token boundaries (gen_ai.server.time_to_first_token), the closest
# they give for the client's time to first chunk.
GENAI_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# The SDK's llm_* buckets (sdk/aggregates.py; a test keeps the two equal: the server may not import the SDK).
LLM_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
                        163.84, 327.68)
LLM_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                    20.0, 40.0)
# Tempo: span metrics ExponentialBuckets(0.002, 2, 14), service graphs ExponentialBuckets(0.1, 2, 8).
SPAN_LATENCY_BUCKETS = (0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
                        16.384)
SERVICE_GRAPH_BUCKETS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8)
# prometheus_client's defaults, for the server's own timings.
SERVER_TIMING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

# --- 1. OpenTelemetry GenAI ------------------------------------------------------------------------
GENAI_LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model",
                "error_type", "server_address", "service_name")
GENAI_DURATION = Family("gen_ai_client_operation_duration_seconds", "histogram", "GenAI operation duration.",
                        GENAI_LABELS, GENAI_DURATION_BUCKETS)
GENAI_TOKENS = Family("gen_ai_client_token_usage", "histogram", "Number of input and output tokens used.",
                      (*GENAI_LABELS, "gen_ai_token_type"), GENAI_TOKEN_BUCKETS)
GENAI_TTFT = Family("gen_ai_client_operation_time_to_first_chunk_seconds", "histogram",
                    "Time to the first chunk of a streamed GenAI response.", GENAI_LABELS, GENAI_TTFT_BUCKETS)

# --- 2. LLM KPIs (the SDK's names) -----------------------------------------------------------------
LLM_REQUESTS = Family("llm_requests_total", "counter", "LLM calls.", ("model", "status", "app"))
LLM_DURATION = Family("llm_request_duration_seconds", "histogram", "LLM call duration.", ("model",),
                      LLM_DURATION_BUCKETS)
LLM_TTFT = Family("llm_time_to_first_token_seconds", "histogram", "Time to the first chunk of streamed LLM calls.",
                  ("model",), LLM_TTFT_BUCKETS)
LLM_TOKENS = Family("llm_tokens_total", "counter", "Tokens used by LLM calls.", ("model", "direction", "app"))
LLM_COST = Family("llm_cost_dollars_total", "counter", "Cost of LLM calls in US dollars.",
                  ("model", "department", "app"))
LLM_UNPRICED = Family("llm_unpriced_requests_total", "counter",
                      "Successful LLM calls whose model has no price (their cost is missing from "
                      "llm_cost_dollars_total).", ("model",))
LLM_ERRORS = Family("llm_errors_total", "counter", "Failed LLM calls.", ("model", "error_type"))
LLM_QUALITY = Family("llm_quality_score", "gauge", "Last quality score recorded.", ("app", "name"))

# --- 3. RED and the service graph (Tempo's names) --------------------------------------------------
SPAN_LABELS = ("service", "span_name", "span_kind", "status_code")
SPAN_CALLS = Family("traces_spanmetrics_calls_total", "counter", "Spans received, by service, name, kind and status.",
                    SPAN_LABELS)
SPAN_LATENCY = Family("traces_spanmetrics_latency", "histogram", "Span duration in seconds.", SPAN_LABELS,
                      SPAN_LATENCY_BUCKETS)
EDGE_LABELS = ("client", "server", "connection_type")
EDGE_REQUESTS = Family("traces_service_graph_request_total", "counter",
                       "Requests between two nodes of the service graph.", EDGE_LABELS)
EDGE_FAILED = Family("traces_service_graph_request_failed_total", "counter",
                     "Failed requests between two nodes of the service graph (either side's status ERROR).",
                     EDGE_LABELS)
EDGE_SERVER_SECONDS = Family("traces_service_graph_request_server_seconds", "histogram",
                             "Request duration as the server side saw it.", EDGE_LABELS, SERVICE_GRAPH_BUCKETS)
EDGE_CLIENT_SECONDS = Family("traces_service_graph_request_client_seconds", "histogram",
                             "Request duration as the client side saw it.", EDGE_LABELS, SERVICE_GRAPH_BUCKETS)
EDGE_UNPAIRED = Family("traces_service_graph_unpaired_spans_total", "counter",
                       "Client or server spans whose other half did not arrive in time (the known side is named).",
                       ("client", "server"))

# --- 4. The server's own health --------------------------------------------------------------------
ACCEPTED = {
    "traces": Family("llmlens_spans_accepted_total", "counter", "Spans stored (committed), each counted once."),
    "logs": Family("llmlens_logs_accepted_total", "counter", "Log records stored (committed), each counted once."),
    "metrics": Family("llmlens_points_accepted_total", "counter",
                      "Metric data points stored (committed), each counted once."),
}
REJECTED = {
    "traces": Family("llmlens_spans_rejected_total", "counter",
                     "Spans refused one by one (OTLP partial success), by reason.", ("reason",)),
    "logs": Family("llmlens_logs_rejected_total", "counter",
                   "Log records refused one by one (OTLP partial success), by reason.", ("reason",)),
    "metrics": Family("llmlens_points_rejected_total", "counter",
                      "Metric data points refused one by one (OTLP partial success), by reason.", ("reason",)),
}
REFUSED_REQUESTS = Family("llmlens_export_requests_refused_total", "counter",
                          "OTLP export requests answered with an error, by HTTP status (429: overloaded; "
                          "gRPC answers are counted by the HTTP status of the same error).",
                          ("signal", "transport", "code"))
INGEST_SECONDS = Family("llmlens_ingest_duration_seconds", "histogram",
                        "Time from an OTLP export's body received to its answer (decode, normalise, commit).",
                        ("signal",), SERVER_TIMING_BUCKETS)
COMMIT_SECONDS = Family("llmlens_commit_duration_seconds", "histogram", "Time to commit one group of exports.",
                        (), SERVER_TIMING_BUCKETS)
COMMITS = Family("llmlens_commits_total", "counter", "Commits of the single writer.")
COMMIT_FAILURES = Family("llmlens_commit_failures_total", "counter", "Commits that failed (answered 503).")
WRITE_QUEUE = Family("llmlens_write_queue_rows", "gauge", "Rows accepted and waiting to be committed.")
STORE_BYTES = Family("llmlens_store_size_bytes", "gauge", "Bytes of the embedded store's data folder on disk.")
QUERY_SECONDS = Family("llmlens_query_duration_seconds", "histogram",
                       "Time to answer an API, UI or metrics request, by route.", ("route",), SERVER_TIMING_BUCKETS)
EDGES_PENDING = Family("llmlens_service_graph_pending_spans", "gauge",
                       "Client and server spans waiting for their other half.")
CONTEXT_PENDING = Family("llmlens_llm_calls_waiting_for_context", "gauge",
                         "Model calls not yet counted: waiting for their trace's app and department.")
LLM_CONTEXT_EXPIRED = Family("llmlens_llm_calls_context_expired_total", "counter",
                             "Model calls counted after waiting for their trace's app and department "
                             "without it all arriving (counted with what was known).")
OVERFLOWED = Family("llmlens_metrics_overflow_total", "counter",
                    "Samples folded into a family's __overflow__ series because the family holds "
                    "max_series label sets.", ("family",))

# Families whose series live in the registry (the rest are read at scrape time).
REGISTERED: tuple[Family, ...] = (
    GENAI_DURATION, GENAI_TOKENS, GENAI_TTFT,
    LLM_REQUESTS, LLM_DURATION, LLM_TTFT, LLM_TOKENS, LLM_COST, LLM_UNPRICED, LLM_ERRORS, LLM_QUALITY,
    SPAN_CALLS, SPAN_LATENCY,
    EDGE_REQUESTS, EDGE_FAILED, EDGE_SERVER_SECONDS, EDGE_CLIENT_SECONDS, EDGE_UNPAIRED, LLM_CONTEXT_EXPIRED,
    *ACCEPTED.values(), *REJECTED.values(), REFUSED_REQUESTS, INGEST_SECONDS, COMMIT_SECONDS, QUERY_SECONDS,
)

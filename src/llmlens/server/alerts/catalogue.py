"""Every signal a rule can watch: what it measures, over which stored table, which keys it can be
filtered and grouped by, and (where one exists) its PromQL form over the `/metrics` names.

The description and the PromQL forms are what the translation to Prometheus alerting rules reads
(export/prometheus_alerts.py); the SQL lives in signals.py. A form's templates take `{sel}`, the
rule's label matchers, each ending with a comma (`model="x",`, which PromQL allows), `{by}` its
group_by labels, `{by_le}` the same and `le`, and `{window}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Source(StrEnum):
    """The stored table a signal is computed from."""

    LLM = "llm_calls"  # one normalised row per LLM operation
    SPANS = "otel_traces"  # every span of every service
    SCORES = "llm_scores"  # quality scores and feedback


# Filter/group key -> SQL expression, per source. Only these names ever reach SQL text.
KEYS: dict[Source, dict[str, str]] = {
    Source.LLM: {
        "service": "ServiceName",
        "model": "if(RequestModel != '', RequestModel, ResponseModel)",
        "provider": "Provider",
        "app": "App",
        "department": "Department",
        "user": "UserId",
        "operation": "Operation",
        "span_name": "SpanName",
        "error_type": "ErrorType",
    },
    Source.SPANS: {"service": "ServiceName", "span_name": "SpanName", "span_kind": "SpanKind"},
    Source.SCORES: {"service": "ServiceName", "app": "App", "score": "Name"},
}


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"  # Monday to Sunday
    MONTH = "month"


@dataclass(frozen=True)
class PromQL:
    """A signal over the /metrics names. `value` is the signal; `samples` counts what it was measured
    on (calls, spans) in the window, for `min_samples` and for counting signals, which PromQL reads as
    0 where the store has no rows (no value). None: no count with the value's labels."""

    value: str
    samples: str | None
    counts: bool = False  # a sum or rate of counters: 0 over a window without samples, where the store has no row


@dataclass(frozen=True)
class SignalInfo:
    name: str
    source: Source
    unit: str  # of the value compared with the threshold
    description: str
    needs_window: bool = True
    params: tuple[str, ...] = ()  # signal-specific rule fields it takes (error_type, score, period, ...)
    required: tuple[str, ...] = ()
    # PromQL forms, the first whose metrics have every label a rule needs; none: say why in `why_no_promql`
    promql: tuple[PromQL, ...] = ()
    why_no_promql: str = ""
    default_op: str | None = None  # op and threshold may be left out when set
    default_threshold: float | None = None


def _counted(metric: str, matchers: str = "") -> PromQL:
    return PromQL(_sum("increase", metric, matchers), _CALLS, counts=True)


def _sum(function: str, metric: str, matchers: str = "") -> str:
    return f"sum by ({{by}}) ({function}({metric}{{{{{{sel}}{matchers}}}}}[{{window}}]))"


def _ratio(metric: str, failed: str) -> str:
    """Failed over all; 0 rather than no series where nothing failed (no calls: 0/0, no value)."""
    total = _sum("rate", metric)
    return f"({_sum('rate', metric, failed)} or {total} * 0) / {total}"


def _quantile(q: str, histogram: str) -> PromQL:
    return PromQL(f"histogram_quantile({q}, sum by ({{by_le}}) (rate({histogram}_bucket{{{{{{sel}}}}}}[{{window}}])))",
                  _sum("increase", f"{histogram}_count"))


_CALLS = _sum("increase", "llm_requests_total")
_SPANS = _sum("increase", "traces_spanmetrics_calls_total")
_SIGNALS = (
    SignalInfo("request_rate", Source.LLM, "requests/s", "LLM model calls per second over the window",
               promql=(PromQL(_sum("rate", "llm_requests_total"), _CALLS, counts=True),)),
    SignalInfo("error_rate", Source.LLM, "ratio", "failed LLM model calls / all LLM model calls in the window",
               promql=(PromQL(_ratio("llm_requests_total", 'status="error"'), _CALLS),)),
    SignalInfo("error_count", Source.LLM, "calls", "failed LLM model calls in the window (of one error_type if given)",
               params=("error_type",), promql=(_counted("llm_requests_total", 'status="error"'),
                                                PromQL(_sum("increase", "llm_errors_total"), None, counts=True))),
    *(SignalInfo(f"latency_p{q}", Source.LLM, "seconds", f"{q}th percentile of LLM model call duration",
                 promql=(_quantile(f"0.{q}", "llm_request_duration_seconds"),)) for q in ("50", "95", "99")),
    *(SignalInfo(f"ttft_p{q}", Source.LLM, "seconds", f"{q}th percentile of time to first token (streamed calls)",
                 promql=(_quantile(f"0.{q}", "llm_time_to_first_token_seconds"),)) for q in ("50", "95")),
    SignalInfo("output_tokens_per_s", Source.LLM, "tokens/s",
               "output tokens per second of generation after the first token (streamed calls)",
               why_no_promql="generation time after the first token is not a /metrics series"),
    SignalInfo("tokens", Source.LLM, "tokens", "input + output tokens of LLM calls in the window",
               promql=(_counted("llm_tokens_total"),)),
    SignalInfo("cost", Source.LLM, "USD", "spend (USD) of LLM calls in the window",
               promql=(_counted("llm_cost_dollars_total"),)),
    SignalInfo("unpriced_requests", Source.LLM, "calls", "LLM calls whose model has no price, in the window",
               promql=(_counted("llm_unpriced_requests_total"),)),
    SignalInfo("quality_score", Source.SCORES, "score", "mean of a named quality score in the window",
               params=("score",),
               why_no_promql="/metrics keeps the last score of each name (llm_quality_score), not the window's scores"),
    SignalInfo("span_error_rate", Source.SPANS, "ratio", "spans with error status / all spans in the window",
               promql=(PromQL(_ratio("traces_spanmetrics_calls_total", 'status_code="STATUS_CODE_ERROR"'), _SPANS),)),
    SignalInfo("span_latency_p95", Source.SPANS, "seconds", "95th percentile of span duration",
               promql=(_quantile("0.95", "traces_spanmetrics_latency"),)),
    SignalInfo("budget", Source.LLM, "fraction of amount",
               "spend so far in the calendar period / the budget amount", needs_window=False,
               params=("period", "amount"), required=("period", "amount"), default_op=">=", default_threshold=1.0,
               why_no_promql="PromQL windows slide; a calendar day, week or month in a time zone is not one"),
    SignalInfo("budget_burn_rate", Source.LLM, "fraction of amount",
               "(spend so far + spend rate over the window x time left in the period) / the budget amount",
               params=("period", "amount"), required=("period", "amount"), default_op=">=", default_threshold=1.0,
               why_no_promql="PromQL windows slide; a calendar day, week or month in a time zone is not one"),
    SignalInfo("spend_forecast", Source.LLM, "USD",
               "spend forecast for the end of the calendar period (alerts/forecast.py)", needs_window=False,
               params=("period",), required=("period",),
               why_no_promql="the forecast reads hour-of-day history that PromQL has no function for"),
    SignalInfo("anomaly", Source.LLM, "MADs",
               "the `of` signal over the window against its own baseline, in median absolute deviations",
               params=("of", "error_type", "score"), required=("of",), default_op=">", default_threshold=5.0,
               why_no_promql="a median-absolute-deviation baseline over past windows has no PromQL form"),
)
SIGNALS: dict[str, SignalInfo] = {s.name: s for s in _SIGNALS}
# What `anomaly` can watch: signals measured over a sliding window.
ANOMALY_BASES = tuple(name for name, s in SIGNALS.items()
                      if s.needs_window and name not in ("anomaly", "budget_burn_rate"))

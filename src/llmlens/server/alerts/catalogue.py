"""Every signal a rule can watch: what it measures, over which stored table, which keys it can be
filtered and grouped by, and (where one exists) its PromQL form over the `/metrics` names.

The description and the PromQL template are what a translation to Prometheus rules reads; the SQL
lives in signals.py. A template's `{sel}` is the rule's label matchers, `{by}` its group_by labels,
`{window}` its window; in `{sel}` each matcher ends with a comma (`model="x",`), which PromQL allows.
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
class SignalInfo:
    name: str
    source: Source
    unit: str  # of the value compared with the threshold
    description: str
    needs_window: bool = True
    params: tuple[str, ...] = ()  # signal-specific rule fields it takes (error_type, score, period, ...)
    required: tuple[str, ...] = ()
    promql: str | None = None  # None: no PromQL form over /metrics (say why in `why_no_promql`)
    why_no_promql: str = ""
    default_op: str | None = None  # op and threshold may be left out when set
    default_threshold: float | None = None


_RATE = "sum by ({by}) (rate(%s{{{sel}%s}}[{window}]))"
_INCREASE = "sum by ({by}) (increase(%s{{{sel}%s}}[{window}]))"
_QUANTILE = "histogram_quantile(%s, sum by ({by}, le) (rate(%s_bucket{{{sel}}}[{window}])))"
_SIGNALS = (
    SignalInfo("request_rate", Source.LLM, "requests/s", "LLM model calls per second over the window",
               promql=_RATE % ("llm_requests_total", "")),
    SignalInfo("error_rate", Source.LLM, "ratio", "failed LLM model calls / all LLM model calls in the window",
               promql=_RATE % ("llm_requests_total", 'status="error"') + " / " + _RATE % ("llm_requests_total", "")),
    SignalInfo("error_count", Source.LLM, "calls", "failed LLM model calls in the window (of one error_type if given)",
               params=("error_type",), promql=_INCREASE % ("llm_requests_total", 'status="error"')),
    *(SignalInfo(f"latency_p{q}", Source.LLM, "seconds", f"{q}th percentile of LLM model call duration",
                 promql=_QUANTILE % (f"0.{q}", "llm_request_duration_seconds")) for q in ("50", "95", "99")),
    *(SignalInfo(f"ttft_p{q}", Source.LLM, "seconds", f"{q}th percentile of time to first token (streamed calls)",
                 promql=_QUANTILE % (f"0.{q}", "llm_time_to_first_token_seconds")) for q in ("50", "95")),
    SignalInfo("output_tokens_per_s", Source.LLM, "tokens/s",
               "output tokens per second of generation after the first token (streamed calls)",
               why_no_promql="generation time after the first token is not a /metrics series"),
    SignalInfo("tokens", Source.LLM, "tokens", "input + output tokens of LLM calls in the window",
               promql=_INCREASE % ("llm_tokens_total", "")),
    SignalInfo("cost", Source.LLM, "USD", "spend (USD) of LLM calls in the window",
               promql=_INCREASE % ("llm_cost_dollars_total", "")),
    SignalInfo("unpriced_requests", Source.LLM, "calls", "LLM calls whose model has no price, in the window",
               promql=_INCREASE % ("llm_unpriced_requests_total", "")),
    SignalInfo("quality_score", Source.SCORES, "score", "mean of a named quality score in the window",
               params=("score",), why_no_promql="scores are not exported to /metrics"),
    SignalInfo("span_error_rate", Source.SPANS, "ratio", "spans with error status / all spans in the window",
               promql=(_RATE % ("traces_spanmetrics_calls_total", 'status_code="STATUS_CODE_ERROR"') + " / "
                       + _RATE % ("traces_spanmetrics_calls_total", ""))),
    SignalInfo("span_latency_p95", Source.SPANS, "seconds", "95th percentile of span duration",
               promql=_QUANTILE % ("0.95", "traces_spanmetrics_latency")),
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

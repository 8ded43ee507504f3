"""`llmlens export prometheus-rules`: recording rules over the llm_* families, as a Prometheus rule file.

Names follow Prometheus's `level:metric:operations` convention: the labels kept, the metric
(`_total` dropped after rate()), then what was done. Every rule keeps `job`, so the server's
series and an SDK app's in-process series of the same calls stay apart (see docs/grafana.md).
Windows are 5 minutes (1 hour for cost), wide enough for scrape intervals up to a minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from llmlens import __version__

GROUP = "llmlens-llm-recording"
WINDOW = "5m"
LATENCY_QUANTILES = ("0.5", "0.95", "0.99")
TTFT_QUANTILES = ("0.5", "0.95")


def _rule(record: str, expr: str, **labels: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"record": record, "expr": expr}
    if labels:
        rule["labels"] = labels
    return rule


def _error_ratio(by: str) -> str:
    """Failed over all calls; 0 rather than no series where nothing failed."""
    total = f"sum by ({by}) (rate(llm_requests_total[{WINDOW}]))"
    failed = f'sum by ({by}) (rate(llm_requests_total{{status="error"}}[{WINDOW}]))'
    return f"({failed} or {total} * 0) / {total}"


def _quantiles(metric: str, quantiles: Sequence[str]) -> list[dict[str, Any]]:
    """Bucket rates by job and model once, then each quantile from them (a rule may read an earlier
    rule of its group: a group's rules run in order)."""
    buckets = f"job_model_le:{metric}_bucket:rate{WINDOW}"
    rules = [_rule(buckets, f"sum by (job, model, le) (rate({metric}_bucket[{WINDOW}]))")]
    record = f"job_model:{metric}:histogram_quantile"
    rules += [_rule(record, f"histogram_quantile({q}, {buckets})", quantile=q) for q in quantiles]
    return rules


def recording_rules() -> list[dict[str, Any]]:
    return [
        _rule(f"job_model_status:llm_requests:rate{WINDOW}",
              f"sum by (job, model, status) (rate(llm_requests_total[{WINDOW}]))"),
        _rule(f"job:llm_request_errors_per_requests:ratio_rate{WINDOW}", _error_ratio("job")),
        _rule(f"job_model:llm_request_errors_per_requests:ratio_rate{WINDOW}", _error_ratio("job, model")),
        *_quantiles("llm_request_duration_seconds", LATENCY_QUANTILES),
        *_quantiles("llm_time_to_first_token_seconds", TTFT_QUANTILES),
        _rule("job_department_app:llm_cost_dollars:increase1h",
              "sum by (job, department, app) (increase(llm_cost_dollars_total[1h]))"),
        _rule(f"job_model_direction:llm_tokens:rate{WINDOW}",
              f"sum by (job, model, direction) (rate(llm_tokens_total[{WINDOW}]))"),
    ]


def rule_groups() -> list[dict[str, Any]]:
    return [{"name": GROUP, "rules": recording_rules()}]


def rules_yaml(extra_groups: Sequence[dict[str, Any]] = (), notes: Sequence[str] = ()) -> str:
    """The rule file: the recording rules, then any further groups (alerting rules, for instance);
    `notes` are comment lines for its header."""
    header = (f"# Prometheus rules for llmlens metrics, written by `llmlens export prometheus-rules` "
              f"(llmlens {__version__}).\n# Check with `promtool check rules FILE`; load with rule_files.\n")
    header += "".join(f"#\n# {line}\n" if i == 0 else f"# {line}\n" for i, line in enumerate(notes))
    body = {"groups": [*rule_groups(), *extra_groups]}
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=1000)

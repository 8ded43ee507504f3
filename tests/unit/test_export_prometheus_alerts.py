"""llmlens alert rules as Prometheus alerting rules: the expression of every signal that has one,
the reason of every rule that has none, labels and annotations, and promtool on the result.

A real Prometheus firing the translated HighErrorRate into a real Alertmanager, with the labels
llmlens's own evaluator sends: tests/integration/test_prometheus_alerts_e2e.py.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from llmlens.cli import main
from llmlens.export.prometheus_alerts import alerting_rule, rules_file_text, translate
from llmlens.server.alerts.catalogue import SIGNALS
from llmlens.server.alerts.rules import Rule, default_rules, parse_rules

J = 'job="llmlens"'


def rule(**fields: object) -> Rule:
    """One checked rule from YAML-like fields (name R, op >, threshold 1 unless given)."""
    spec = {"name": "R", "op": ">", "threshold": 1, **fields}
    [checked] = parse_rules(yaml.safe_dump({"rules": [spec]}), "test.yaml")
    return checked


def expr(**fields: object) -> str:
    return alerting_rule(rule(**fields), job="llmlens")["expr"]


def skipped_reason(**fields: object) -> str:
    translation = translate([rule(**fields)], job="llmlens")
    assert translation.rules == [], translation.rules
    [skipped] = translation.skipped
    return skipped.reason


# ------------------------------------------------------------------- every signal with a form

def _calls(by: str = "model", window: str = "5m", metric: str = "llm_requests_total") -> str:
    return f"sum by ({by}) (increase({metric}{{{J}}}[{window}]))"


EXPRESSIONS = {
    "request_rate": f"sum by (model) (rate(llm_requests_total{{{J}}}[5m])) > 1",
    "error_rate": (f'(sum by (model) (rate(llm_requests_total{{{J},status="error"}}[5m])) or '
                   f"sum by (model) (rate(llm_requests_total{{{J}}}[5m])) * 0) / "
                   f"sum by (model) (rate(llm_requests_total{{{J}}}[5m])) > 1"),
    "error_count": f'sum by (model) (increase(llm_requests_total{{{J},status="error"}}[5m])) > 1',
    "latency_p50": f"histogram_quantile(0.50, sum by (model, le) (rate(llm_request_duration_seconds_bucket{{{J}}}[5m]))) > 1",
    "latency_p95": f"histogram_quantile(0.95, sum by (model, le) (rate(llm_request_duration_seconds_bucket{{{J}}}[5m]))) > 1",
    "latency_p99": f"histogram_quantile(0.99, sum by (model, le) (rate(llm_request_duration_seconds_bucket{{{J}}}[5m]))) > 1",
    "ttft_p50": f"histogram_quantile(0.50, sum by (model, le) (rate(llm_time_to_first_token_seconds_bucket{{{J}}}[5m]))) > 1",
    "ttft_p95": f"histogram_quantile(0.95, sum by (model, le) (rate(llm_time_to_first_token_seconds_bucket{{{J}}}[5m]))) > 1",
    "tokens": f"sum by (model) (increase(llm_tokens_total{{{J}}}[5m])) > 1",
    "cost": f"sum by (model) (increase(llm_cost_dollars_total{{{J}}}[5m])) > 1",
    "unpriced_requests": f"sum by (model) (increase(llm_unpriced_requests_total{{{J}}}[5m])) > 1",
}
SPAN_EXPRESSIONS = {
    "span_error_rate": (f'(sum by (service) (rate(traces_spanmetrics_calls_total{{{J},status_code="STATUS_CODE_ERROR"}}'
                        f"[5m])) or sum by (service) (rate(traces_spanmetrics_calls_total{{{J}}}[5m])) * 0) / "
                        f"sum by (service) (rate(traces_spanmetrics_calls_total{{{J}}}[5m])) > 1"),
    "span_latency_p95": (f"histogram_quantile(0.95, sum by (service, le) (rate(traces_spanmetrics_latency_bucket"
                         f"{{{J}}}[5m]))) > 1"),
}
NO_FORM = {"output_tokens_per_s": "not a /metrics series", "quality_score": "last score",
           "budget": "calendar", "budget_burn_rate": "calendar", "spend_forecast": "hour-of-day history",
           "anomaly": "median-absolute-deviation"}


def test_every_signal_is_covered_here() -> None:
    assert set(EXPRESSIONS) | set(SPAN_EXPRESSIONS) | set(NO_FORM) == set(SIGNALS)
    assert {name for name, info in SIGNALS.items() if info.promql} == set(EXPRESSIONS) | set(SPAN_EXPRESSIONS)


@pytest.mark.parametrize("signal", sorted(EXPRESSIONS))
def test_llm_signal_by_model(signal: str) -> None:
    assert expr(signal=signal, window="5m", group_by=["model"]) == EXPRESSIONS[signal]


@pytest.mark.parametrize("signal", sorted(SPAN_EXPRESSIONS))
def test_span_signal_by_service(signal: str) -> None:
    assert expr(signal=signal, window="5m", group_by=["service"]) == SPAN_EXPRESSIONS[signal]


@pytest.mark.parametrize("signal", sorted(NO_FORM))
def test_signal_without_a_form_is_listed_with_its_reason(signal: str) -> None:
    fields: dict[str, object] = {"signal": signal, "window": "1h"}
    if signal in ("budget", "budget_burn_rate"):
        fields.update(period="day", amount=100)
    if signal == "budget":
        del fields["window"]
    if signal == "spend_forecast":
        fields = {"signal": signal, "period": "month"}
    if signal == "quality_score":
        fields["score"] = "helpful"
    if signal == "anomaly":
        fields["of"] = "cost"
    assert NO_FORM[signal] in skipped_reason(**fields)


# ------------------------------------------------------------------- filters, groups, windows

def test_filters_are_matchers_sorted_and_quoted_and_no_group_is_one_series() -> None:
    assert expr(signal="cost", window="1h30m", filters={"model": 'gpt "4o"', "app": "support"}) == (
        f'sum by () (increase(llm_cost_dollars_total{{{J},app="support",model="gpt \\"4o\\""}}[1h30m])) > 1')


def test_group_by_several_keys_and_every_job() -> None:
    found = alerting_rule(rule(signal="cost", window="1h", group_by=["department", "app"]), job=None)["expr"]
    assert found == "sum by (department, app) (increase(llm_cost_dollars_total{}[1h])) > 1"


def test_error_count_of_one_error_type_reads_llm_errors_total() -> None:
    assert expr(signal="error_count", window="10m", error_type="RateLimitError") == (
        f'sum by () (increase(llm_errors_total{{{J},error_type="RateLimitError"}}[10m])) > 1')
    assert expr(signal="error_count", window="10m", group_by=["error_type"]) == (
        f"sum by (error_type) (increase(llm_errors_total{{{J}}}[10m])) > 1")


def test_span_kind_filter_is_spelled_as_metrics_spell_it_and_grouping_by_it_is_refused() -> None:
    assert 'span_kind="SPAN_KIND_SERVER"' in expr(signal="span_error_rate", window="5m",
                                                  filters={"span_kind": "Server"})
    assert "SPAN_KIND_SERVER where the store has Server" in skipped_reason(
        signal="span_error_rate", window="5m", group_by=["span_kind"])


@pytest.mark.parametrize(("fields", "needle"), [
    ({"signal": "cost", "window": "1d", "group_by": ["user"]}, "llm_cost_dollars_total has no label 'user'"),
    ({"signal": "request_rate", "window": "5m", "filters": {"provider": "openai"}},
     "llm_requests_total has no label 'provider' (its labels: model, status, app)"),
    ({"signal": "latency_p95", "window": "5m", "group_by": ["app"]}, "no label 'app'"),
    ({"signal": "error_rate", "window": "5m", "filters": {"service": "bot", "operation": "chat"}},
     "llm_requests_total has no labels 'operation', 'service'"),
])
def test_keys_that_are_no_label_of_the_metrics_are_named(fields: dict, needle: str) -> None:
    assert needle in skipped_reason(**fields)


# ------------------------------------------------------------------- where store and PromQL differ

def test_min_samples_keeps_groups_with_enough_calls() -> None:
    found = expr(signal="error_rate", window="5m", group_by=["model"], min_samples=10, threshold=0.05)
    assert found.endswith(f"> 0.05 and sum by (model) (increase(llm_requests_total{{{J}}}[5m])) >= 10")
    found = expr(signal="latency_p95", window="5m", group_by=["model"], min_samples=3)
    assert found.endswith(f"and {_calls(metric='llm_request_duration_seconds_count')} >= 3")


def test_a_counting_rule_that_zero_would_meet_keeps_groups_with_calls() -> None:
    """No calls: no value in llmlens; 0 in PromQL, which `< 1` would fire on."""
    assert expr(signal="request_rate", window="5m", group_by=["model"], op="<", threshold=1) == (
        f"sum by (model) (rate(llm_requests_total{{{J}}}[5m])) < 1 and {_calls()} >= 1")
    assert " and " not in expr(signal="request_rate", window="5m", op=">", threshold=0)
    # cost by department: no count of calls by department exists on /metrics
    assert "llm_requests_total has no label 'department'" in skipped_reason(
        signal="cost", window="1h", group_by=["department"], op="<", threshold=1)
    assert "no count of calls" in skipped_reason(signal="error_count", window="5m", error_type="Timeout",
                                                 op="<=", threshold=2)


# ------------------------------------------------------------------- labels, annotations, for

def test_labels_annotations_and_for() -> None:
    found = alerting_rule(rule(
        signal="error_rate", window="5m", group_by=["model"], filters={"app": "support"}, threshold=0.05, **{"for": "90s"},
        labels={"severity": "critical", "team": "{{ml}}"},
        annotations={"summary": "{{app}}: error rate of {{model}} is {{value | percent}} ({{value}}, "
                                "{{ value | usd }}) for {{severity}}"}))
    assert found["alert"] == "R" and found["for"] == "1m30s"
    assert found["labels"] == {"severity": "critical", "team": '{{ "{{ml}}" }}'}
    assert found["annotations"]["summary"] == (
        'support: error rate of {{ $labels.model }} is {{ $value | humanizePercentage }} ({{ $value }}, '
        '{{ printf "$%.2f" $value }}) for critical')
    assert "for" not in alerting_rule(rule(signal="cost", window="1h"))


def test_the_default_rules() -> None:
    translation = translate(default_rules(100), job="llmlens")
    assert [r["alert"] for r in translation.rules] == [
        "HighErrorRate", "HighLatencyP95", "SlowTimeToFirstToken", "UnpricedModelCalls"]
    assert {s.rule for s in translation.skipped} == {"DailyBudget", "DailyBudgetBurnRate", "QualityDrop",
                                                     "CostAnomaly"}
    high = translation.rules[0]
    assert (high["for"], high["labels"]) == ("5m", {"severity": "critical"})
    assert high["annotations"]["summary"] == (
        "LLM error rate of {{ $labels.model }} is {{ $value | humanizePercentage }} (over 5% for 5m)")


# ------------------------------------------------------------------- the file, promtool, the CLI

EVERY_FORM = textwrap.dedent("""\
    rules:
      - {name: Requests, signal: request_rate, window: 5m, op: "<", threshold: 0.5, min_samples: 3}
      - {name: Errors, signal: error_rate, window: 10m, group_by: [model, app], op: ">", threshold: 0.1}
      - {name: RateLimits, signal: error_count, window: 5m, error_type: RateLimitError, op: ">=", threshold: 5}
      - {name: SlowP50, signal: latency_p50, window: 5m, filters: {model: gpt-4o}, op: ">", threshold: 2}
      - {name: SlowP99, signal: latency_p99, window: 1h, op: ">", threshold: 20}
      - {name: Ttft, signal: ttft_p50, window: 5m, group_by: [model], op: ">", threshold: 1}
      - {name: Tokens, signal: tokens, window: 1h, group_by: [app], op: ">", threshold: 1000000}
      - {name: Spend, signal: cost, window: 1h, group_by: [department], op: ">", threshold: 50,
         annotations: {summary: "{{department}} spent {{value | usd}}"}}
      - {name: Unpriced, signal: unpriced_requests, window: 15m, op: ">", threshold: 0}
      - {name: SpanErrors, signal: span_error_rate, window: 5m, group_by: [service, span_name], op: ">", threshold: 0.2}
      - {name: SpanSlow, signal: span_latency_p95, window: 5m, filters: {span_kind: Server}, op: ">", threshold: 3}
      - {name: PerUser, signal: cost, window: 1d, group_by: [user], op: ">", threshold: 10}
    """)


def test_promtool_accepts_every_form(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: install Debian's prometheus package (make test does)"
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(EVERY_FORM)
    text, skipped = rules_file_text(str(rules_file), default_rules_on=True, job="llmlens")
    assert set(skipped) == {"PerUser", "DailyBudget", "DailyBudgetBurnRate", "QualityDrop", "CostAnomaly"}
    assert "#   PerUser (cost): llm_cost_dollars_total has no label 'user'" in text
    out = tmp_path / "llmlens.rules.yml"
    out.write_text(text)
    result = subprocess.run([promtool, "check", "rules", "--lint=all", "--lint-fatal", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    alerting = yaml.safe_load(text)["groups"][1]["rules"]
    assert len(alerting) == 11 + 4  # the file's, and the default rules that have a form
    recording = yaml.safe_load(text)["groups"][0]["rules"]
    assert f"SUCCESS: {len(recording) + len(alerting)} rules found" in result.stdout


def test_cli_writes_alerting_rules_and_names_the_rules_left_out(tmp_path: Path, capsys) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(EVERY_FORM)
    out = tmp_path / "out.yml"
    assert main(["export", "prometheus-rules", "--rules-file", str(rules_file), "--no-alerts-default-rules",
                 "--job", "llm-server", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out)
    assert "1 alert rule without a PromQL form" in captured.err and "PerUser" in captured.err
    [_, alerts] = yaml.safe_load(out.read_text())["groups"]
    assert len(alerts["rules"]) == 11 and all('job="llm-server"' in r["expr"] for r in alerts["rules"])


@pytest.mark.parametrize("content", [
    "rules:\n  - {name: A, signal: bogus, window: 5m, op: '>', threshold: 1}\n",
    "rules:\n  - {name: A, signal: cost, window: 5 minutes, op: '>', threshold: 1}\n",
    "rules:\n  - {name: A, signal: cost, window: 5m, op: '=>', threshold: 1}\n",
    "rules:\n  - {name: A, signal: cost, window: 5m, op: '>'}\n",
    "rules:\n  - {name: A, signal: cost\n",
])
def test_a_bad_rules_file_gets_the_message_of_rules_check(tmp_path: Path, capsys, content: str) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(content)
    assert main(["rules", "check", str(rules_file)]) == 2
    expected = capsys.readouterr().err
    out = tmp_path / "out.yml"
    assert main(["export", "prometheus-rules", "--rules-file", str(rules_file), "--out", str(out)]) == 2
    assert capsys.readouterr().err == expected and "rules.yaml:" in expected
    assert not out.exists()


def test_a_missing_rules_file_and_a_bad_job_are_refused(tmp_path: Path, capsys) -> None:
    assert main(["export", "prometheus-rules", "--rules-file", str(tmp_path / "nope.yaml")]) == 2
    assert "the rules file does not exist" in capsys.readouterr().err
    assert main(["export", "prometheus-rules", "--job", 'a"b']) == 2
    assert "--job" in capsys.readouterr().err

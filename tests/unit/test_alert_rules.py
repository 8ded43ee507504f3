"""Alert rule files: every problem named by line, rule and field; `llmlens rules check` and the
server refuse the same files with the same message."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmlens.server.alerts.durations import format_duration, parse_duration
from llmlens.server.alerts.rules import RulesError, default_rules, load_rules_file, merge_rules, parse_rules
from llmlens.server.alerts.templates import render, to_prometheus
from tests.server_process import free_port

VALID = textwrap.dedent("""\
    rules:
      - name: HighErrorRate
        signal: error_rate            # errors / requests of LLM calls in the window
        window: 5m
        group_by: [model]
        op: ">"
        threshold: 0.05
        for: 5m
        labels: {severity: critical}
        annotations: {summary: "LLM error rate of {{model}} is {{value}}"}
      - name: TeamBudget
        signal: budget
        period: month
        amount: 2500
        group_by: [department]
      - name: RateLimited
        signal: error_count
        error_type: RateLimitError
        window: 10m
        op: ">="
        threshold: 3
      - name: SpendSpike
        signal: anomaly
        of: cost
        window: 1h
""")


def problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(textwrap.dedent(text), "rules.yaml")
    return str(caught.value).splitlines()


def test_a_valid_file_gives_checked_rules():
    rules = parse_rules(VALID, "rules.yaml")
    assert [r.name for r in rules] == ["HighErrorRate", "TeamBudget", "RateLimited", "SpendSpike"]
    high = rules[0]
    assert (high.window_s, high.for_s, high.op, high.threshold, high.group_by) == (300, 300, ">", 0.05, ("model",))
    assert high.line == 2 and high.holds(0.06) and not high.holds(0.05)
    budget = rules[1]  # op and threshold default to "spent >= the amount"
    assert (budget.op, budget.threshold, budget.amount, budget.period.value) == (">=", 1.0, 2500, "month")
    assert (rules[3].op, rules[3].threshold, rules[3].of) == (">", 5.0, "cost")


def test_unknown_signal_is_named_with_its_line_and_rule():
    found = problems("""\
        rules:
          - name: Typo
            signal: eror_rate
            window: 5m
            op: ">"
            threshold: 1
    """)
    assert len(found) == 1
    assert found[0].startswith("rules.yaml:3: rule 'Typo' (#1), field 'signal': unknown signal 'eror_rate'")
    assert "error_rate" in found[0]  # the known ones are listed


def test_bad_duration_bad_operator_and_missing_field_are_all_reported_at_once():
    found = problems("""\
        rules:
          - name: Fine
            signal: cost
            window: 1h
            op: ">"
            threshold: 10
          - name: Broken
            signal: latency_p95
            window: 5 minutes
            op: "=>"
            for: 1x
          - signal: cost
            window: 1h
            op: ">"
            threshold: 1
    """)
    assert "rules.yaml:10: rule 'Broken' (#2), field 'op': bad operator '=>': use one of >, >=, <, <=" in found
    assert any(p.startswith("rules.yaml:9: rule 'Broken' (#2), field 'window': bad duration") for p in found)
    assert any(p.startswith("rules.yaml:11: rule 'Broken' (#2), field 'for': bad duration") for p in found)
    assert "rules.yaml:7: rule 'Broken' (#2), field 'threshold': missing (required)" in found
    assert "rules.yaml:12: rule #3, field 'name': missing (required)" in found
    assert len(found) == 5


def test_yaml_syntax_error_names_the_line():
    found = problems("""\
        rules:
          - name: X
            signal: [cost
            window: 1h
    """)
    assert len(found) == 1 and found[0].startswith("rules.yaml:4: not valid YAML")


@pytest.mark.parametrize(("rule", "needle"), [
    ("{name: A, signal: cost, window: 1h, op: '>', threshold: 1, treshold: 2}", "field 'treshold': unknown field"),
    ("{name: A, signal: cost, window: 1h, op: '>', threshold: 1, group_by: [colour]}", "cannot group cost by 'colour'"),
    ("{name: A, signal: span_error_rate, window: 1h, op: '>', threshold: 1, filters: {model: x}}",
     "cannot filter span_error_rate by 'model'"),
    ("{name: A, signal: cost, op: '>', threshold: 1}", "field 'window': signal 'cost' needs a window"),
    ("{name: A, signal: budget, period: day}", "field 'amount': signal 'budget' needs 'amount'"),
    ("{name: A, signal: budget, period: year, amount: 5}", "field 'period'"),
    ("{name: A, signal: anomaly, of: budget, window: 1h}", "field 'of': anomaly needs 'of'"),
    ("{name: A, signal: anomaly, of: cost, window: 7m}", "must divide a day"),
    ("{name: A, signal: quality_score, window: 1h, op: '<', threshold: 0.5}", "needs 'score'"),
    ("{name: A, signal: cost, window: 1h, op: '>', threshold: 1, error_type: X}", "not a field of signal 'cost'"),
    ("{name: A, signal: cost, window: 1h, op: '>', threshold: 1, annotations: {s: '{{modle}}'}}",
     "unknown name {{modle}}"),
    ("{name: A, signal: cost, window: 1h, op: '>', threshold: 1, labels: {alertname: x}}", "set by the rule itself"),
    ("{name: 9lives, signal: cost, window: 1h, op: '>', threshold: 1}", "not a valid alert name"),
    ("{name: A, signal: cost, window: 1h, op: '>', threshold: high}", "field 'threshold'"),
])
def test_each_kind_of_problem_names_its_field(rule, needle):
    found = problems(f"rules:\n  - {rule}\n")
    assert any(needle in p for p in found), found


def test_duplicate_names_and_top_level_mistakes():
    found = problems("""\
        rule:
          - {name: A}
    """)
    assert found == ["rules.yaml:1: unknown top-level key 'rule' (expected 'rules')"]
    found = problems("""\
        rules:
          - {name: A, signal: cost, window: 1h, op: ">", threshold: 1}
          - {name: A, signal: cost, window: 1h, op: ">", threshold: 2}
    """)
    assert found == ["rules.yaml:3: rule 'A' (#2), field 'name': the name is already used by rule #1"]


def test_durations_round_trip():
    assert [parse_duration(t) for t in ("30s", "5m", "1h30m", "7d", "0s", 0)] == [30, 300, 5400, 604800, 0, 0]
    assert format_duration(5400) == "1h30m" and format_duration(0) == "0s"


def test_templates_render_and_translate_to_prometheus():
    text = "error rate of {{model}} is {{value | percent}} ({{ value }})"
    assert render(text, {"model": "gpt-4o"}, 0.0712) == "error rate of gpt-4o is 7.12% (0.0712)"
    assert to_prometheus(text) == ("error rate of {{ $labels.model }} is {{ $value | humanizePercentage }} "
                                   "({{ $value }})")


def test_default_rules_are_valid_and_a_file_rule_replaces_one_by_name():
    defaults = default_rules(250)
    names = [r.name for r in defaults]
    assert {"HighErrorRate", "HighLatencyP95", "SlowTimeToFirstToken", "DailyBudget", "QualityDrop",
            "UnpricedModelCalls", "CostAnomaly"} <= set(names)
    assert next(r for r in defaults if r.name == "DailyBudget").amount == 250
    merged = merge_rules(defaults, parse_rules(VALID, "rules.yaml"))
    assert len(merged) == len(defaults) + 3
    assert next(r for r in merged if r.name == "HighErrorRate").source == "rules.yaml"


def test_rules_check_command_exit_codes(tmp_path: Path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(VALID)
    bad.write_text("rules:\n  - name: X\n    signal: nope\n    window: 5m\n    op: '>'\n    threshold: 1\n"
                   "  - name: Y\n    signal: cost\n    window: soon\n    op: '>'\n    threshold: 1\n")
    run = [sys.executable, "-m", "llmlens.cli", "rules", "check"]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "4 rules, valid" in ok.stdout
    failed = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2
    lines = failed.stderr.strip().splitlines()
    assert lines[0].startswith(f"llmlens: error: {bad}:3: rule 'X' (#1), field 'signal': unknown signal 'nope'")
    assert lines[1].startswith(f"{bad}:9: rule 'Y' (#2), field 'window': bad duration")
    with pytest.raises(RulesError, match="does not exist"):
        load_rules_file(tmp_path / "missing.yaml")


def test_the_server_refuses_an_invalid_rules_file_with_the_same_message(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: X\n    signal: nope\n    window: 5m\n    op: '>'\n    threshold: 1\n")
    check = subprocess.run([sys.executable, "-m", "llmlens.cli", "rules", "check", str(bad)],
                           capture_output=True, text=True, timeout=60)
    serve = subprocess.run([sys.executable, "-m", "llmlens.cli", "serve", "--data-dir", str(tmp_path / "data"),
                            "--http-port", str(free_port()), "--grpc-port", "0", "--rules-file", str(bad)], capture_output=True, text=True, timeout=60)
    assert serve.returncode == 2, serve.stderr
    assert serve.stderr == check.stderr
    assert not (tmp_path / "data").exists()  # refused before the store was opened

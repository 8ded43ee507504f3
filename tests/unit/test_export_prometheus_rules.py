"""`llmlens export prometheus-rules`: a rule file promtool accepts, with conventional names.

The rules return data on a real Prometheus scraping a real server in
tests/integration/test_prometheus_e2e.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from llmlens.export.prometheus_rules import recording_rules, rules_yaml

# Prometheus's recording rule naming: level:metric:operations.
CONVENTIONAL = re.compile(r"^[a-z_]+:[a-z_]+:[a-z0-9_]+$")


def test_promtool_accepts_the_rule_file(tmp_path: Path) -> None:
    assert shutil.which("promtool"), "promtool missing: install Debian's prometheus package (make test does)"
    path = tmp_path / "rules.yml"
    path.write_text(rules_yaml())
    result = subprocess.run(["promtool", "check", "rules", "--lint=all", "--lint-fatal", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(recording_rules())} rules found" in result.stdout


def test_names_follow_level_metric_operations() -> None:
    for rule in recording_rules():
        assert CONVENTIONAL.match(rule["record"]), rule["record"]
        assert ":llm_" in rule["record"]
        level = rule["record"].split(":")[0]
        assert level.startswith("job"), rule["record"]


def test_every_aggregation_keeps_the_job() -> None:
    """The server's series and an app's in-process series of the same calls must not be summed."""
    for rule in recording_rules():
        for group in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            assert "job" in [g.strip() for g in group.split(",")], rule


def test_the_brief_is_covered() -> None:
    records = {rule["record"]: rule for rule in recording_rules()}
    quantiles = {(r["record"], r.get("labels", {}).get("quantile")) for r in recording_rules()}
    latency = "job_model:llm_request_duration_seconds:histogram_quantile"
    assert {(latency, q) for q in ("0.5", "0.95", "0.99")} <= quantiles
    assert "job_model:llm_request_errors_per_requests:ratio_rate5m" in records
    assert "department, app" in records["job_department_app:llm_cost_dollars:increase1h"]["expr"]
    assert "llm_tokens_total" in records["job_model_direction:llm_tokens:rate5m"]["expr"]


def test_further_groups_follow_the_recording_rules() -> None:
    """The alerting rules (prometheus_alerts.py) are appended as their own group."""
    extra = {"name": "alerts", "rules": [{"alert": "X", "expr": "vector(1)"}]}
    groups = yaml.safe_load(rules_yaml([extra]))["groups"]
    assert [g["name"] for g in groups] == ["llmlens-llm-recording", "alerts"]

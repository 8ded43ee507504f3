"""The [alerts] settings: the names the issue fixes, the TOML table, validation, secrets, receivers."""

from __future__ import annotations

import pytest

from llmlens.server.alerts.notify import ReceiverError, parse_receivers
from llmlens.server.alerts.service import build_notifier, external_url, load_all_rules
from llmlens.server.settings import SETTINGS, SettingsError, load_settings


def test_flag_and_environment_names():
    names = {s.name: (s.flag, s.env) for s in SETTINGS if s.section == "alerts"}
    assert names["rules_file"] == ("--rules-file", "LLMLENS_RULES_FILE")
    assert names["rules_interval"] == ("--rules-interval", "LLMLENS_RULES_INTERVAL")
    assert names["evaluate_alerts"] == ("--evaluate-alerts", "LLMLENS_EVALUATE_ALERTS")
    assert names["alertmanager_url"] == ("--alertmanager-url", "LLMLENS_ALERTMANAGER_URL")
    assert names["external_url"] == ("--external-url", "LLMLENS_EXTERNAL_URL")
    assert names["budget_timezone"] == ("--budget-timezone", "LLMLENS_BUDGET_TIMEZONE")
    assert names["daily_budget_usd"] == ("--alerts-daily-budget-usd", "LLMLENS_ALERTS_DAILY_BUDGET_USD")
    assert len({s.key for s in SETTINGS}) == len(SETTINGS)  # no name is taken twice


def test_alerts_table_environment_and_flags(tmp_path):
    config = tmp_path / "llmlens.toml"
    config.write_text('[alerts]\nrules_interval = "1m"\nbudget_timezone = "Europe/Paris"\ndaily_budget_usd = 40\n')
    s = load_settings({"alertmanager_url": "http://am1:9093, http://am2:9093"},
                      env={"LLMLENS_EVALUATE_ALERTS": "false", "LLMLENS_ALERTS_WEBHOOK_SECRET": "k" * 20},
                      config_file=str(config))
    a = s.alerts
    assert (a.interval_s, a.budget_timezone, a.daily_budget_usd, a.evaluate_alerts) == (60, "Europe/Paris", 40.0, False)
    assert a.alertmanager_urls == ["http://am1:9093", "http://am2:9093"]
    assert s.public()["alerts"]["webhook_secret"] == "***"
    assert next(r for r in load_all_rules(s) if r.name == "DailyBudget").amount == 40.0
    assert external_url(s) == "http://127.0.0.1:4318"


@pytest.mark.parametrize(("env", "needle"), [
    ({"LLMLENS_RULES_INTERVAL": "soon"}, "rules_interval"),
    ({"LLMLENS_RULES_INTERVAL": "2h"}, "rules_interval"),
    ({"LLMLENS_BUDGET_TIMEZONE": "Mars/Olympus"}, "budget_timezone"),
    ({"LLMLENS_ALERTS_DAILY_BUDGET_USD": "-5"}, "daily_budget_usd"),
    ({"LLMLENS_ALERTMANAGER_URL": "am:9093"}, "alertmanager_url"),
])
def test_bad_alert_settings_name_the_setting(env, needle):
    with pytest.raises(SettingsError, match=needle):
        load_settings(env=env)


def test_receivers_by_name():
    hooks = parse_receivers("ops=https://a.example/x, https://b.example/y", "webhook", "webhooks")
    assert [(r.name, r.url) for r in hooks] == [("ops", "https://a.example/x"), ("webhook", "https://b.example/y")]
    with pytest.raises(ReceiverError, match="used twice"):
        parse_receivers("a=https://x/1,a=https://x/2", "webhook", "webhooks")
    with pytest.raises(ReceiverError, match="http"):
        parse_receivers("a=ftp://x", "slack", "slack_webhooks")
    s = load_settings(env={"LLMLENS_ALERTS_WEBHOOKS": "ops=https://a.example/x",
                           "LLMLENS_ALERTS_SLACK_WEBHOOKS": "team=https://hooks.slack.example/T",
                           "LLMLENS_ALERTMANAGER_URL": "http://am:9093"})
    assert sorted(build_notifier(s).names) == ["alertmanager", "ops", "team"]


def test_a_rule_notifying_an_unknown_receiver_is_refused():
    from llmlens.server.alerts.rules import RulesError, check_receivers, parse_rules

    rules = parse_rules("rules:\n  - {name: A, signal: cost, window: 1h, op: '>', threshold: 1, notify: [pager]}\n",
                        "rules.yaml")
    with pytest.raises(RulesError, match="rules.yaml:2: rule 'A', field 'notify': unknown receiver 'pager'; "
                                         "configured: alertmanager, ops"):
        check_receivers(rules, ["ops", "alertmanager"])

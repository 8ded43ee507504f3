"""The alerting part of the server, built from settings: its rules, receivers and evaluator, and
the service that starts and stops the evaluator in the app's lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from llmlens.server.alerts.evaluator import Evaluator
from llmlens.server.alerts.notify import Notifier, ReceiverError, parse_receivers
from llmlens.server.alerts.periods import time_zone
from llmlens.server.alerts.rules import Rule, check_receivers, default_rules, load_rules_file, merge_rules
from llmlens.server.services import Service
from llmlens.server.settings import ServerSettings, SettingsError
from llmlens.server.store import Store

log = logging.getLogger("llmlens.alerts")


def load_all_rules(settings: ServerSettings) -> list[Rule]:
    """The default rules (unless turned off) merged with the rules file's; raises RulesError."""
    alerts = settings.alerts
    defaults = default_rules(alerts.daily_budget_usd) if alerts.default_rules else []
    from_file = load_rules_file(alerts.rules_file) if alerts.rules_file else []
    return merge_rules(defaults, from_file)


def build_notifier(settings: ServerSettings) -> Notifier:
    alerts = settings.alerts
    try:
        receivers = (parse_receivers(alerts.webhooks, "webhook", "alerts webhooks")
                     + parse_receivers(alerts.slack_webhooks, "slack", "alerts slack_webhooks"))
    except ReceiverError as exc:
        raise SettingsError(str(exc)) from None
    names = [r.name for r in receivers]
    if len(set(names)) != len(names) or "alertmanager" in names:
        raise SettingsError("alert receivers need distinct names, and 'alertmanager' is taken by alertmanager_url")
    return Notifier(receivers, alerts.alertmanager_urls, webhook_secret=alerts.webhook_secret)


def external_url(settings: ServerSettings) -> str:
    if settings.alerts.external_url:
        return settings.alerts.external_url.rstrip("/")
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.http_port}"


@dataclass
class Alerting:
    """What the API reads: the rules and (when this process evaluates) the evaluator."""

    rules: list[Rule]
    evaluator: Evaluator
    evaluating: bool
    service: Service


def alerting(settings: ServerSettings, store: Store) -> Alerting:
    """Rules, receivers and evaluator from settings; raises RulesError or SettingsError."""
    rules = load_all_rules(settings)
    notifier = build_notifier(settings)
    check_receivers(rules, notifier.names)
    evaluator = Evaluator(store, rules, notifier, interval_s=settings.alerts.interval_s,
                          tz=time_zone(settings.alerts.budget_timezone), external_url=external_url(settings),
                          timeout_s=settings.query_timeout_s)
    evaluating = settings.alerts.evaluate_alerts and bool(rules)

    async def start() -> None:
        if evaluating:
            await evaluator.start()
            log.info("evaluating %d alert rules every %s", len(rules), settings.alerts.rules_interval)

    async def stop() -> None:
        if evaluating:
            await evaluator.stop()
        else:
            await notifier.close()
            evaluator.state.close()

    return Alerting(rules, evaluator, evaluating, Service("alert evaluator", start, stop))

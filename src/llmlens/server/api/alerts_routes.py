"""Alerts and rules, in the shape of Prometheus's own `/api/v1/alerts` and `/api/v1/rules` (so tools
that read those read llmlens too), plus the history of state changes, a mute per rule and the
budgets' figures.

Fields beyond Prometheus's (`rule`, `fingerprint`, `muted`, `signal`, `explore`, ...) are
additions that such tools ignore.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from llmlens.server.alerts.budgets import budget_figures, budgets_of
from llmlens.server.alerts.durations import DurationError, format_duration, parse_duration
from llmlens.server.alerts.evaluator import Evaluator
from llmlens.server.alerts.explore import explore
from llmlens.server.alerts.rules import Rule
from llmlens.server.alerts.service import Alerting
from llmlens.server.alerts.state import FIRING, PENDING, Alert, iso
from llmlens.server.api.security import from_other_site
from llmlens.server.errors import BadParameter
from llmlens.server.query.window import parse_window

router = APIRouter()
FOREVER = datetime(2200, 1, 1, tzinfo=UTC)  # a mute without an end


def prometheus_float(value: float) -> str:
    """A value as Prometheus writes one in its API: the shortest exact `e` form (0.12 -> 1.2e-01)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    for digits in range(17):
        text = f"{value:.{digits}e}"
        if float(text) == value:
            return text
    return f"{value:.17e}"


def _alerting(request: Request) -> Alerting:
    return request.app.state.alerts


async def _current(alerting: Alerting) -> list[Alert]:
    """Alerts as this process evaluates them, or as the evaluating replica stored them (with its mutes)."""
    if alerting.evaluating:
        return list(alerting.evaluator.alerts.values())
    alerting.evaluator.mutes = await alerting.evaluator.state.mutes()
    return await alerting.evaluator.state.load()


def _alert_json(evaluator: Evaluator, alert: Alert, now: datetime) -> dict[str, Any]:
    rule = evaluator.by_name.get(alert.rule)
    labels = evaluator.labels(alert) if rule else {"alertname": alert.rule, **alert.labels}
    return {"labels": labels, "annotations": alert.annotations, "state": alert.state,
            "activeAt": iso(alert.active_at), "value": prometheus_float(alert.value),
            "rule": alert.rule, "fingerprint": alert.fingerprint,
            "firedAt": iso(alert.fired_at) if alert.fired_at else None,
            "muted": evaluator.muted(alert.rule, now), "detail": alert.detail,
            "explore": explore(rule, alert.labels, alert.active_at, evaluator.tz) if rule else None}


@router.get("/api/v1/alerts")
async def alerts(request: Request) -> dict[str, Any]:
    """Pending and firing alerts: labels (alertname, rule labels, group), annotations, state,
    activeAt (when the condition started to hold) and value."""
    alerting = _alerting(request)
    now = datetime.now(UTC)
    active = [a for a in await _current(alerting) if a.state in (PENDING, FIRING)]
    active.sort(key=lambda a: (a.state != FIRING, a.rule, a.active_at))
    return {"status": "success", "data": {"alerts": [_alert_json(alerting.evaluator, a, now) for a in active]}}


@router.get("/api/v1/alerts/history")
async def alerts_history(
    request: Request,
    start: Annotated[str | None, Query(description="RFC 3339 or relative like -24h; default -7d", max_length=64)] = None,
    end: Annotated[str | None, Query(description="RFC 3339 or relative; default now", max_length=64)] = None,
    rule: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 500,
) -> dict[str, Any]:
    """State changes (pending, firing, resolved, inactive), newest first."""
    window = parse_window(start, end, default="-7d")
    events = await _alerting(request).evaluator.state.history(window.start, window.end, rule or None, limit)
    return {"status": "success", "data": {"events": events}}


def _rule_json(alerting: Alerting, rule: Rule, alerts: list[Alert], now: datetime) -> dict[str, Any]:
    evaluator = alerting.evaluator
    health = evaluator.health.get(rule.name)
    mine = [a for a in alerts if a.rule == rule.name and a.state in (PENDING, FIRING)]
    state = FIRING if any(a.state == FIRING for a in mine) else PENDING if mine else "inactive"
    muted_until = evaluator.mutes.get(rule.name)
    return {
        "state": state, "name": rule.name, "query": rule.describe(), "duration": rule.for_s, "keepFiringFor": 0,
        "labels": rule.labels, "annotations": rule.annotations,
        "alerts": [_alert_json(evaluator, a, now) for a in mine],
        "health": health.health if health and alerting.evaluating else "unknown",
        "lastError": health.error if health else "",
        "evaluationTime": round(health.duration_s, 6) if health else 0.0,
        "lastEvaluation": iso(health.last_evaluation) if health and health.last_evaluation else "0001-01-01T00:00:00Z",
        "type": "alerting",
        "signal": rule.signal, "description": rule.measured.description, "window": format_duration(rule.window_s),
        "group_by": list(rule.group_by), "filters": rule.filters, "notify": list(rule.notify or []) or None,
        "muted": bool(muted_until and muted_until > now),
        "mutedUntil": iso(muted_until) if muted_until and muted_until > now else None,
        "source": rule.source, "line": rule.line,
    }


@router.get("/api/v1/rules")
async def rules(request: Request) -> dict[str, Any]:
    """Every rule with its state, alerts, health, last error and last evaluation (time and duration),
    in groups by the file they come from."""
    alerting = _alerting(request)
    now = datetime.now(UTC)
    alerts = await _current(alerting)
    evaluator = alerting.evaluator
    groups: dict[str, list[Rule]] = {}
    for rule in alerting.rules:
        groups.setdefault(rule.source, []).append(rule)
    return {"status": "success", "data": {"groups": [
        {"name": source, "file": "" if source == "default rules" else source, "interval": evaluator.interval_s,
         "limit": 0, "rules": [_rule_json(alerting, r, alerts, now) for r in group],
         "evaluationTime": round(evaluator.last_duration_s, 6),
         "lastEvaluation": iso(evaluator.last_evaluation) if evaluator.last_evaluation else "0001-01-01T00:00:00Z"}
        for source, group in groups.items()]}}


def _not_from_other_site(request: Request) -> None:
    """A page of another site must not mute alerts through a user's browser (cross-site request
    forgery), with or without an API key; clients other than browsers send no such headers."""
    if from_other_site(dict(request.scope.get("headers") or ())):
        raise HTTPException(403, "muting is refused from a page of another site")


def _known_rule(alerting: Alerting, name: str) -> Rule:
    for rule in alerting.rules:
        if rule.name == name:
            return rule
    raise HTTPException(404, f"no alert rule named {name!r}")


@router.post("/api/v1/rules/{name}/mute")
async def mute_rule(
    request: Request, name: str,
    duration: Annotated[str | None, Query(alias="for", description="how long, like 1h; default until unmuted",
                                          max_length=32)] = None,
) -> dict[str, Any]:
    """Mute a rule: it is still evaluated and shown, but sends nothing (to any receiver) until
    the time is up or it is unmuted."""
    _not_from_other_site(request)
    alerting = _alerting(request)
    _known_rule(alerting, name)
    until = FOREVER
    if duration:
        try:
            until = datetime.now(UTC) + timedelta(seconds=parse_duration(duration))
        except DurationError as exc:
            raise BadParameter("for", str(exc)) from None
    await alerting.evaluator.mute(name, until)
    return {"status": "success", "data": {"rule": name, "mutedUntil": iso(until)}}


@router.post("/api/v1/rules/{name}/unmute")
async def unmute_rule(request: Request, name: str) -> dict[str, Any]:
    """Unmute a rule; alerts still firing are then notified."""
    _not_from_other_site(request)
    alerting = _alerting(request)
    _known_rule(alerting, name)
    await alerting.evaluator.mute(name, None)
    return {"status": "success", "data": {"rule": name, "mutedUntil": None}}


@router.get("/api/v1/budgets")
async def budgets(request: Request) -> dict[str, Any]:
    """Each budget the rules watch (`budget`, `budget_burn_rate` and `spend_forecast` rules; rules on
    the same period, amount, filters and group_by make one): its calendar period in the budget time
    zone, amount, and per group the spend so far, the burn rate (USD/h over `burn_window`), the spend
    that rate reaches by the period's end, and the forecast for the period's end (alerts/forecast.py)."""
    alerting = _alerting(request)
    evaluator = alerting.evaluator
    now = datetime.now(UTC)
    found = [await budget_figures(evaluator.store, b, now, evaluator.tz, evaluator.timeout_s)
             for b in budgets_of(alerting.rules)]
    return {"status": "success", "data": {"now": iso(now), "timezone": str(evaluator.tz), "budgets": found}}

"""The evaluator: every rule, every interval, one query each; per group the states
inactive -> pending -> firing -> resolved, as Prometheus's alerting rules have them.

A group whose condition holds becomes pending, and firing once it has held for the rule's `for`
(at once when `for` is 0); a firing group whose condition no longer holds (or that has no value
any more) is resolved; a pending one simply ends. A rule whose query fails or runs past its
time limit is reported (`/api/v1/rules`: health "err" and the error, and the log) and its alerts
keep their state until it answers again. State changes are written to the store as they happen,
and messages go out from what the state says is owed (notify.py), so a restart carries on
without losing or repeating one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from llmlens.server.alerts.notify import RESEND_DELAY_S, RESOLVED_RESEND_S, Message, Notifier, generator_url
from llmlens.server.alerts.rules import Rule
from llmlens.server.alerts.signals import Measurement, measure
from llmlens.server.alerts.state import (
    FIRING,
    INACTIVE,
    PENDING,
    RESOLVED,
    Alert,
    AlertStateStore,
    Transition,
    fingerprint,
    iso,
)
from llmlens.server.alerts.templates import render
from llmlens.server.store import Store

log = logging.getLogger("llmlens.alerts")


@dataclass
class RuleHealth:
    """How a rule's last evaluation went (the `health`, `lastError`, ... of /api/v1/rules)."""

    last_evaluation: datetime | None = None
    duration_s: float = 0.0
    error: str = ""

    @property
    def health(self) -> str:
        return "unknown" if self.last_evaluation is None else ("err" if self.error else "ok")


class Evaluator:
    def __init__(self, store: Store, rules: Sequence[Rule], notifier: Notifier, *, interval_s: float,
                 tz: ZoneInfo, external_url: str, timeout_s: float,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.rules = list(rules)
        self.by_name = {r.name: r for r in rules}
        self.notifier = notifier
        self.interval_s = interval_s
        self.tz = tz
        self.external_url = external_url
        self.timeout_s = timeout_s
        self.clock = clock
        self.state = AlertStateStore(store)
        self.alerts: dict[str, Alert] = {}  # by fingerprint
        self.health: dict[str, RuleHealth] = {r.name: RuleHealth() for r in rules}
        self.mutes: dict[str, datetime] = {}
        self.last_evaluation: datetime | None = None
        self.last_duration_s = 0.0
        self._in_flight: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # --- lifecycle -----------------------------------------------------------------------

    async def load(self) -> None:
        """Take up the stored state (alerts of rules no longer defined end here)."""
        gone = []
        for alert in await self.state.load():
            if alert.rule in self.by_name:
                self.alerts[alert.fingerprint] = alert
            else:
                gone.append(alert)
        await self.state.save([], self.clock(), gone)
        self.mutes = await self.state.mutes()

    async def start(self) -> None:
        await self.load()
        self._task = asyncio.create_task(self._loop(), name="alert evaluator")

    async def stop(self) -> None:
        if self._task:
            self._stopping = True
            # Python 3.11's wait_for swallows a cancel that meets a query finishing (gh-86296): cancel
            # until the task ends (the flag ends the loop after that round in any case).
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.notifier.close()
        self.state.close()

    async def _loop(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            try:
                await self.evaluate()
            except Exception:  # the store may be away for a while; the next round tries again
                log.exception("alert evaluation failed")
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    # --- one round -----------------------------------------------------------------------

    async def evaluate(self, now: datetime | None = None) -> None:
        """Evaluate every rule once, record what changed, send what is owed."""
        now = now or self.clock()
        started = time.perf_counter()
        changed: dict[str, Alert] = {}
        gone: list[Alert] = []
        transitions: list[Transition] = []
        for rule in self.rules:
            found = await self._measure(rule, now)
            if found is not None:
                self._apply(rule, found, now, changed, gone, transitions)
        for fp, alert in list(self.alerts.items()):  # resolved ones are kept a while for Alertmanager
            if (alert.state == RESOLVED and alert.resolved_at and (now - alert.resolved_at).total_seconds()
                    > RESOLVED_RESEND_S and not any(key[0] == fp for key in self._in_flight)):
                del self.alerts[fp]
                changed.pop(fp, None)
                gone.append(alert)
        await self.state.save(list(changed.values()), now, gone)
        await self.state.record(transitions)
        self.mutes = await self.state.mutes()
        await self._dispatch(now)
        self.last_evaluation = now
        self.last_duration_s = time.perf_counter() - started

    async def _measure(self, rule: Rule, now: datetime) -> list[Measurement] | None:
        health = self.health[rule.name]
        started = time.perf_counter()
        limit = min(self.timeout_s, self.interval_s)
        error = ""
        found = None
        try:
            found = await asyncio.wait_for(measure(self.store, rule, now, self.tz, limit), timeout=limit + 1)
        except TimeoutError:
            error = f"the query ran past its time limit of {limit:g} s"
        except Exception as exc:  # any store failure: reported on the rule, never a skipped rule
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
        if error and error != health.error:
            log.error("alert rule %s cannot be evaluated: %s", rule.name, error)
        elif not error and health.error:
            log.warning("alert rule %s evaluates again", rule.name)
        health.last_evaluation, health.duration_s, health.error = now, time.perf_counter() - started, error
        return found

    def _apply(self, rule: Rule, found: list[Measurement], now: datetime, changed: dict[str, Alert],
               gone: list[Alert], transitions: list[Transition]) -> None:
        def move(alert: Alert, to: str) -> None:
            transitions.append(Transition(now, rule.name, alert.labels, alert.state, to, alert.value,
                                          alert.annotations))
            alert.state = to
            changed[alert.fingerprint] = alert

        holding = set()
        for m in found:
            if not rule.holds(m.value):
                continue
            fp = fingerprint(rule.name, m.labels)
            holding.add(fp)
            alert = self.alerts.get(fp)
            if alert is None or alert.state == RESOLVED:
                alert = self.alerts[fp] = Alert(rule.name, m.labels, INACTIVE, m.value, active_at=now)
            alert.value, alert.detail = m.value, m.detail
            alert.annotations = {k: render(v, {**rule.filters, **rule.labels, **m.labels}, m.value)
                                 for k, v in rule.annotations.items()}
            if alert.state == INACTIVE:
                move(alert, PENDING if rule.for_s else FIRING)
            if alert.state == PENDING and (now - alert.active_at).total_seconds() >= rule.for_s:
                move(alert, FIRING)
            if alert.state == FIRING and alert.fired_at is None:
                alert.fired_at = now
        for fp, alert in list(self.alerts.items()):
            if alert.rule != rule.name or fp in holding:
                continue
            if alert.state == PENDING:
                move(alert, INACTIVE)
                del self.alerts[fp]
                changed.pop(fp, None)
                gone.append(alert)
            elif alert.state == FIRING:
                alert.resolved_at = now
                move(alert, RESOLVED)

    # --- notifications -------------------------------------------------------------------

    def labels(self, alert: Alert) -> dict[str, str]:
        rule = self.by_name[alert.rule]
        return {"alertname": alert.rule, **rule.labels, **alert.labels}

    def message(self, alert: Alert, status: str) -> Message:
        return Message(rule=alert.rule, status=status, labels=self.labels(alert), annotations=alert.annotations,
                       value=alert.value, starts_at=alert.fired_at or alert.active_at,
                       ends_at=alert.resolved_at if status == RESOLVED else None, fingerprint=alert.fingerprint,
                       generator_url=generator_url(self.external_url, alert.rule, alert.fingerprint))

    def muted(self, rule: str, now: datetime) -> bool:
        until = self.mutes.get(rule)
        return until is not None and until > now

    async def _dispatch(self, now: datetime) -> None:
        to_alertmanager: list[tuple[Alert, dict[str, Any]]] = []
        marked: list[Alert] = []
        for alert in self.alerts.values():
            rule = self.by_name[alert.rule]
            if self.muted(alert.rule, now):
                continue
            owed = FIRING if alert.state == FIRING else RESOLVED if alert.state == RESOLVED else None
            if owed == RESOLVED and alert.notified != FIRING:
                owed = None  # its firing message never went out: no resolve message either
            key = (alert.fingerprint, owed or "")
            if owed and alert.notified != owed and key not in self._in_flight:
                receivers = self.notifier.chosen(rule.notify)
                if receivers:
                    self._in_flight.add(key)
                    self.notifier.deliver(self.message(alert, owed), receivers, self._delivered)
                else:
                    alert.notified = owed
                    marked.append(alert)
            if self.notifier.wants_alertmanager(rule.notify) and self._alertmanager_due(alert, now):
                to_alertmanager.append((alert, self._alertmanager_alert(alert, now)))
        if marked:
            await self.state.save(marked, now)
        if to_alertmanager and await self.notifier.alertmanager([body for _, body in to_alertmanager]):
            for alert, _ in to_alertmanager:
                alert.sent_to_alertmanager = now

    def _alertmanager_due(self, alert: Alert, now: datetime) -> bool:
        """Prometheus's needsSending: never pending; resolved at once and then with the firing
        ones, once per resend delay, for 15 minutes after resolving."""
        if alert.state == PENDING:
            return False
        sent = alert.sent_to_alertmanager
        if alert.state == RESOLVED:
            if alert.resolved_at is None or (now - alert.resolved_at).total_seconds() > RESOLVED_RESEND_S:
                return False
            if sent is None or alert.resolved_at > sent:
                return True
        return sent is None or (now - sent).total_seconds() >= RESEND_DELAY_S

    def _alertmanager_alert(self, alert: Alert, now: datetime) -> dict[str, Any]:
        if alert.state == RESOLVED and alert.resolved_at:
            ends = alert.resolved_at
        else:  # "allow for two Eval or Alertmanager send failures", as Prometheus says
            ends = now + timedelta(seconds=4 * max(self.interval_s, RESEND_DELAY_S))
        return {"labels": self.labels(alert), "annotations": alert.annotations,
                "startsAt": iso(alert.fired_at or alert.active_at), "endsAt": iso(ends),
                "generatorURL": generator_url(self.external_url, alert.rule, alert.fingerprint)}

    async def _delivered(self, message: Message) -> None:
        self._in_flight.discard((message.fingerprint, message.status))
        alert = self.alerts.get(message.fingerprint)
        if alert is None:
            return
        alert.notified = message.status
        try:
            await self.state.save([alert], self.clock())
        except Exception:
            log.exception("could not record that alert %s was notified", alert.rule)

    # --- mutes ---------------------------------------------------------------------------

    async def mute(self, rule: str, until: datetime | None) -> None:
        """Mute a rule until a time; None unmutes it."""
        await self.state.set_mute(rule, until, self.clock())
        if until is None:
            self.mutes.pop(rule, None)
        else:
            self.mutes[rule] = until

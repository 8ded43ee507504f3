"""Alert state, history and mutes, kept in the store's tables (schema 006) so that a restarted
server carries on where it stopped: pending alerts keep counting toward `for`, firing ones stay
firing, and what was already notified is not notified again."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llmlens.server.query.window import rfc3339, sql_time
from llmlens.server.store import Store

PENDING, FIRING, RESOLVED, INACTIVE = "pending", "firing", "resolved", "inactive"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ROWS_PER_INSERT = 200  # a rule grouped by user may change thousands of groups at once


def iso(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as Alertmanager and the API write times."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """Stable id of one rule's group (its labels)."""
    text = json.dumps([rule, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Alert:
    """One group of one rule that is pending, firing, or recently resolved."""

    rule: str
    labels: dict[str, str]  # the group's labels (group_by keys) only
    state: str
    value: float
    active_at: datetime  # when the condition started to hold
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    notified: str = ""  # the last state (firing/resolved) whose message every receiver got
    annotations: dict[str, str] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    sent_to_alertmanager: datetime | None = None  # in memory: a restart just re-sends, as Prometheus does

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.labels)


@dataclass(frozen=True)
class Transition:
    at: datetime
    rule: str
    labels: dict[str, str]
    from_state: str
    to_state: str
    value: float
    annotations: dict[str, str]


class AlertStateStore:
    """Reads and writes the three tables. Writes run on one thread of their own (chDB wants a
    connection per thread, and state changes are few)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmlens-alerts")

    async def _execute(self, sql: str, params: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self.store.backend.execute, sql, params)

    async def load(self) -> list[Alert]:
        rows = await self.store.fetch(
            "SELECT Rule, Labels, State, Value, ActiveAt, FiredAt, ResolvedAt, Notified, Annotations "
            "FROM llmlens_alert_state FINAL WHERE State != 'inactive'")
        return [Alert(rule=r["Rule"], labels=json.loads(r["Labels"]), state=r["State"], value=float(r["Value"]),
                      active_at=_time(r["ActiveAt"]), fired_at=_time(r["FiredAt"]),
                      resolved_at=_time(r["ResolvedAt"]), notified=r["Notified"],
                      annotations=json.loads(r["Annotations"])) for r in rows]

    async def save(self, alerts: Sequence[Alert], now: datetime, gone: Sequence[Alert] = ()) -> None:
        """Write the current form of `alerts`, and `gone` ones as inactive."""
        rows = [(a, a.state) for a in alerts] + [(a, INACTIVE) for a in gone]
        for chunk in range(0, len(rows), ROWS_PER_INSERT):
            await self._save(rows[chunk:chunk + ROWS_PER_INSERT], now)

    async def _save(self, rows: Sequence[tuple[Alert, str]], now: datetime) -> None:
        values, params = [], {"now": sql_time(now)}
        for i, (a, state) in enumerate(rows):
            values.append(f"({{r{i}:String}}, {{f{i}:String}}, {{l{i}:String}}, {{s{i}:String}}, {{v{i}:Float64}}, "
                          f"{{a{i}:DateTime64(6)}}, {{fa{i}:DateTime64(6)}}, "
                          f"{{ra{i}:DateTime64(6)}}, {{n{i}:String}}, {{an{i}:String}}, {{now:DateTime64(6)}})")
            params.update({f"r{i}": a.rule, f"f{i}": a.fingerprint, f"l{i}": json.dumps(a.labels),
                           f"s{i}": state, f"v{i}": _finite(a.value), f"a{i}": sql_time(a.active_at),
                           f"fa{i}": _nullable_time(a.fired_at), f"ra{i}": _nullable_time(a.resolved_at),
                           f"n{i}": a.notified, f"an{i}": json.dumps(a.annotations)})
        await self._execute(
            "INSERT INTO llmlens_alert_state (Rule, Fingerprint, Labels, State, Value, ActiveAt, FiredAt, ResolvedAt, "
            "Notified, Annotations, UpdatedAt) VALUES " + ", ".join(values), params)

    async def record(self, transitions: Sequence[Transition]) -> None:
        for chunk in range(0, len(transitions), ROWS_PER_INSERT):
            await self._record(transitions[chunk:chunk + ROWS_PER_INSERT])

    async def _record(self, transitions: Sequence[Transition]) -> None:
        values, params = [], {}
        for i, t in enumerate(transitions):
            values.append(f"({{t{i}:DateTime64(6)}}, {{r{i}:String}}, {{f{i}:String}}, {{l{i}:String}}, "
                          f"{{fs{i}:String}}, {{ts{i}:String}}, {{v{i}:Float64}}, {{an{i}:String}})")
            params.update({f"t{i}": sql_time(t.at), f"r{i}": t.rule, f"f{i}": fingerprint(t.rule, t.labels),
                           f"l{i}": json.dumps(t.labels), f"fs{i}": t.from_state, f"ts{i}": t.to_state,
                           f"v{i}": _finite(t.value), f"an{i}": json.dumps(t.annotations)})
        await self._execute(
            "INSERT INTO llmlens_alert_history (Timestamp, Rule, Fingerprint, Labels, FromState, ToState, Value, "
            "Annotations) VALUES " + ", ".join(values), params)

    async def history(self, start: datetime, end: datetime, rule: str | None, limit: int) -> list[dict[str, Any]]:
        where = "Timestamp >= {start:DateTime64(6)} AND Timestamp <= {end:DateTime64(6)}"
        params: dict[str, Any] = {"start": sql_time(start), "end": sql_time(end), "limit": limit}
        if rule:
            where += " AND Rule = {rule:String}"
            params["rule"] = rule
        rows = await self.store.fetch(
            "SELECT Timestamp, Rule, Fingerprint, Labels, FromState, ToState, Value, Annotations "
            f"FROM llmlens_alert_history WHERE {where} ORDER BY Timestamp DESC LIMIT {{limit:UInt32}}", params)
        return [{"at": rfc3339(r["Timestamp"]), "rule": r["Rule"], "fingerprint": r["Fingerprint"],
                 "labels": json.loads(r["Labels"]), "from": r["FromState"], "to": r["ToState"],
                 "value": float(r["Value"]), "annotations": json.loads(r["Annotations"])} for r in rows]

    async def mutes(self) -> dict[str, datetime]:
        rows = await self.store.fetch("SELECT Rule, MutedUntil FROM llmlens_alert_mutes FINAL")
        out = {}
        for r in rows:
            until = _time(r["MutedUntil"])
            if until:
                out[r["Rule"]] = until
        return out

    async def set_mute(self, rule: str, until: datetime | None, now: datetime) -> None:
        """Mute `rule` until a time (None: unmute)."""
        await self._execute(
            "INSERT INTO llmlens_alert_mutes (Rule, MutedUntil, UpdatedAt) "
            "VALUES ({r:String}, {u:DateTime64(6)}, {now:DateTime64(6)})",
            {"r": rule, "u": sql_time(until or _EPOCH), "now": sql_time(now)})

    def close(self) -> None:
        self._writer.shutdown(wait=True)


def _time(value: Any) -> datetime | None:
    """A stored time; 1970 (the column's "never") as None."""
    if value is None:
        return None
    found = datetime.fromisoformat(str(value).replace(" ", "T")).replace(tzinfo=UTC)
    return None if found <= _EPOCH else found


def _nullable_time(value: datetime | None) -> str:
    return sql_time(value or _EPOCH)


def _finite(value: float) -> float:
    return value if value == value and abs(value) != float("inf") else 0.0

"""Delivering alerts: Alertmanager (its v2 API), JSON webhooks and Slack incoming webhooks.

Alertmanager gets what Prometheus sends it: every firing alert, re-sent at most once a minute
with `endsAt` = now + 4 x max(interval, 1 min), and each resolved one with `endsAt` in the past,
re-sent for 15 minutes; grouping, silences and routing are then Alertmanager's. Webhooks and
Slack get one message per state change (firing, then resolved), retried with exponential
backoff; the evaluator records a message as sent only when every receiver has it (or was given
up on), so a restart neither loses nor repeats one.

Webhook body (`version` 1), POSTed as JSON:

    {"version": "1", "receiver": "ops", "status": "firing" | "resolved",
     "alert": {"name", "labels" (alertname, rule labels, group labels), "annotations", "value",
               "startsAt", "endsAt" (null while firing), "fingerprint", "generatorURL"},
     "sentAt": RFC 3339}

with headers `X-Llmlens-Delivery` (one id per message, the same on each retry) and, when a
webhook secret is set, `X-Llmlens-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from llmlens.server.alerts.state import iso

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("llmlens.alerts")

ALERTMANAGER = "alertmanager"
RESEND_DELAY_S = 60.0  # Prometheus's --rules.alert.resend-delay
RESOLVED_RESEND_S = 15 * 60.0  # Prometheus's resolvedRetention
SIGNATURE_HEADER = "X-Llmlens-Signature-256"
DELIVERY_HEADER = "X-Llmlens-Delivery"


class ReceiverError(ValueError):
    """A receiver setting cannot be read."""


@dataclass(frozen=True)
class Receiver:
    name: str
    kind: str  # "webhook" or "slack"
    url: str


def parse_receivers(text: str | None, kind: str, setting: str) -> list[Receiver]:
    """`name=url,name2=url2` (a bare URL is named after its kind) -> receivers."""
    out: list[Receiver] = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, url = item.partition("=")
        if not sep or name.startswith(("http://", "https://")):
            name, url = kind, item
        name, url = name.strip(), url.strip()
        if not url.startswith(("http://", "https://")):
            raise ReceiverError(f"{setting}: {name!r} needs an http:// or https:// URL")
        if any(r.name == name for r in out):
            raise ReceiverError(f"{setting}: the receiver name {name!r} is used twice")
        out.append(Receiver(name, kind, url))
    return out


@dataclass(frozen=True)
class Message:
    """One state change of one alert, as every receiver gets it."""

    rule: str
    status: str  # "firing" or "resolved"
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    generator_url: str

    def alert_json(self) -> dict[str, Any]:
        return {"name": self.rule, "labels": self.labels, "annotations": self.annotations, "value": self.value,
                "startsAt": iso(self.starts_at), "fingerprint": self.fingerprint,
                "endsAt": iso(self.ends_at) if self.ends_at else None,
                "generatorURL": self.generator_url}


def webhook_body(message: Message, receiver: str, now: datetime) -> dict[str, Any]:
    return {"version": "1", "receiver": receiver, "status": message.status, "alert": message.alert_json(),
            "sentAt": iso(now)}


def slack_body(message: Message) -> dict[str, Any]:
    """Slack's incoming-webhook format: a text line, and an attachment coloured by status."""
    group = ", ".join(f"{k}={v}" for k, v in message.labels.items() if k not in ("alertname", "severity"))
    head = f"[{message.status.upper()}] {message.rule}" + (f" ({group})" if group else "")
    summary = message.annotations.get("summary") or message.annotations.get("description") or ""
    fields = [{"title": k, "value": v, "short": True} for k, v in message.labels.items() if k != "alertname"]
    fields.append({"title": "value", "value": f"{message.value:.4g}", "short": True})
    return {"text": f"{head}: {summary}" if summary else head,
            "attachments": [{"color": "#d63232" if message.status == "firing" else "#2eb886", "title": head,
                             "title_link": message.generator_url, "text": summary, "fields": fields}]}


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def generator_url(external_url: str, rule: str, fingerprint: str) -> str:
    """The llmlens UI page of one alert."""
    return f"{external_url.rstrip('/')}/alerts?rule={quote(rule)}&alert={fingerprint}"


class Notifier:
    """Sends messages to the configured receivers; Alertmanager batches go through `alertmanager()`."""

    def __init__(self, receivers: Sequence[Receiver], alertmanager_urls: Sequence[str], *,
                 webhook_secret: str | None = None, timeout_s: float = 10.0, attempts: int = 6,
                 backoff_s: float = 1.0) -> None:
        self.receivers = {r.name: r for r in receivers}
        self.alertmanager_urls = [u.rstrip("/") for u in alertmanager_urls]
        self.secret = webhook_secret
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._timeout_s = timeout_s
        self._http: httpx.AsyncClient | None = None  # made on the first send: most servers never send
        self._tasks: set[asyncio.Task[None]] = set()
        self._am_failing: set[str] = set()

    @property
    def _client(self) -> httpx.AsyncClient:
        # httpx (with httpcore, and the CLI libraries httpx imports when installed) is imported here,
        # not at start-up: a third of a second of the server's start (benchmarks/server_footprint.py).
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False)
        return self._http

    @property
    def names(self) -> list[str]:
        """Every receiver a rule's `notify` may name."""
        return [*self.receivers, *([ALERTMANAGER] if self.alertmanager_urls else [])]

    def chosen(self, notify: Sequence[str] | None) -> list[Receiver]:
        """The webhook and Slack receivers of a rule (None: all)."""
        return [r for name, r in self.receivers.items() if notify is None or name in notify]

    def wants_alertmanager(self, notify: Sequence[str] | None) -> bool:
        return bool(self.alertmanager_urls) and (notify is None or ALERTMANAGER in notify)

    def deliver(self, message: Message, receivers: Sequence[Receiver],
                done: Callable[[Message], Awaitable[None] | None]) -> None:
        """Send `message` to each receiver in the background; call `done(message)` once all have it
        or were given up on."""
        async def run() -> None:
            delivery = str(uuid.uuid4())
            await asyncio.gather(*(self._send(r, message, delivery) for r in receivers))
            result = done(message)
            if asyncio.iscoroutine(result):
                await result

        task = asyncio.create_task(run(), name=f"notify {message.rule} {message.status}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, receiver: Receiver, message: Message, delivery: str) -> bool:
        import httpx

        now = datetime.now(UTC)
        body_json = slack_body(message) if receiver.kind == "slack" else webhook_body(message, receiver.name, now)
        body = json.dumps(body_json, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", DELIVERY_HEADER: delivery}
        if self.secret and receiver.kind == "webhook":
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), 60.0))
            try:
                response = await self._client.post(receiver.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return True
            problem = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                break  # the receiver refuses this message; sending it again will not help
        log.error("alert %s (%s) not delivered to %s %r after %d tries: %s", message.rule, message.status,
                  receiver.kind, receiver.name, attempt + 1, problem)
        return False

    async def alertmanager(self, alerts: Sequence[dict[str, Any]]) -> bool:
        """POST alerts to every Alertmanager; True if all took them. Failures are logged once per outage."""
        if not alerts or not self.alertmanager_urls:
            return True
        import httpx

        ok = True
        for url in self.alertmanager_urls:
            try:
                response = await self._client.post(f"{url}/api/v2/alerts", json=list(alerts))
                problem = "" if response.is_success else f"HTTP {response.status_code}: {response.text[:300]}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                ok = False
                if url not in self._am_failing:
                    log.error("Alertmanager %s does not take alerts: %s", url, problem)
                self._am_failing.add(url)
            elif url in self._am_failing:
                log.warning("Alertmanager %s takes alerts again", url)
                self._am_failing.discard(url)
        return ok

    async def close(self, wait_s: float = 5.0) -> None:
        """Give messages under way a moment to finish, then stop."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=wait_s)
        for task in set(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.aclose()

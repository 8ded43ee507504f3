"""The evaluator's state machine on a real embedded store, delivering to a real local webhook
receiver: pending -> firing after `for`, resolve, a restart that neither loses nor repeats a
message, a failing rule reported (and the others still evaluated), mute, and retries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from llmlens.server.alerts.evaluator import Evaluator
from llmlens.server.alerts.notify import Notifier, Receiver
from llmlens.server.alerts.rules import Rule, parse_rules
from llmlens.server.store import Store, open_backend
from tests.alert_seed import llm_call, reference_now, score, write
from tests.webhook_receiver import WebhookReceiver

NOW = reference_now()
SECRET = "webhook-secret-for-tests"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(open_backend(data_dir=str(tmp_path_factory.mktemp("chdb") / "data")))
    yield s
    s.close()


@pytest.fixture
def receiver():
    with WebhookReceiver() as r:
        yield r


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def evaluator(store: Store, rules: list[Rule], receiver: WebhookReceiver, clock: Clock) -> Evaluator:
    notifier = Notifier([Receiver("hook", "webhook", receiver.url + "/hook"),
                         Receiver("team", "slack", receiver.url + "/slack")], [],
                        webhook_secret=SECRET, backoff_s=0.05)
    return Evaluator(store, rules, notifier, interval_s=30, tz=ZoneInfo("UTC"), external_url="http://llmlens.test",
                     timeout_s=10, clock=clock)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def error_rule(app: str, name: str, for_: str = "2m") -> Rule:
    return parse_rules(f"""
rules:
  - name: {name}
    signal: error_rate
    window: 10m
    group_by: [model]
    filters: {{app: {app}}}
    op: ">"
    threshold: 0.05
    for: {for_}
    labels: {{severity: critical}}
    annotations: {{summary: "error rate of {{{{model}}}} is {{{{value | percent}}}}"}}
""", "rules.yaml")[0]


def test_pending_firing_resolved_and_a_restart_that_does_not_renotify(store, receiver):
    app, name = "app-" + uuid.uuid4().hex[:8], "Errors" + uuid.uuid4().hex[:6]
    write(store, [llm_call(NOW - timedelta(seconds=30), app=app, model="m1", error=i < 5) for i in range(10)]
          + [llm_call(NOW - timedelta(seconds=30), app=app, model="m2") for _ in range(10)])
    clock = Clock(NOW)
    hook = lambda: receiver.messages("/hook")  # noqa: E731

    async def first_process() -> None:
        ev = evaluator(store, [error_rule(app, name)], receiver, clock)
        await ev.load()
        await ev.evaluate()
        [alert] = ev.alerts.values()
        assert (alert.state, alert.labels, alert.value) == ("pending", {"model": "m1"}, 0.5)
        clock.advance(minutes=1)
        await ev.evaluate()
        assert alert.state == "pending"
        clock.advance(minutes=1)  # `for` has now held for 2 minutes
        await ev.evaluate()
        assert alert.state == "firing" and alert.fired_at == clock.now
        await until(lambda: len(hook()) == 1 and len(receiver.messages("/slack")) == 1)
        await until(lambda: alert.notified == "firing")
        await ev.stop()

    asyncio.run(first_process())
    [message] = hook()
    body = message["json"]
    assert body["version"] == "1" and body["receiver"] == "hook" and body["status"] == "firing"
    alert = body["alert"]
    assert alert["labels"] == {"alertname": name, "severity": "critical", "model": "m1"}
    assert alert["annotations"] == {"summary": "error rate of m1 is 50%"}
    assert alert["value"] == 0.5 and alert["endsAt"] is None
    assert alert["generatorURL"].startswith(f"http://llmlens.test/alerts?rule={name}&alert=")
    expected = "sha256=" + hmac.new(SECRET.encode(), message["body"], hashlib.sha256).hexdigest()
    assert message["headers"]["X-Llmlens-Signature-256"] == expected
    slack = receiver.messages("/slack")[0]["json"]
    assert slack["text"].startswith(f"[FIRING] {name} (model=m1)") and slack["attachments"][0]["color"] == "#d63232"

    async def second_process() -> None:
        ev = evaluator(store, [error_rule(app, name)], receiver, clock)
        await ev.load()  # a new process: the state comes from the store
        [alert] = ev.alerts.values()
        assert (alert.state, alert.notified) == ("firing", "firing")
        clock.advance(minutes=1)
        await ev.evaluate()
        await asyncio.sleep(0.5)
        assert len(hook()) == 1  # still firing, already notified: nothing new
        clock.advance(minutes=10)  # the errors left the window: no value, so resolved
        await ev.evaluate()
        assert alert.state == "resolved"
        await until(lambda: len(hook()) == 2)
        await until(lambda: alert.notified == "resolved")
        await ev.evaluate()
        await asyncio.sleep(0.3)
        assert len(hook()) == 2  # one message per state change
        history = await ev.state.history(NOW - timedelta(hours=1), clock.now, name, 100)
        assert [(e["from"], e["to"]) for e in reversed(history)] == [
            ("inactive", "pending"), ("pending", "firing"), ("firing", "resolved")]
        await ev.stop()

    asyncio.run(second_process())
    resolved = hook()[1]["json"]
    assert resolved["status"] == "resolved" and resolved["alert"]["endsAt"] is not None
    assert resolved["alert"]["fingerprint"] == body["alert"]["fingerprint"]


def test_a_failing_rule_is_reported_and_the_others_still_run(store, receiver):
    app = "app-" + uuid.uuid4().hex[:8]
    write(store, [llm_call(NOW - timedelta(seconds=10), app=app, cost=3.0)],
          [score(NOW - timedelta(seconds=10), app=app, name="helpful", value=0.2)])
    rules = parse_rules(f"""
rules:
  - {{name: LowQuality{app[4:]}, signal: quality_score, score: helpful, window: 5m, op: "<", threshold: 0.5,
      filters: {{app: {app}}}}}
  - {{name: Spend{app[4:]}, signal: cost, window: 5m, op: ">", threshold: 1, filters: {{app: {app}}}}}
""", "rules.yaml")
    clock = Clock(NOW)

    async def scenario() -> None:
        ev = evaluator(store, rules, receiver, clock)
        await ev.load()
        store.backend.execute("RENAME TABLE llm_scores TO llm_scores_away")
        try:
            await ev.evaluate()
        finally:
            store.backend.execute("RENAME TABLE llm_scores_away TO llm_scores")
        quality, spend = (ev.health[r.name] for r in rules)
        assert quality.health == "err" and "llm_scores" in quality.error
        assert spend.health == "ok" and spend.error == ""
        assert [a.rule for a in ev.alerts.values()] == [rules[1].name]  # the other rule fired
        await ev.evaluate()
        assert quality.health == "ok" and {a.rule for a in ev.alerts.values()} == {r.name for r in rules}
        await ev.stop()

    asyncio.run(scenario())


def test_pending_that_stops_early_ends_quietly_and_mute_holds_messages_back(store, receiver):
    app = "app-" + uuid.uuid4().hex[:8]
    write(store, [llm_call(NOW - timedelta(seconds=30), app=app, error=True) for _ in range(3)])
    brief, muted = error_rule(app, "Brief" + app[4:], "5m"), error_rule(app, "Muted" + app[4:], "0s")
    clock = Clock(NOW)

    async def scenario() -> None:
        ev = evaluator(store, [brief, muted], receiver, clock)
        await ev.load()
        await ev.mute(muted.name, NOW + timedelta(hours=1))
        await ev.evaluate()
        states = {a.rule: a.state for a in ev.alerts.values()}
        assert states == {brief.name: "pending", muted.name: "firing"}  # `for: 0s` fires at once
        await asyncio.sleep(0.5)
        assert receiver.messages() == []  # pending is never sent; muted sends nothing
        await ev.mute(muted.name, None)
        clock.advance(minutes=1)
        await ev.evaluate()
        await until(lambda: len(receiver.messages("/hook")) == 1)
        assert receiver.messages("/hook")[0]["json"]["alert"]["name"] == muted.name
        clock.advance(minutes=10)  # errors out of the window before Brief's 5 minutes were up
        await ev.evaluate()
        assert brief.name not in {a.rule for a in ev.alerts.values()}
        history = await ev.state.history(NOW - timedelta(hours=1), clock.now, brief.name, 10)
        assert [(e["from"], e["to"]) for e in reversed(history)] == [("inactive", "pending"), ("pending", "inactive")]
        await ev.stop()

    asyncio.run(scenario())


def test_a_failing_receiver_is_retried_with_one_delivery_id(store, receiver):
    app = "app-" + uuid.uuid4().hex[:8]
    write(store, [llm_call(NOW - timedelta(seconds=30), app=app, error=True) for _ in range(3)])
    receiver.fail_next = 2
    clock = Clock(NOW)

    async def scenario() -> None:
        ev = evaluator(store, [error_rule(app, "Retried" + app[4:], "0s")], receiver, clock)
        await ev.load()
        await ev.evaluate()
        await until(lambda: len(receiver.messages()) == 2)  # webhook and Slack, after two 503s between them
        await until(lambda: all(a.notified == "firing" for a in ev.alerts.values()))
        await ev.stop()

    asyncio.run(scenario())
    assert receiver.fail_next == 0
    deliveries = {m["headers"]["X-Llmlens-Delivery"] for m in receiver.messages()}
    assert len(deliveries) == 1  # both receivers got the one message, however many tries it took
    assert json.loads(receiver.messages("/hook")[0]["body"])["status"] == "firing"


def test_a_rule_whose_query_runs_past_its_time_is_reported(store, receiver):
    """Every reader of the store is held by a slow query, so the rule's query waits past its limit."""
    app = "app-" + uuid.uuid4().hex[:8]
    rule = error_rule(app, "Slow" + app[4:])
    clock = Clock(NOW)

    async def scenario() -> None:
        ev = evaluator(store, [rule], receiver, clock)
        ev.timeout_s = 0.5
        await ev.load()
        busy = [asyncio.ensure_future(store.fetch("SELECT sleep(2) AS s")) for _ in range(store._readers._max_workers)]
        await asyncio.sleep(0.1)
        await ev.evaluate()
        health = ev.health[rule.name]
        assert health.health == "err" and health.error == "the query ran past its time limit of 0.5 s"
        await asyncio.gather(*busy)
        await ev.evaluate()
        assert health.health == "ok"
        await ev.stop()

    asyncio.run(scenario())


def test_alertmanager_gets_firing_alerts_resent_each_minute_and_resolved_ones_for_15_minutes(store, receiver):
    """The resend cadence Prometheus keeps (checked against a recording HTTP endpoint here; the
    integration test delivers to a real Alertmanager)."""
    app = "app-" + uuid.uuid4().hex[:8]
    write(store, [llm_call(NOW - timedelta(seconds=30), app=app, error=True) for _ in range(3)])
    rule = error_rule(app, "ToAm" + app[4:], "0s")
    clock = Clock(NOW)
    posts = lambda: receiver.messages("/api/v2/alerts")  # noqa: E731

    async def scenario() -> None:
        notifier = Notifier([], [receiver.url])
        ev = Evaluator(store, [rule], notifier, interval_s=30, tz=ZoneInfo("UTC"), external_url="http://x",
                       timeout_s=10, clock=clock)
        await ev.load()
        await ev.evaluate()  # fires: sent at once
        clock.advance(seconds=30)
        await ev.evaluate()  # within the resend delay: not sent
        clock.advance(seconds=30)
        await ev.evaluate()  # a minute after: sent again
        assert len(posts()) == 2
        first, second = (p["json"][0] for p in posts())
        assert first["labels"] == {"alertname": rule.name, "severity": "critical", "model": "m1"}
        assert first["endsAt"] == (NOW + timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # 4 x 1 min
        assert second["endsAt"] == (NOW + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert first["startsAt"] == second["startsAt"]
        clock.advance(minutes=10)  # the errors left the window: resolved, sent at once
        await ev.evaluate()
        resolved_at = clock.now
        assert posts()[-1]["json"][0]["endsAt"] == resolved_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        sent = len(posts())
        for _ in range(16):  # re-sent once a minute for 15 minutes, then dropped
            clock.advance(minutes=1)
            await ev.evaluate()
        assert len(posts()) - sent == 15
        assert all(p["json"][0]["endsAt"] == posts()[-1]["json"][0]["endsAt"] for p in posts()[sent:])
        assert ev.alerts == {}
        await ev.stop()

    asyncio.run(scenario())


def test_a_budget_per_user_keeps_hundreds_of_groups_across_a_restart(store, receiver):
    app = "app-" + uuid.uuid4().hex[:8]
    write(store, [llm_call(NOW - timedelta(minutes=5), app=app, cost=2.0 if i % 3 else 0.5, user=f"user-{i}")
                  for i in range(450)])
    [rule] = parse_rules(f"rules:\n  - {{name: Users{app[4:]}, signal: budget, period: day, amount: 1, "
                         f"group_by: [user], filters: {{app: {app}}}}}\n", "rules.yaml")
    clock = Clock(NOW)

    async def scenario() -> None:
        first = Evaluator(store, [rule], Notifier([], []), interval_s=30, tz=ZoneInfo("UTC"),
                          external_url="http://x", timeout_s=10, clock=clock)
        await first.load()
        await first.evaluate()
        assert len(first.alerts) == 300  # the users over their $1, the others not
        await first.stop()
        again = Evaluator(store, [rule], Notifier([], []), interval_s=30, tz=ZoneInfo("UTC"),
                          external_url="http://x", timeout_s=10, clock=clock)
        await again.load()
        assert {a.labels["user"] for a in again.alerts.values()} == {f"user-{i}" for i in range(450) if i % 3}
        assert {a.state for a in again.alerts.values()} == {"firing"}
        await again.stop()

    asyncio.run(scenario())


def test_stop_ends_the_loop_when_a_cancel_is_swallowed(store, receiver):
    """Python 3.11's asyncio.wait_for drops a cancel that meets its inner task finishing (gh-86296;
    the evaluator's queries run under it): one round eating the cancel must not keep the server
    from stopping."""
    ev = evaluator(store, [error_rule("stop-app", "StopRule")], receiver, Clock(NOW))
    rounds = 0

    async def evaluate_swallowing_one_cancel(now: datetime | None = None) -> None:
        nonlocal rounds
        rounds += 1
        try:
            await asyncio.sleep(1.0 if rounds == 1 else 0.05)
        except asyncio.CancelledError:
            if rounds > 1:
                raise  # only the first round loses its cancel, as wait_for may

    async def scenario() -> None:
        ev.evaluate = evaluate_swallowing_one_cancel  # type: ignore[method-assign]
        ev.interval_s = 0.01
        await ev.start()
        await asyncio.sleep(0.2)  # in the first round
        done, _ = await asyncio.wait({asyncio.ensure_future(ev.stop())}, timeout=10)
        assert done, "stop() did not return: the evaluator loop kept running"
        assert ev._task is not None and ev._task.done()

    asyncio.run(scenario())

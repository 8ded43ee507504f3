"""The Alerts page in a real headless Chromium, against a real server evaluating a rules file every
second: error spans sent over OTLP make a rule fire for real (and its notification reach a local
webhook receiver, whose link is the page's deep link); another rule stays pending; a budget rule
feeds the budget panel of the Alerts and Costs pages. The page runs under the server's
Content-Security-Policy; the page fixture fails a test on any violation or JavaScript error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.integration.otlp_requests import llm_attrs, make_span, post, trace_request
from tests.server_process import ServerProcess
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.browser

API_KEY = "alerts-page-test-api-key"
RULES = """\
rules:
  - name: ChatErrors
    signal: error_rate
    window: 15m
    group_by: [model]
    op: ">"
    threshold: 0.2
    for: 0s
    labels: {severity: critical}
    annotations: {summary: "error rate of {{model}} is {{value | percent}}"}
  - name: SlowChats
    signal: latency_p95
    window: 15m
    group_by: [model]
    op: ">"
    threshold: 0
    for: 1h
  - name: DailySpend
    signal: budget
    period: day
    amount: 0.02
    threshold: 0.5
  - name: DailySpendBurn
    signal: budget_burn_rate
    period: day
    amount: 0.02
    window: 30m
"""
FAILING, HEALTHY = "gpt-4o-mini", "gpt-4o"


@dataclass
class AlertsServer:
    server: ServerProcess
    error_traces: set[str]  # hex trace ids of the failed gpt-4o-mini calls
    generator_url: str  # the link of ChatErrors' firing notification


def api(server: ServerProcess, path: str, **params: Any) -> Any:
    answer = httpx.get(server.url + path, params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


@pytest.fixture(scope="module")
def alerts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertsServer]:
    folder = tmp_path_factory.mktemp("alerts-ui")
    rules = folder / "rules.yaml"
    rules.write_text(RULES)
    with WebhookReceiver() as receiver:
        server = ServerProcess(folder / "data", extra_args=[
            "--rules-file", str(rules), "--rules-interval", "1s", "--no-alerts-default-rules",
            "--alerts-webhooks", f"ops={receiver.url}/hook", "--retention-days", "3650"])
        server.start()
        try:
            failing = [make_span(f"chat {FAILING}", attrs=llm_attrs(FAILING, 1000, 500), error=i < 4, duration_ms=800)
                       for i in range(10)]
            healthy = [make_span(f"chat {HEALTHY}", attrs=llm_attrs(HEALTHY, 1000, 500), duration_ms=400)
                       for i in range(6)]
            answer = post(server.url, "traces", trace_request(failing + healthy, service="alerts-ui"))
            assert answer.status_code == 200, answer.text
            # The budget rules fire too (the spend is over their $0.02): ChatErrors' message is the one.
            chat_errors = lambda m: m["json"]["alert"]["name"] == "ChatErrors"  # noqa: E731
            receiver.wait_for(lambda got: any(map(chat_errors, got)), timeout=60)
            [fired] = [m for m in receiver.messages() if chat_errors(m)]
            assert fired["json"]["status"] == "firing" and fired["json"]["alert"]["labels"]["model"] == FAILING
            yield AlertsServer(server, {s.trace_id.hex() for s in failing if s.status.code == 2},
                               fired["json"]["alert"]["generatorURL"])
        finally:
            server.kill()


def open_alerts(page, server: ServerProcess, query: str = "") -> None:
    page.goto(f"{server.url}/alerts{query}")
    page.wait_for_selector("body[data-ready='ok']")


def after_render(page, action) -> None:
    before = int(page.evaluate("document.body.dataset.renders || '0'"))
    action()
    # A function, not an expression: Playwright evaluates an expression with eval(), which the CSP forbids.
    page.wait_for_function(f"() => Number(document.body.dataset.renders || 0) > {before} && document.body.dataset.ready")


def test_a_real_firing_alert_is_shown_with_value_since_and_links(page, alerts_server: AlertsServer) -> None:
    server = alerts_server.server
    firing = [a for a in api(server, "/api/v1/alerts")["alerts"] if a["state"] == "firing"]
    assert sorted((a["rule"], a["labels"].get("model")) for a in firing) == [
        ("ChatErrors", FAILING), ("DailySpend", None), ("DailySpendBurn", None)]
    firing = [a for a in firing if a["rule"] == "ChatErrors"]
    open_alerts(page, server)
    assert page.locator("nav a[data-nav='alerts']").get_attribute("aria-current") == "page"
    row = page.locator("[data-testid=alerts-table] tr[data-rule=ChatErrors]")
    assert row.get_attribute("data-state") == "firing"
    assert row.get_attribute("data-fingerprint") == firing[0]["fingerprint"]
    assert row.locator("td[data-col=group]").inner_text() == f"model={FAILING}"  # severity is the rule's, not the group's
    assert row.locator("td[data-col=value]").inner_text() == "0.4"
    assert row.locator("td[data-col=summary]").inner_text() == f"error rate of {FAILING} is 40%"
    assert re.search(r"\d{2} \w{3} \d{4}, \d{2}:\d{2}:\d{2}", row.locator("td[data-col=since]").inner_text())
    # SlowChats holds for both models but waits an hour before firing: pending, listed after the firing one.
    pending = page.locator("[data-testid=alerts-table] tr[data-state=pending]")
    assert sorted(pending.evaluate_all("rows => rows.map((r) => r.dataset.rule)")) == ["SlowChats", "SlowChats"]
    rules = page.locator("[data-testid=rules-table] tbody tr")
    assert rules.evaluate_all("rows => rows.map((r) => [r.dataset.rule, r.dataset.state, r.dataset.health])") == [
        ["ChatErrors", "firing", "ok"], ["SlowChats", "pending", "ok"], ["DailySpend", "firing", "ok"],
        ["DailySpendBurn", "firing", "ok"]]
    evaluated = page.locator("[data-testid=rules-table] tr[data-rule=ChatErrors] td[data-col=health]").inner_text()
    assert re.search(r"\d{2}:\d{2}:\d{2}", evaluated)
    history = page.locator("[data-testid=history-table] tr[data-rule=ChatErrors][data-to=firing]")
    assert history.count() == 1
    # Title counts what fires: ChatErrors, and both budget rules (the spend is well over $0.01).
    assert page.title().startswith("(3) Alerts")


def test_the_links_lead_to_the_failed_traces_and_the_filtered_overview(page, alerts_server: AlertsServer) -> None:
    server = alerts_server.server
    open_alerts(page, server)
    row = page.locator("[data-testid=alerts-table] tr[data-rule=ChatErrors]")
    row.locator("a[data-link=traces]").click()
    page.wait_for_url(re.compile(r"/traces\?"))
    page.wait_for_selector("body[data-ready='ok']")
    query = parse_qs(urlparse(page.url).query)
    assert query["q"] == [f'{{ model = "{FAILING}" && status = error }}'] and query["range"] == ["custom"]
    shown = set(page.locator("[data-testid=traces-table] tbody tr").evaluate_all(
        "rows => rows.map((r) => r.dataset.traceId)"))
    assert shown == alerts_server.error_traces  # the four failed calls, none of the healthy ones
    open_alerts(page, server)
    page.locator("[data-testid=alerts-table] tr[data-rule=ChatErrors] a[data-link=overview]").click()
    page.wait_for_url(re.compile(r"/\?"))
    page.wait_for_selector("body[data-ready='ok']")
    assert page.locator("#f-model").input_value() == FAILING
    assert page.locator("[data-testid=tile-errors]").get_attribute("data-value") == "4"
    assert page.locator("[data-testid=tile-successes]").get_attribute("data-value") == "6"


def test_mute_and_unmute_a_rule(page, alerts_server: AlertsServer) -> None:
    server = alerts_server.server
    open_alerts(page, server)
    row = page.locator("[data-testid=rules-table] tr[data-rule=ChatErrors]")
    assert row.get_attribute("data-muted") == "false"
    row.locator("select").select_option("1h")
    after_render(page, lambda: row.locator("button[data-action=mute]").click())
    assert row.get_attribute("data-muted") == "true"
    assert "muted until" in row.locator("[data-testid=muted]").inner_text()
    rule = next(r for g in api(server, "/api/v1/rules")["groups"] for r in g["rules"] if r["name"] == "ChatErrors")
    assert rule["muted"] is True and rule["mutedUntil"] is not None
    alert = page.locator("[data-testid=alerts-table] tr[data-rule=ChatErrors]")
    assert "muted" in alert.locator("td[data-col=state]").inner_text()
    after_render(page, lambda: row.locator("button[data-action=unmute]").click())
    assert row.get_attribute("data-muted") == "false"
    rule = next(r for g in api(server, "/api/v1/rules")["groups"] for r in g["rules"] if r["name"] == "ChatErrors")
    assert rule["muted"] is False


def test_the_budget_panel_shows_the_apis_figures_on_alerts_and_costs(page, alerts_server: AlertsServer) -> None:
    server = alerts_server.server
    [budget] = api(server, "/api/v1/budgets")["budgets"]
    assert budget["rules"] == ["DailySpend", "DailySpendBurn"] and budget["amount_usd"] == 0.02
    assert budget["burn_window"] == "30m"
    [group] = budget["groups"]
    costs = httpx.get(server.url + "/api/v1/costs", params={"start": budget["period_start"]}, timeout=30).json()
    spent = costs["totals"]["cost_usd"]
    assert spent > 0 and group["spent_usd"] == pytest.approx(spent, abs=1e-6)
    # All the spend is in the last 30 minutes: the burn rate is twice it per hour.
    assert group["burn_rate_usd_per_hour"] == pytest.approx(2 * spent, rel=1e-4)
    for path in ("/alerts", "/costs"):
        page.goto(server.url + path)
        row = page.locator("[data-testid=budgets-table] tbody tr")
        row.wait_for()
        assert row.count() == 1
        assert float(row.get_attribute("data-spent")) == group["spent_usd"]
        assert float(row.get_attribute("data-rate")) == group["burn_rate_usd_per_hour"]
        # The forecast moves with the time left in the day: seconds apart, it is the same to 0.1%.
        assert float(row.get_attribute("data-forecast")) == pytest.approx(group["forecast_usd"], rel=1e-3)
        assert float(row.get_attribute("data-amount")) == 0.02
        text = row.inner_text()
        assert "DailySpend, DailySpendBurn" in text and "$0.02" in text
        assert f"${group['spent_usd']:.3g}" in text


def test_the_notifications_link_highlights_its_rule_and_alert(page, alerts_server: AlertsServer) -> None:
    server = alerts_server.server
    link = urlparse(alerts_server.generator_url)
    assert f"{link.scheme}://{link.netloc}" == server.url and link.path == "/alerts"
    assert parse_qs(link.query)["rule"] == ["ChatErrors"]
    page.goto(alerts_server.generator_url)
    page.wait_for_selector("body[data-ready='ok']")
    fingerprint = parse_qs(link.query)["alert"][0]
    marked = page.locator("tr.highlight")
    assert set(marked.evaluate_all("rows => rows.map((r) => r.closest('[id]').id)")) == {"active", "rules", "history"}
    assert page.locator("#active tr.highlight").get_attribute("data-fingerprint") == fingerprint
    assert page.locator("#rules tr.highlight").get_attribute("data-rule") == "ChatErrors"
    assert page.locator("#active tr[data-rule=SlowChats].highlight").count() == 0
    # The history is that rule's only, with a way back to every rule's.
    assert set(page.locator("#history tbody tr").evaluate_all("rows => rows.map((r) => r.dataset.rule)")) == {"ChatErrors"}
    assert page.locator("[data-testid=all-history]").is_visible()
    # An alert that is no longer active is said to be so, and an unknown rule too.
    open_alerts(page, server, "?rule=ChatErrors&alert=0123456789abcdef")
    assert page.locator("[data-testid=alert-gone]").is_visible()
    open_alerts(page, server, "?rule=NoSuchRule")
    assert "No rule named NoSuchRule" in page.locator("[data-testid=unknown-rule]").inner_text()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Behind an API key, with the default rules: the page mutes through the login's session cookie."""
    server = ServerProcess(Path(tmp_path_factory.mktemp("alerts-keyed")) / "data",
                           extra_args=["--retention-days", "3650"], env={"LLMLENS_API_KEY": API_KEY}).start()
    yield server
    server.kill()


def test_mute_works_behind_an_api_key_after_logging_in(page, keyed_server: ServerProcess) -> None:
    page.goto(f"{keyed_server.url}/alerts")
    page.wait_for_url(re.compile(r"/login"))
    page.fill("input[name=key]", API_KEY)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(re.compile(r"/alerts"))
    page.wait_for_selector("body[data-ready='ok']")
    assert page.locator("[data-testid=no-alerts]").is_visible()
    budget = page.locator("[data-testid=budgets-table] tbody tr")
    assert budget.get_attribute("data-rules") == "DailyBudget,DailyBudgetBurnRate"
    assert float(budget.get_attribute("data-spent")) == 0.0 and float(budget.get_attribute("data-amount")) == 100
    row = page.locator("[data-testid=rules-table] tr[data-rule=CostAnomaly]")
    row.locator("select").select_option("")  # until unmuted
    after_render(page, lambda: row.locator("button[data-action=mute]").click())
    assert row.get_attribute("data-muted") == "true"
    assert row.locator("[data-testid=muted]").inner_text() == "muted until unmuted"
    rules = httpx.get(keyed_server.url + "/api/v1/rules", headers={"authorization": f"Bearer {API_KEY}"}, timeout=30)
    assert next(r for g in rules.json()["data"]["groups"] for r in g["rules"] if r["name"] == "CostAnomaly")["muted"]


def test_every_control_has_a_label_and_the_page_fits_1280px(page, alerts_server: AlertsServer) -> None:
    open_alerts(page, alerts_server.server)
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter((el) => !el.labels?.length && !el.getAttribute('aria-label')).map((el) => el.id || el.name)""")
    assert unlabeled == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1280

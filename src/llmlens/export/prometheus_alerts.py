"""llmlens alert rules as Prometheus alerting rules over the /metrics names.

Each rule whose signal has a PromQL form (server/alerts/catalogue.py) becomes one alerting rule:
the form with the rule's filters as label matchers, its group_by as `sum by (...)`, its window,
then `op threshold`; `for`, labels and annotations carried over. The alert's labels are then the
ones llmlens's own evaluator sends (alertname, the rule's labels, the group's labels), so the two
engines' alerts for one group are one alert in Alertmanager.

Where the store and PromQL would disagree, the rule carries a guard: a group with fewer calls (or
spans) in the window than `min_samples`, or none at all, has no value in llmlens; PromQL reads a
counter that did not move as 0, so a counting rule that 0 would trip (`request_rate < 1`) keeps
only groups that had samples (`and sum by (...) (increase(...)) >= N`).

A rule that cannot be written so is listed with the reason: calendar periods, forecasts and
baselines, keys that are no label of the metrics (user, provider, ...), values spelled differently
on /metrics (span_kind).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from llmlens.server.alerts.catalogue import PromQL
from llmlens.server.alerts.durations import format_duration
from llmlens.server.alerts.rules import Rule, RulesError, default_rules, load_rules_file, merge_rules
from llmlens.server.alerts.templates import template_literal, to_prometheus
from llmlens.server.metrics.families import REGISTERED, Family

__all__ = ["RulesError", "alerting_rule", "rules_file_text", "translate"]

GROUP = "llmlens-alerts"
FAMILIES: dict[str, Family] = {f.name: f for f in REGISTERED}
_METRIC = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{\{")  # a metric name in a form's template
_HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


@dataclass(frozen=True)
class Skipped:
    """A rule with no Prometheus form, and why."""

    rule: str
    signal: str
    reason: str


@dataclass(frozen=True)
class Translation:
    rules: list[dict[str, Any]]  # Prometheus alerting rules, in the order of the llmlens rules
    skipped: list[Skipped]


class _NoForm(Exception):
    """This form cannot express the rule; the message says why."""


def translate(rules: Iterable[Rule], job: str | None = None) -> Translation:
    """Every rule's alerting rule, or the reason it has none. `job`: read only that scrape job's
    series (the llmlens server's: an SDK app exposes the same llm_* families for the same calls)."""
    out: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    for rule in rules:
        try:
            out.append(alerting_rule(rule, job))
        except _NoForm as exc:
            skipped.append(Skipped(rule.name, rule.signal, str(exc)))
    return Translation(out, skipped)


def alerting_rule(rule: Rule, job: str | None = None) -> dict[str, Any]:
    """One Prometheus alerting rule; raises _NoForm naming what cannot be expressed."""
    expr = expression(rule, job)
    constants = {k: v for k, v in {**rule.filters, **rule.labels}.items() if k not in rule.group_by}
    out: dict[str, Any] = {"alert": rule.name, "expr": expr}
    if rule.for_s:
        out["for"] = format_duration(rule.for_s)
    if rule.labels:
        out["labels"] = {k: template_literal(v) for k, v in rule.labels.items()}
    if rule.annotations:
        out["annotations"] = {k: to_prometheus(v, constants) for k, v in rule.annotations.items()}
    return out


def expression(rule: Rule, job: str | None = None) -> str:
    info = rule.info
    if not info.promql:
        raise _NoForm(info.why_no_promql or f"signal {rule.signal!r} has no PromQL form over /metrics")
    if "span_kind" in rule.group_by:
        raise _NoForm("group_by span_kind: /metrics spells kinds SPAN_KIND_SERVER where the store has Server, "
                      "so the alerts' labels would differ from llmlens's")
    reasons = []
    for form in info.promql:
        try:
            return _expression(rule, form, job)
        except _NoForm as exc:
            reasons.append(str(exc))
    raise _NoForm("; ".join(reasons))


def _expression(rule: Rule, form: PromQL, job: str | None) -> str:
    keys = [*rule.filters, *rule.group_by, *(["error_type"] if rule.error_type else [])]
    _check_labels(form.value, keys, "")
    floor = max(1, rule.min_samples)
    guarded = rule.min_samples > 1 or (form.counts and rule.holds(0.0))
    if guarded:
        if form.samples is None:
            raise _NoForm(f"no count of calls by {', '.join(keys) or 'nothing'} to keep groups with "
                          f"at least {floor} calls (min_samples, or a threshold 0 would meet)")
        _check_labels(form.samples, keys, f"counting the samples (min_samples {floor}): ")
    matchers = ([f"job={_quote(job)}"] if job else []) + [
        f"{key}={_quote(_label_value(key, value))}" for key, value in
        sorted({**rule.filters, **({"error_type": rule.error_type} if rule.error_type else {})}.items())]
    # The forms write `{sel}` before further matchers: each matcher ends with a mark that becomes a
    # comma, or nothing before the closing brace (a raw NUL never appears in a JSON-quoted value).
    parts = {"sel": "".join(m + "\0" for m in matchers), "by": ", ".join(rule.group_by),
             "by_le": ", ".join([*rule.group_by, "le"]), "window": format_duration(rule.window_s)}
    expr = f"{form.value.format(**parts)} {rule.op} {_number(rule.threshold)}"
    if guarded:
        expr += f" and {form.samples.format(**parts)} >= {floor}"  # type: ignore[union-attr]
    return expr.replace("\0}", "}").replace("\0", ",")


def _check_labels(template: str, keys: Sequence[str], context: str) -> None:
    for metric in _METRIC.findall(template):
        family = _family(metric)
        missing = [k for k in keys if k not in family.labels]
        if missing:
            raise _NoForm(f"{context}{metric} has no label{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(repr(k) for k in missing)} "
                          f"(its labels: {', '.join(family.labels) or 'none'})")


def _family(metric: str) -> Family:
    if metric in FAMILIES:
        return FAMILIES[metric]
    for suffix in _HISTOGRAM_SERIES:
        base = metric.removesuffix(suffix)
        if base != metric and base in FAMILIES and FAMILIES[base].kind == "histogram":
            return FAMILIES[base]
    raise KeyError(f"{metric} is not a /metrics family")  # a catalogue mistake: tests read every form


def _label_value(key: str, value: str) -> str:
    """A filter's value as /metrics spells it."""
    return f"SPAN_KIND_{value.upper()}" if key == "span_kind" else value


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a PromQL string: Go's escapes, which JSON's are


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def alerting_group(translation: Translation) -> list[dict[str, Any]]:
    """The rule group to append to the rule file; none when no rule translated."""
    return [{"name": GROUP, "rules": translation.rules}] if translation.rules else []


def notes(translation: Translation, total: int) -> list[str]:
    """Comment lines for the rule file: what was translated, and each rule that was not, with why."""
    lines = [f"Alerting rules (group {GROUP}): {len(translation.rules)} of {total} llmlens alert rules."]
    if translation.skipped:
        lines.append("Not expressible in PromQL over the /metrics names (llmlens evaluates them itself):")
        lines += [f"  {s.rule} ({s.signal}): {s.reason}" for s in translation.skipped]
    return lines


def rules_file_text(rules_file: str | None, *, default_rules_on: bool = True,
                    job: str | None = "llmlens") -> tuple[str, list[str]]:
    """The whole rule file of `llmlens export prometheus-rules` (recording rules, then the alerting
    rules) and the names of the rules left out. The rules are the server's: the defaults (unless
    off) merged with the file's; raises RulesError as `llmlens rules check` reports it."""
    from llmlens.export.prometheus_rules import rules_yaml

    # The default daily budget's amount only changes rules that have no PromQL form.
    rules = merge_rules(default_rules(100) if default_rules_on else [],
                        load_rules_file(rules_file) if rules_file else [])
    translation = translate(rules, job)
    text = rules_yaml(alerting_group(translation), notes(translation, len(rules)))
    return text, [s.rule for s in translation.skipped]

"""Alert rules: the YAML file's model, its validation, and the default rule set.

A file holds `rules:`, a list of rules. Validation collects every problem of every rule, each
named by file, line, rule and field, so one `llmlens rules check` run shows all there is to fix;
the server refuses to start on the same problems with the same message.

```yaml
rules:
  - name: HighErrorRate
    signal: error_rate            # catalogue.py lists every signal
    window: 5m
    group_by: [model]
    op: ">"
    threshold: 0.05
    for: 5m
    labels: {severity: critical}
    annotations: {summary: "LLM error rate of {{model}} is {{value | percent}}"}
```
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmlens.server.alerts.catalogue import ANOMALY_BASES, KEYS, SIGNALS, Period, SignalInfo, Source
from llmlens.server.alerts.durations import DurationError, format_duration, parse_duration
from llmlens.server.alerts.templates import check_template
from llmlens.server.errors import ServerError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a Prometheus alert name and label name
RESERVED_LABELS = ("alertname",)
MAX_WINDOW_S = 31 * 86400
ANOMALY_ROLLING_WINDOWS = 24  # the rolling baseline: this many windows before the current one


class RulesError(ServerError, ValueError):
    """A rules file cannot be used; the message lists every problem, one a line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Problem:
    source: str  # file name, or "default rules"
    line: int | None
    rule: str | None  # "rule 'HighErrorRate' (#1)"
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        parts = [p for p in (self.rule, f"field '{self.field}'" if self.field else None) if p]
        return f"{where}: {', '.join(parts)}: {self.message}" if parts else f"{where}: {self.message}"


class RuleSpec(BaseModel):
    """One rule as written; `Rule` is the same once checked and resolved."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    name: str
    signal: str
    window: str | None = None
    filters: dict[str, str] = Field(default_factory=dict)
    group_by: list[str] = Field(default_factory=list)
    op: Literal[">", ">=", "<", "<="] | None = None
    threshold: float | None = None
    for_: str | int = Field("0s", alias="for")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    notify: list[str] | None = None
    min_samples: int = Field(0, ge=0)
    # signal-specific (catalogue.SignalInfo.params says which signal takes which)
    error_type: str | None = None
    score: str | None = None
    period: Period | None = None
    amount: float | None = Field(None, gt=0)
    of: str | None = None


_FIELD_NAMES = {f.alias or name for name, f in RuleSpec.model_fields.items()}


@dataclass(frozen=True)
class Rule:
    """A checked rule, ready to evaluate."""

    name: str
    signal: str
    window_s: int  # 0 where the signal has no window (budget, spend_forecast)
    filters: dict[str, str]
    group_by: tuple[str, ...]
    op: str
    threshold: float
    for_s: int
    labels: dict[str, str]
    annotations: dict[str, str]
    notify: tuple[str, ...] | None  # None: every receiver
    min_samples: int = 0
    error_type: str | None = None
    score: str | None = None
    period: Period | None = None
    amount: float | None = None
    of: str | None = None
    source: str = "default rules"
    line: int | None = None

    @property
    def info(self) -> SignalInfo:
        return SIGNALS[self.signal]

    @property
    def measured(self) -> SignalInfo:
        """The signal whose SQL runs: the anomaly's base, or the rule's own."""
        return SIGNALS[self.of] if self.of else self.info

    @property
    def table(self) -> Source:
        return self.measured.source

    def holds(self, value: float) -> bool:
        return {">": value > self.threshold, ">=": value >= self.threshold,
                "<": value < self.threshold, "<=": value <= self.threshold}[self.op]

    def describe(self) -> str:
        """One line: what the rule computes and compares (the `query` of /api/v1/rules)."""
        args = [f"of={self.of}"] if self.of else []
        args += [f"{k}={v!r}" for k, v in self.filters.items()]
        args += [f"{k}={getattr(self, k)!r}" for k in ("error_type", "score") if getattr(self, k)]
        if self.period:
            args.append(f"period={self.period.value}")
        if self.amount is not None:
            args.append(f"amount={self.amount:g}")
        if self.window_s:
            args.append(f"window={format_duration(self.window_s)}")
        by = f" by ({', '.join(self.group_by)})" if self.group_by else ""
        return f"{self.signal}({', '.join(args)}){by} {self.op} {self.threshold:g}"


# --- reading a file ------------------------------------------------------------------------

def load_rules_file(path: str | Path) -> list[Rule]:
    """Every rule of the file, checked; raises RulesError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError([Problem(str(path), None, None, None, "the rules file does not exist")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([Problem(str(path), None, None, None, f"cannot read the rules file: {exc}")]) from None
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str) -> list[Rule]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise RulesError([Problem(source, line, None, None, f"not valid YAML: {reason}")]) from None
    lines = _line_index(node)
    if data is None:
        data = {"rules": []}
    if not isinstance(data, dict):
        raise RulesError([Problem(source, 1, None, None, "expected a mapping with a 'rules:' list")])
    problems = [Problem(source, lines.get((key,)), None, None, f"unknown top-level key {key!r} (expected 'rules')")
                for key in data if key != "rules"]
    items = data.get("rules")
    if items is None:
        items = []
    if not isinstance(items, list):
        problems.append(Problem(source, lines.get(("rules",)), None, "rules", "expected a list of rules"))
        raise RulesError(problems)
    rules, rule_problems = check_rules(items, source, lambda path: lines.get(("rules", *path)))
    problems += rule_problems
    if problems:
        raise RulesError(problems)
    return rules


def _line_index(node: yaml.Node | None, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """1-based line of every key and item of a composed YAML document, by its path."""
    out: dict[tuple[Any, ...], int] = {}
    if node is None:
        return out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            out.update(_line_index(value, sub))
            out[sub] = key.start_mark.line + 1  # the key's line names the field
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_line_index(item, (*path, i)))
    return out


# --- checking ------------------------------------------------------------------------------

def check_rules(items: Sequence[Any], source: str,
                line_of: Any = lambda path: None) -> tuple[list[Rule], list[Problem]]:
    """Check raw rules (dicts); `line_of((index, field, ...))` gives a line for a path, or None."""
    rules: list[Rule] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        label = f"rule {name!r} (#{index + 1})" if isinstance(name, str) and name else f"rule #{index + 1}"

        def problem(fld: str | None, message: str, *path: Any, _i: int = index, _label: str = label) -> None:
            where = line_of((_i, *path)) if path else None
            where = where or (line_of((_i, fld)) if fld else None) or line_of((_i,))
            problems.append(Problem(source, where, _label, fld, message))

        if not isinstance(item, dict):
            problem(None, "expected a mapping with name, signal, op, threshold, ...")
            continue
        try:
            spec = RuleSpec.model_validate(item)
        except ValidationError as exc:
            for error in exc.errors():
                loc = [str(p) for p in error["loc"]]
                fld = ".".join(loc) if loc else None
                problem(fld, _pydantic_message(error), *error["loc"])
            # The other fields may have problems of their own: check them too, so that one run
            # shows everything there is to fix.
            reported = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            for fld, message in _check_partly(item, reported):
                problem(fld, message, *fld.split("."))
            continue
        found = _check_spec(spec)
        for fld, message in found:
            problem(fld, message, *fld.split("."))
        if found:
            continue
        if spec.name in seen:
            problem("name", f"the name is already used by rule #{seen[spec.name] + 1}")
            continue
        seen[spec.name] = index
        rules.append(_resolve(spec, source, line_of((index,))))
    return rules, problems


def _check_partly(item: Mapping[str, Any], reported: set[str]) -> list[tuple[str, str]]:
    """The problems of a rule's fields that typed correctly, when others did not."""
    valid = {k: v for k, v in item.items() if k not in reported and k in _FIELD_NAMES}
    stand_ins = {"name": "_", "signal": ""}
    try:
        spec = RuleSpec.model_validate({**{k: v for k, v in stand_ins.items() if k not in item}, **valid})
    except ValidationError:
        return []
    if not spec.signal:
        return []
    skipped = reported | {k for k in stand_ins if k not in item}
    return [(f, m) for f, m in _check_spec(spec) if f.split(".")[0] not in skipped]


def _pydantic_message(error: Mapping[str, Any]) -> str:
    kind = error.get("type")
    if kind == "missing":
        return "missing (required)"
    if kind == "extra_forbidden":
        known = ", ".join(f for f in RuleSpec.model_fields if f != "for_") + ", for"
        return f"unknown field (known: {known})"
    if kind == "literal_error" and error["loc"] and error["loc"][0] == "op":
        return f"bad operator {error.get('input')!r}: use one of >, >=, <, <="
    return f"{error['msg']} (got {error.get('input')!r})"


def _check_spec(spec: RuleSpec) -> list[tuple[str, str]]:
    """(field, message) for each problem a typed rule still has."""
    out: list[tuple[str, str]] = []
    if not _NAME.match(spec.name):
        out.append(("name", f"{spec.name!r} is not a valid alert name (letters, digits, _; not starting with a digit)"))
    info = SIGNALS.get(spec.signal)
    if info is None:
        out.append(("signal", f"unknown signal {spec.signal!r}; known: {', '.join(SIGNALS)}"))
        return out
    measured = info
    if info.name == "anomaly":
        if spec.of not in ANOMALY_BASES:
            out.append(("of", f"anomaly needs 'of', one of: {', '.join(ANOMALY_BASES)} (got {spec.of!r})"))
            return out
        measured = SIGNALS[spec.of]
    for param in ("error_type", "score", "period", "amount", "of"):
        allowed = param in info.params and (info.name != "anomaly" or param == "of" or param in measured.params)
        if getattr(spec, param) is not None and not allowed:
            out.append((param, f"not a field of signal {spec.signal!r}"))
    for param in info.required:
        if getattr(spec, param) is None:
            out.append((param, f"signal {spec.signal!r} needs {param!r}"))
    for param in measured.required if measured is not info else ():
        if getattr(spec, param) is None:
            out.append((param, f"signal {measured.name!r} needs {param!r}"))
    if measured.name == "quality_score" and not spec.score and "score" not in spec.group_by:
        out.append(("score", "quality_score needs 'score' (a score name) or group_by: [score]"))
    keys = KEYS[measured.source]
    for key in spec.filters:
        if key not in keys:
            out.append(("filters", f"cannot filter {measured.name} by {key!r}; choose from {', '.join(keys)}"))
    for key in spec.group_by:
        if key not in keys:
            out.append(("group_by", f"cannot group {measured.name} by {key!r}; choose from {', '.join(keys)}"))
    if len(set(spec.group_by)) != len(spec.group_by):
        out.append(("group_by", "a key is listed twice"))
    window_s = _duration(spec.window, "window", out) if spec.window is not None else None
    if info.needs_window and window_s is None and not any(f == "window" for f, _ in out):
        out.append(("window", f"signal {spec.signal!r} needs a window, like 5m"))
    if not info.needs_window and spec.window is not None:
        out.append(("window", f"signal {spec.signal!r} takes no window (it covers its calendar period)"))
    if window_s is not None and not 10 <= window_s <= MAX_WINDOW_S:
        out.append(("window", f"must be between 10s and 31d, got {spec.window}"))
    if info.name == "anomaly" and window_s and 86400 % window_s:
        out.append(("window", f"an anomaly window must divide a day (5m, 15m, 1h, ...), got {spec.window}"))
    _duration(spec.for_, "for", out)
    if spec.op is None and info.default_op is None:
        out.append(("op", "missing (required): one of >, >=, <, <="))
    if spec.threshold is None and info.default_threshold is None:
        out.append(("threshold", "missing (required)"))
    for name in spec.labels:
        if not _NAME.match(name) or name.startswith("__"):
            out.append(("labels", f"{name!r} is not a valid label name"))
        elif name in RESERVED_LABELS or name in spec.group_by:
            out.append(("labels", f"label {name!r} is set by the rule itself (alert name or group_by)"))
    names = [*spec.group_by, *spec.filters, *spec.labels]
    for key, text in spec.annotations.items():
        out += [(f"annotations.{key}", msg) for msg in check_template(text, names)]
    if spec.notify is not None and not spec.notify:
        out.append(("notify", "an empty list would notify nobody; leave it out to notify every receiver"))
    return out


def _duration(value: object, fld: str, out: list[tuple[str, str]]) -> int | None:
    try:
        return parse_duration(value)
    except DurationError as exc:
        out.append((fld, f"bad duration: {exc}"))
        return None


def _resolve(spec: RuleSpec, source: str, line: int | None) -> Rule:
    info = SIGNALS[spec.signal]
    return Rule(
        name=spec.name, signal=spec.signal, window_s=parse_duration(spec.window) if spec.window else 0,
        filters=dict(spec.filters), group_by=tuple(spec.group_by),
        op=spec.op or info.default_op or ">",
        threshold=spec.threshold if spec.threshold is not None else float(info.default_threshold or 0),
        for_s=parse_duration(spec.for_), labels=dict(spec.labels), annotations=dict(spec.annotations),
        notify=tuple(spec.notify) if spec.notify is not None else None, min_samples=spec.min_samples,
        error_type=spec.error_type, score=spec.score, period=spec.period, amount=spec.amount, of=spec.of,
        source=source, line=line,
    )


def check_receivers(rules: Iterable[Rule], receivers: Iterable[str]) -> None:
    """Raise RulesError naming every rule that notifies a receiver the settings do not define."""
    known = set(receivers)
    problems = [Problem(r.source, r.line, f"rule {r.name!r}", "notify",
                        f"unknown receiver {name!r}; configured: {', '.join(sorted(known)) or 'none'}")
                for r in rules for name in r.notify or () if name not in known]
    if problems:
        raise RulesError(problems)


# --- the default rule set --------------------------------------------------------------------

def default_rules(daily_budget_usd: float) -> list[Rule]:
    """The rules every server evaluates unless turned off; a file rule of the same name replaces one."""
    items: list[dict[str, Any]] = [
        {"name": "HighErrorRate", "signal": "error_rate", "window": "5m", "group_by": ["model"], "op": ">",
         "threshold": 0.05, "for": "5m", "min_samples": 10, "labels": {"severity": "critical"},
         "annotations": {"summary": "LLM error rate of {{model}} is {{value | percent}} (over 5% for 5m)"}},
        {"name": "HighLatencyP95", "signal": "latency_p95", "window": "5m", "group_by": ["model"], "op": ">",
         "threshold": 5, "for": "5m", "labels": {"severity": "warning"},
         "annotations": {"summary": "p95 latency of {{model}} is {{value}} s (over 5 s for 5m)"}},
        {"name": "SlowTimeToFirstToken", "signal": "ttft_p95", "window": "5m", "group_by": ["model"], "op": ">",
         "threshold": 3, "for": "5m", "labels": {"severity": "warning"},
         "annotations": {"summary": "p95 time to first token of {{model}} is {{value}} s (over 3 s for 5m)"}},
        {"name": "DailyBudget", "signal": "budget", "period": "day", "amount": daily_budget_usd, "op": ">=",
         "threshold": 0.8, "labels": {"severity": "warning"},
         "annotations": {"summary": f"{{{{value | percent}}}} of today's ${daily_budget_usd:g} LLM budget is spent"}},
        {"name": "DailyBudgetBurnRate", "signal": "budget_burn_rate", "period": "day", "amount": daily_budget_usd,
         "window": "1h", "op": ">=", "threshold": 1.0, "for": "15m", "labels": {"severity": "warning"},
         "annotations": {"summary": f"at the last hour's spend rate, today ends at {{{{value | percent}}}} "
                                   f"of the ${daily_budget_usd:g} LLM budget"}},
        {"name": "QualityDrop", "signal": "anomaly", "of": "quality_score", "window": "1h", "group_by": ["score"],
         "op": "<", "threshold": -5, "for": "30m", "labels": {"severity": "warning"},
         "annotations": {"summary": "quality score {{score}} fell {{value}} MADs below its baseline"}},
        {"name": "UnpricedModelCalls", "signal": "unpriced_requests", "window": "15m", "group_by": ["model"],
         "op": ">", "threshold": 0, "labels": {"severity": "info"},
         "annotations": {"summary": "calls to {{model}} have no price: add it to a prices file"}},
        {"name": "CostAnomaly", "signal": "anomaly", "of": "cost", "window": "1h", "op": ">", "threshold": 5,
         "labels": {"severity": "warning"},
         "annotations": {"summary": "LLM spend in the last hour ({{value}} MADs above its baseline) is unusual"}},
    ]
    rules, problems = check_rules(items, "default rules")
    if problems:  # a bad daily budget amount, say
        raise RulesError(problems)
    return rules


def merge_rules(defaults: Sequence[Rule], from_file: Sequence[Rule]) -> list[Rule]:
    """The defaults, each replaced by a file rule of the same name, then the file's other rules."""
    by_name = {r.name: r for r in from_file}
    merged = [by_name.pop(r.name, r) for r in defaults]
    return merged + [r for r in from_file if r.name in by_name]

"""The queries of exported Grafana dashboards, with Grafana's variables filled in as Grafana would.

Grafana cannot be installed here, so tests run each dashboard query themselves: PromQL on a real
Prometheus (or through promtool's parser), ClickHouse SQL on chDB. This module does Grafana's
part: it finds the targets in the dashboard JSON, puts each template variable's default value in
(`current`; "All" becomes the variable's allValue), and expands the built-in interval variables
and the ClickHouse plugin's macros the way the plugin does (its pkg/macros/macros.go and
CHDatasource.applyConditionalAll, version 4.x).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: str
    ref_id: str
    query: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel!r} / {self.ref_id}"


def targets(board: dict[str, Any]) -> Iterator[Target]:
    for panel in board["panels"]:
        for query in panel.get("targets", []):
            yield Target(board["uid"], panel.get("title", ""), query.get("refId", ""), query)


def prometheus_targets(board: dict[str, Any]) -> list[Target]:
    return [t for t in targets(board) if "expr" in t.query]


def clickhouse_targets(board: dict[str, Any]) -> list[Target]:
    return [t for t in targets(board) if t.query.get("datasource", {}).get("type") == CLICKHOUSE_PLUGIN]


def variable_defaults(board: dict[str, Any],
                      overrides: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Each template variable's value: {"value": ..., "all": bool, "all_value": ...}; `overrides`
    gives some variables another value, as a user picking one would."""
    out = {}
    for var in board.get("templating", {}).get("list", []):
        current = var.get("current") or {}
        value = var.get("query", "") if var.get("type") == "constant" else current.get("value", "")
        is_all = value in ("$__all", ["$__all"])
        out[var["name"]] = {"value": value, "all": is_all, "all_value": var.get("allValue")}
    for name, value in (overrides or {}).items():
        out[name] = {"value": value, "all": False, "all_value": None}
    return out


_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def fill_variables(text: str, board: dict[str, Any], overrides: dict[str, Any] | None = None) -> str:
    """Template variables replaced by their values ($var, ${var}, ${var:format}); "All" is the
    variable's allValue (for Prometheus, a regex)."""
    defaults = variable_defaults(board, overrides)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        fmt = match.group(2) or ""
        if name.startswith("__") or name not in defaults:
            return match.group(0)
        var = defaults[name]
        value = (var["all_value"] or ".*") if var["all"] else var["value"]
        items = value if isinstance(value, list) else [value]
        if fmt == "singlequote":
            return ",".join("'" + str(v).replace("'", "\\'") + "'" for v in items)
        if fmt == "sqlstring":
            return ",".join("'" + str(v).replace("'", "''") + "'" for v in items)
        return str(items[0]) if len(items) == 1 else "(" + "|".join(str(v) for v in items) + ")"

    return _VARIABLE.sub(replace, text)


def promql(expr: str, board: dict[str, Any], *, rate_interval: str = "1m", range_: str = "5m",
           interval: str = "15s") -> str:
    """A dashboard expression as Grafana would send it to Prometheus."""
    text = expr.replace("$__rate_interval", rate_interval).replace("$__range", range_)
    text = text.replace("$__interval", interval)
    return fill_variables(text, board)


def _macro_args(sql: str, open_paren: int) -> tuple[list[str], int]:
    """The comma-separated arguments of a macro call (nested parentheses kept) and the index after ')'."""
    depth, args, start = 0, [], open_paren + 1
    for i in range(open_paren, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(sql[start:i])
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
    raise ValueError(f"unbalanced macro call in {sql!r}")


def clickhouse_sql(sql: str, board: dict[str, Any], *, start_s: int, end_s: int, interval_s: int,
                   overrides: dict[str, Any] | None = None) -> str:
    """A dashboard's ClickHouse SQL as the plugin sends it: $__conditionalAll first (as its frontend
    does), then template variables, then the backend's time macros."""
    defaults = variable_defaults(board, overrides)
    macro = "$__conditionalAll("
    while (at := sql.rfind(macro)) != -1:
        args, end = _macro_args(sql, at + len(macro) - 1)
        var = re.search(r"\$\{?(\w+)", args[1])
        chosen = defaults.get(var.group(1), {}) if var else {}
        phrase = "1=1" if chosen.get("all") or chosen.get("value") == "" else args[0]
        sql = sql[:at] + phrase + sql[end:]
    sql = fill_variables(sql, board, overrides)

    def at(t: int) -> str:
        return f"toDateTime({t})"

    def expand(name: str, replace: Any) -> None:
        nonlocal sql
        pattern = f"$__{name}("
        while (i := sql.find(pattern)) != -1:
            args, end = _macro_args(sql, i + len(pattern) - 1)
            sql = sql[:i] + replace(*[a.strip() for a in args]) + sql[end:]

    expand("timeFilter", lambda col: f"{col} >= {at(start_s)} AND {col} <= {at(end_s)}")
    step = max(interval_s, 1)
    expand("timeInterval", lambda col: f"toStartOfInterval(toDateTime({col}), INTERVAL {step} second)")
    sql = sql.replace("$__fromTime", at(start_s)).replace("$__toTime", at(end_s))
    sql = sql.replace("$__interval_s", str(max(interval_s, 1)))
    if "$__" in sql:
        raise ValueError(f"a macro this helper does not expand is left in {sql!r}")
    return sql

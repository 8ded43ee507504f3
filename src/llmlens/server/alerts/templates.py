"""Annotation templates: `{{model}}`, `{{value}}`, `{{value | percent}}`, `{{value | usd}}`.

Deliberately tiny (names and two formats, no logic) so each template has a direct Prometheus
form: `{{ $labels.model }}`, `{{ $value }}`, `{{ $value | humanizePercentage }}`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*([A-Za-z_]+)\s*)?\}\}")
FORMATS = ("percent", "usd")


def check_template(text: str, names: Iterable[str]) -> list[str]:
    """Problems of a template: unknown names or formats, unclosed braces."""
    known = set(names) | {"value"}
    problems = []
    for match in _PLACEHOLDER.finditer(text):
        name, fmt = match.groups()
        if name not in known:
            problems.append(f"unknown name {{{{{name}}}}} (known here: {', '.join(sorted(known))})")
        if fmt and fmt not in FORMATS:
            problems.append(f"unknown format {fmt!r} in {match.group(0)} (known: {', '.join(FORMATS)})")
        if fmt and name != "value":
            problems.append(f"{match.group(0)}: formats apply to value only")
    if "{{" in _PLACEHOLDER.sub("", text):
        problems.append("a '{{' is not closed as {{name}} or {{value | format}}")
    return problems


def format_value(value: float, fmt: str | None = None) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if fmt == "percent":
        return f"{value * 100:.4g}%"
    if fmt == "usd":
        return f"${value:,.2f}"
    return f"{value:.4g}"


def render(text: str, labels: Mapping[str, str], value: float) -> str:
    def one(match: re.Match[str]) -> str:
        name, fmt = match.groups()
        return format_value(value, fmt) if name == "value" else labels.get(name, "")

    return _PLACEHOLDER.sub(one, text)


def to_prometheus(text: str, constants: Mapping[str, str] | None = None) -> str:
    """The same template in Prometheus's alert template language. `constants` are names whose value
    is known when the rule is written (its filters and labels: Prometheus's `$labels` holds only the
    series' labels); they are written in as text."""
    def one(match: re.Match[str]) -> str:
        name, fmt = match.groups()
        if constants and name in constants:
            return template_literal(constants[name])
        if name != "value":
            return "{{ $labels." + name + " }}"
        return {"percent": "{{ $value | humanizePercentage }}", "usd": '{{ printf "$%.2f" $value }}'}.get(
            fmt or "", "{{ $value }}")

    return _PLACEHOLDER.sub(one, text)


def template_literal(text: str) -> str:
    """Text that a Go template (Prometheus's labels and annotations) prints as it is."""
    return text if "{{" not in text else "{{ " + json.dumps(text) + " }}"

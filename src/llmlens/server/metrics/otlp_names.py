"""OpenTelemetry metric and attribute names in their Prometheus form, as the OTel Collector's Prometheus
exporter writes them (its default, underscore escaping with suffixes; the rules of the OTel
specification's Prometheus compatibility and prometheus/otlptranslator):

- the name split at every character that is not a letter or digit, re-joined with `_`;
- the unit in words appended unless already a word of the name (`s` -> `seconds`, `By` -> `bytes`,
  `m/s` -> `meters_per_second`); unit parts in braces (`{token}`) are annotations and dropped;
- `_total` on monotonic sums (and only there), `_ratio` on gauges of unit `1`;
- a leading digit gets a `_`; attribute names get non-alphanumerics as `_`, and `key_` (or `key`)
  before a leading digit (or a single leading `_`).
"""

from __future__ import annotations

import re

UNIT_WORDS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds", "us": "microseconds",
    "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes", "MiBy": "mebibytes", "GiBy": "gibibytes",
    "TiBy": "tibibytes", "KBy": "kilobytes", "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes",
    "m": "meters", "V": "volts", "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius",
    "Hz": "hertz", "1": "", "%": "percent",
}
PER_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}
_NOT_ALNUM = re.compile(r"[^a-zA-Z0-9]+")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _tokens(text: str) -> list[str]:
    return [t for t in _NOT_ALNUM.split(text) if t]


def _unit_word(unit: str, words: dict[str, str]) -> str:
    unit = unit.strip()
    if not unit or "{" in unit or "}" in unit:
        return ""
    return "_".join(_tokens(words.get(unit, unit)))


def metric_name(name: str, unit: str, *, monotonic_sum: bool = False, gauge: bool = False) -> str:
    """The Prometheus name of an OTel metric (without the _bucket/_sum/_count of histograms)."""
    tokens = _tokens(name)
    main, _, per = unit.partition("/")
    main_word = _unit_word(main, UNIT_WORDS)
    if main_word and main_word not in tokens:
        tokens.append(main_word)
    per_word = _unit_word(per, PER_UNIT_WORDS)
    if per_word and per_word not in tokens:
        tokens += ["per", per_word]
    if monotonic_sum:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if gauge and unit == "1":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    out = "_".join(tokens)
    return "_" + out if out[:1].isdigit() else out


def label_name(name: str) -> str:
    """The Prometheus name of an OTel attribute."""
    if not name:
        return name
    out = _LABEL_INVALID.sub("_", name)
    if out[0].isdigit():
        return "key_" + out
    if out.startswith("_") and not out.startswith("__"):
        return "key" + out
    return out

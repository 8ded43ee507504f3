"""Durations as rule files and Prometheus write them: `30s`, `5m`, `1h30m`, `7d`, `0s`."""

from __future__ import annotations

import re

_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
# Prometheus's own grammar (model.ParseDuration) less y and ms: alert windows are whole seconds.
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class DurationError(ValueError):
    pass


def parse_duration(text: object) -> int:
    """Seconds of a duration like `90s`, `5m`, `1h30m`, `7d` (units w, d, h, m, s, largest first)."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise DurationError(f"expected a duration like 30s, 5m, 1h, got {text!r}")
    if isinstance(text, int):  # YAML `for: 0`
        if text == 0:
            return 0
        raise DurationError(f"a duration needs a unit (s, m, h, d, w), got {text!r}")
    match = _DURATION.match(text.strip())
    if not text.strip() or not match:
        raise DurationError(f"expected a duration like 30s, 5m, 1h30m, 7d, got {text!r}")
    return sum(int(part) * seconds for part, (_, seconds) in zip(match.groups(), _UNITS, strict=True) if part)


def format_duration(seconds: int) -> str:
    """The shortest form: 300 -> `5m`, 5400 -> `1h30m`, 0 -> `0s`."""
    if seconds <= 0:
        return "0s"
    out = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)

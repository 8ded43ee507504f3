"""What `llmlens export grafana` needs to know about the user's set-up, and its checks.

Kept apart from the export itself so the CLI can show defaults and check flags without
importing the dashboards' library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

CLICKHOUSE_PASSWORD_VARIABLE = "LLMLENS_CLICKHOUSE_PASSWORD"
_JOB = re.compile(r'^[^"\\\s]+$')


class ExportError(ValueError):
    """A setting the export cannot use; the message names the flag."""


@dataclass(frozen=True)
class GrafanaSetup:
    """Where Grafana finds things. Defaults suit Grafana, Prometheus, ClickHouse and llmlens on one host."""

    prometheus_url: str = "http://localhost:9090"
    clickhouse_url: str = "http://localhost:8123/default"
    llmlens_url: str = "http://localhost:4318"
    job: str = "llmlens"
    dashboards_path: str = "/var/lib/grafana/dashboards/llmlens"


@dataclass(frozen=True)
class ClickHouseAddress:
    protocol: str  # the plugin's "http": the same interface `llmlens serve --clickhouse-url` uses
    secure: bool
    host: str
    port: int
    username: str
    database: str


def parse_clickhouse_url(url: str) -> ClickHouseAddress:
    """`http[s]://[user@]host[:port][/database]`, the shape `llmlens serve --clickhouse-url` takes."""
    parts = _http_url(url, "--clickhouse-url")
    if parts.password is not None:
        raise ExportError("--clickhouse-url must not hold a password: Grafana reads it from its environment "
                          f"variable {CLICKHOUSE_PASSWORD_VARIABLE} (see docs/grafana.md)")
    database = unquote(parts.path.strip("/")) or "default"
    if "/" in database:
        raise ExportError(f"--clickhouse-url: the path must be one database name, got {database!r}")
    secure = parts.scheme == "https"
    return ClickHouseAddress(protocol="http", secure=secure, host=parts.hostname or "",
                             port=parts.port or (8443 if secure else 8123),
                             username=unquote(parts.username or "") or "default", database=database)


def _http_url(url: str, flag: str) -> Any:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError as exc:
        raise ExportError(f"{flag}: {exc} in {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ExportError(f"{flag} must look like http[s]://host[:port]/..., got {url!r}")
    return parts


def check_setup(setup: GrafanaSetup) -> None:
    """Raise ExportError naming the flag of the first unusable setting."""
    for flag, url in (("--prometheus-url", setup.prometheus_url), ("--llmlens-url", setup.llmlens_url)):
        parts = _http_url(url, flag)
        if parts.password is not None:
            raise ExportError(f"{flag} must not hold a password")
    parse_clickhouse_url(setup.clickhouse_url)
    if not _JOB.match(setup.job):
        raise ExportError("--job must be a scrape job name without spaces, quotes or backslashes, "
                          f"got {setup.job!r}")
    if not PurePosixPath(setup.dashboards_path).is_absolute():
        raise ExportError(f"--dashboards-path must be an absolute path inside Grafana's file system, "
                          f"got {setup.dashboards_path!r}")

"""One settings object for the server, resolved once at start-up and passed down.

Precedence: command-line flag > LLMLENS_* environment variable > config file (TOML,
`--config` or LLMLENS_CONFIG) > default. Every setting is one row of SETTINGS, which also
generates the `llmlens serve` flags and the README's table, so docs and code cannot drift.

Settings come in sections, each a table of the config file: `[server]` (read as the top-level
attributes, `settings.http_port`) and one per feature (`[metrics]` -> `settings.metrics.max_series`).
A section's flag and environment names carry its name: `--metrics-max-series`,
`LLMLENS_METRICS_MAX_SERIES`, except for a setting marked `unprefixed`, whose names are its
own: the [alerts] table's `rules_file` is `--rules-file` and `LLMLENS_RULES_FILE`, the names
Prometheus users know.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from llmlens.server.errors import ServerError


class SettingsError(ServerError, ValueError):
    """A setting has a bad value; the message names the setting and where it came from."""


def default_data_dir(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "llmlens")


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str
    secret: bool = False
    section: str = "server"
    unprefixed: bool = False  # flag and variable named without the section (still read from its table)

    @property
    def key(self) -> str:
        """Unique over all sections: the flag's and the environment variable's stem."""
        return self.name if self.section == "server" or self.unprefixed else f"{self.section}_{self.name}"

    @property
    def env(self) -> str:
        return "LLMLENS_" + self.key.upper()

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", str, None, "folder of the embedded store (default: $XDG_DATA_HOME/llmlens)"),
    Setting("host", str, "127.0.0.1", "address to listen on; anything but loopback requires an API key"),
    Setting("http_port", int, 4318, "port for OTLP/HTTP, the JSON API and the UI"),
    Setting("grpc_port", int, 4317, "port for OTLP/gRPC (0 turns gRPC off)"),
    Setting("clickhouse_url", str, None,
            "use a ClickHouse server instead of the embedded store, e.g. http://user:pass@host:8123/db"),
    Setting("clickhouse_cluster", str, None,
            "a cluster of <remote_servers> that --clickhouse-url's host belongs to: read and write its Distributed "
            "tables (schema: `llmlens db schema --clickhouse-cluster NAME`)"),
    Setting("api_key", str, None, "bearer token required on OTLP and API requests", secret=True),
    Setting("allowed_hosts", str, None,
            "comma-separated Host names answered besides loopback ones (a reverse proxy's name; "
            "*.example.com for subdomains, * for any); with an API key and none set, any Host is answered"),
    Setting("retention_days", int, 30, "days to keep data (ClickHouse TTL); older records are rejected"),
    Setting("max_future_skew_s", float, 3600.0,
            "seconds a record's time may lie ahead of the server's clock; later ones are rejected"),
    Setting("min_free_disk_mb", int, 100,
            "free disk space below which the embedded store refuses exports (503) and /readyz says not ready"),
    Setting("max_body_bytes", int, 16 * 1024 * 1024, "largest OTLP body accepted, after decompression"),
    Setting("max_pending_rows", int, 400_000, "rows waiting to be written before new exports get 429"),
    Setting("max_inflight_bytes", int, 64 * 1024 * 1024,
            "bytes of OTLP exports being received, decoded or committed at once before new ones get 429"),
    Setting("ingest_workers", int, min(4, os.cpu_count() or 1),
            "processes that decode and normalise OTLP (0 = in the server process)"),
    Setting("ingest_workers_idle_s", float, 60.0,
            "seconds without exports after which the ingest workers exit, to give back their memory; the "
            "next export starts them again (0 = keep them)"),
    Setting("ingest_wal", bool, False,
            "acknowledge exports once written to a write-ahead log in the data directory (fsynced), and insert "
            "them in bigger, rarer commits: less CPU a span; data is queryable after the next flush "
            "(embedded store only)"),
    Setting("ingest_wal_flush_s", float, 1.0,
            "with --ingest-wal: seconds between the log's inserts (the most an export waits to be queryable)"),
    Setting("ingest_wal_max_mb", int, 512,
            "with --ingest-wal: MiB the log may hold not yet inserted before new exports get 503"),
    Setting("mask_pii", bool, False, "mask PII in every string before storing (servers' addresses are kept)"),
    Setting("prices_file", str, None, "a price override file (JSON or TOML) that adds or replaces model prices"),
    Setting("query_timeout_s", float, 30.0, "time limit of one API query, in seconds"),
    Setting("log_level", str, "info", "server log level: debug, info, warning, error"),
    # [metrics]: what /metrics derives from the spans it receives
    Setting("max_series", int, 2000,
            "label sets kept per metric family; more go to one __overflow__ series", section="metrics"),
    Setting("edge_wait_s", float, 10.0,
            "seconds a service-graph client or server span waits for its other half", section="metrics"),
    Setting("edge_max_pending", int, 10000,
            "unpaired service-graph spans held at most; past it the oldest expire", section="metrics"),
    Setting("context_wait_s", float, 10.0,
            "seconds a model call without app or department waits for its trace's request span before "
            "/metrics counts it", section="metrics"),
    Setting("context_max_pending", int, 10000,
            "model calls held at most waiting for app and department; past it the oldest are counted",
            section="metrics"),
    Setting("exemplars", bool, True,
            "trace and span ids on histogram buckets of /metrics in OpenMetrics (Grafana links to the trace)",
            section="metrics"),
    Setting("otlp_staleness_s", float, 300.0,
            "seconds a series of /metrics/otlp stays without new points before it is dropped", section="metrics"),
    # [alerts]: rules, their evaluation and where alerts go (server/alerts/)
    Setting("rules_file", str, None, "YAML file of alert rules, evaluated with the default rules (a rule of "
            "the same name replaces a default one); check it with `llmlens rules check FILE`",
            section="alerts", unprefixed=True),
    Setting("rules_interval", str, "30s", "how often every alert rule is evaluated (a duration: 30s, 1m)",
            section="alerts", unprefixed=True),
    Setting("evaluate_alerts", bool, True, "evaluate alert rules in this process; with several replicas on one "
            "ClickHouse, leave it on for exactly one", section="alerts", unprefixed=True),
    Setting("alertmanager_url", str, None, "comma-separated Alertmanager URLs (v2 API), e.g. http://localhost:9093",
            section="alerts", unprefixed=True),
    Setting("external_url", str, None, "the address users open this server's UI at, for links in alerts "
            "(default: http://HOST:HTTP_PORT)", section="alerts", unprefixed=True),
    Setting("budget_timezone", str, "UTC", "IANA time zone of budget days, weeks and months, e.g. Europe/Paris",
            section="alerts", unprefixed=True),
    Setting("default_rules", bool, True, "evaluate the default alert rules (error rate, p95 latency, TTFT, daily "
            "budget, quality drop, unpriced models, cost anomaly)", section="alerts"),
    Setting("daily_budget_usd", float, 100.0, "amount of the default DailyBudget rules, in USD", section="alerts"),
    Setting("webhooks", str, None, "comma-separated name=url JSON webhook receivers of alert state changes",
            section="alerts"),
    Setting("slack_webhooks", str, None, "comma-separated name=url Slack incoming webhooks for alert state changes",
            secret=True, section="alerts"),
    Setting("webhook_secret", str, None, "key of the HMAC-SHA256 signature header on webhook messages",
            secret=True, section="alerts"),
    # [sql]: read-only ClickHouse SQL over the store (POST /api/v1/sql, the SQL page, --sql-port)
    Setting("port", int, 0, "port of a read-only ClickHouse-compatible HTTP interface for Grafana's ClickHouse "
            "data source and clickhouse-connect (0 = off); with an API key, the key is the password", section="sql"),
    Setting("timeout_s", float, 10.0, "time limit of one SQL query, in seconds", section="sql"),
    Setting("max_memory_mb", int, 1024, "memory one SQL query may use, in MiB", section="sql"),
    Setting("max_result_rows", int, 100_000, "rows one SQL query may return (more is an error: add a LIMIT)",
            section="sql"),
    Setting("max_result_mb", int, 64, "bytes one SQL query may return, in MiB", section="sql"),
    Setting("max_concurrent", int, 2, "SQL queries run at once; more wait for a turn", section="sql"),
)
_BY_KEY = {s.key: s for s in SETTINGS}
SECTIONS = ("server", "metrics", "alerts", "sql")


@dataclass(frozen=True)
class MetricsSettings:
    max_series: int
    edge_wait_s: float
    edge_max_pending: int
    context_wait_s: float
    context_max_pending: int
    exemplars: bool
    otlp_staleness_s: float


@dataclass(frozen=True)
class AlertsSettings:
    rules_file: str | None
    rules_interval: str
    evaluate_alerts: bool
    alertmanager_url: str | None
    external_url: str | None
    budget_timezone: str
    default_rules: bool
    daily_budget_usd: float
    webhooks: str | None
    slack_webhooks: str | None
    webhook_secret: str | None

    @property
    def interval_s(self) -> int:
        from llmlens.server.alerts.durations import parse_duration

        text = self.rules_interval.strip()
        return int(float(text)) if text.replace(".", "", 1).isdigit() else parse_duration(text)

    @property
    def alertmanager_urls(self) -> list[str]:
        return [u.strip() for u in (self.alertmanager_url or "").split(",") if u.strip()]


@dataclass(frozen=True)
class SqlSettings:
    port: int
    timeout_s: float
    max_memory_mb: int
    max_result_rows: int
    max_result_mb: int
    max_concurrent: int


@dataclass(frozen=True)
class ServerSettings:
    data_dir: str
    host: str
    http_port: int
    grpc_port: int
    clickhouse_url: str | None
    clickhouse_cluster: str | None
    api_key: str | None
    allowed_hosts: str | None
    retention_days: int
    max_future_skew_s: float
    min_free_disk_mb: int
    max_body_bytes: int
    max_pending_rows: int
    max_inflight_bytes: int
    ingest_workers: int
    ingest_workers_idle_s: float
    ingest_wal: bool
    ingest_wal_flush_s: float
    ingest_wal_max_mb: int
    mask_pii: bool
    prices_file: str | None
    query_timeout_s: float
    log_level: str
    metrics: MetricsSettings
    alerts: AlertsSettings
    sql: SqlSettings

    @property
    def backend(self) -> str:
        return "clickhouse" if self.clickhouse_url else "chdb"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def public(self) -> dict[str, Any]:
        """Settings as shown to users: secrets replaced, never printed."""
        shown: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECTIONS:
                secret = {s.name for s in SETTINGS if s.section == f.name and s.secret}
                shown[f.name] = {sub.name: "***" if sub.name in secret and getattr(value, sub.name)
                                 else getattr(value, sub.name) for sub in fields(value)}
            else:
                shown[f.name] = "***" if value and _BY_KEY[f.name].secret else value
        if self.clickhouse_url and "@" in self.clickhouse_url:
            scheme, rest = self.clickhouse_url.split("://", 1) if "://" in self.clickhouse_url else ("", self.clickhouse_url)
            host = rest.rsplit("@", 1)[1]  # rsplit: a password may itself contain '@'
            shown["clickhouse_url"] = f"{scheme}://***@{host}" if scheme else f"***@{host}"
        return shown


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> ServerSettings:
    """Resolve every setting; raises SettingsError naming the culprit."""
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    config_file = config_file or env.get("LLMLENS_CONFIG")
    from_file = _read_config(config_file) if config_file else {}
    values: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for setting in SETTINGS:
        in_file = from_file.get(setting.section, {})
        if setting.key in flags:
            value = _convert(setting, flags[setting.key], f"flag {setting.flag}")
        elif setting.env in env and env[setting.env] != "":
            value = _convert(setting, env[setting.env], f"environment variable {setting.env}")
        elif setting.name in in_file:
            value = _convert(setting, in_file[setting.name], f"config file {config_file} [{setting.section}]")
        else:
            value = setting.default
        values[setting.section][setting.name] = value
    server = values["server"]
    if not server["data_dir"]:
        server["data_dir"] = default_data_dir(env)
    settings = ServerSettings(**server, metrics=MetricsSettings(**values["metrics"]),
                              alerts=AlertsSettings(**values["alerts"]), sql=SqlSettings(**values["sql"]))
    _validate(settings)
    return settings


def _read_config(path: str) -> dict[str, dict[str, Any]]:
    """The file's tables by section (a file without tables is all [server])."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise SettingsError(f"config file {path} does not exist") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    if not any(isinstance(v, dict) for v in data.values()):
        data = {"server": data}
    loose = sorted(k for k, v in data.items() if not isinstance(v, dict))
    if loose:
        raise SettingsError(f"config file {path}: {', '.join(loose)} must sit in a table such as [server]")
    unknown_tables = sorted(set(data) - set(SECTIONS))
    if unknown_tables:
        raise SettingsError(f"config file {path}: unknown table(s) {', '.join(unknown_tables)}; "
                            f"known: {', '.join(SECTIONS)}")
    for section, table in data.items():
        if not isinstance(table, dict):
            raise SettingsError(f"config file {path}: {section} must be a table ([server], [metrics])")
        known = [s.name for s in SETTINGS if s.section == section]
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise SettingsError(f"config file {path}: unknown setting(s) in [{section}]: {', '.join(unknown)}; "
                                f"known: {', '.join(known)}")
    return data


def _convert(setting: Setting, raw: Any, source: str) -> Any:
    try:
        if setting.type is bool:
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if setting.type is int and isinstance(raw, float | bool):
            raise ValueError("expected a whole number")
        return setting.type(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{setting.name} from {source}: {raw!r} is not a valid {setting.type.__name__} ({exc})") from exc


def _validate(s: ServerSettings) -> None:
    for name in ("http_port", "grpc_port"):
        port = getattr(s, name)
        if not 0 <= port <= 65535 or (name == "http_port" and port == 0):
            raise SettingsError(f"{name} must be between 1 and 65535 (grpc_port may be 0 to turn gRPC off), got {port}")
    if s.grpc_port and s.grpc_port == s.http_port:
        raise SettingsError(f"http_port and grpc_port must differ (both are {s.http_port})")
    if s.retention_days < 1 or s.retention_days > 3650:
        raise SettingsError(f"retention_days must be between 1 and 3650, got {s.retention_days}")
    if not 0 <= s.max_future_skew_s <= 7 * 86400:
        raise SettingsError(f"max_future_skew_s must be between 0 and 604800 (7 days), got {s.max_future_skew_s}")
    if not 0 <= s.min_free_disk_mb <= 1024 * 1024:
        raise SettingsError(f"min_free_disk_mb must be between 0 and 1048576 (1 TiB), got {s.min_free_disk_mb}")
    if s.max_body_bytes < 1024 or s.max_body_bytes > 1024**3:
        raise SettingsError(f"max_body_bytes must be between 1 KiB and 1 GiB, got {s.max_body_bytes}")
    if not 0 <= s.ingest_workers <= 64:
        raise SettingsError(f"ingest_workers must be between 0 and 64, got {s.ingest_workers}")
    if s.ingest_workers_idle_s != 0 and not 1 <= s.ingest_workers_idle_s <= 86400:
        raise SettingsError(f"ingest_workers_idle_s must be 0 (keep them) or between 1 and 86400, "
                            f"got {s.ingest_workers_idle_s}")
    if not 0.05 <= s.ingest_wal_flush_s <= 60:
        raise SettingsError(f"ingest_wal_flush_s must be between 0.05 and 60, got {s.ingest_wal_flush_s}")
    if not 1 <= s.ingest_wal_max_mb <= 1024 * 1024:
        raise SettingsError(f"ingest_wal_max_mb must be between 1 and 1048576, got {s.ingest_wal_max_mb}")
    if s.max_pending_rows < 1000:
        raise SettingsError(f"max_pending_rows must be at least 1000, got {s.max_pending_rows}")
    if s.max_inflight_bytes < 1024**2:
        raise SettingsError(f"max_inflight_bytes must be at least 1 MiB, got {s.max_inflight_bytes}")
    if not 0 < s.query_timeout_s <= 600:
        raise SettingsError(f"query_timeout_s must be in (0, 600], got {s.query_timeout_s}")
    if s.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"log_level must be debug, info, warning or error, got {s.log_level!r}")
    if not s.loopback and not s.api_key:
        raise SettingsError(
            f"listening on {s.host} (beyond loopback) needs an API key: set LLMLENS_API_KEY "
            "(clients then send 'Authorization: Bearer <key>')"
        )
    if s.api_key is not None and len(s.api_key) < 16:
        raise SettingsError("api_key must be at least 16 characters")
    m = s.metrics
    if not 10 <= m.max_series <= 1_000_000:
        raise SettingsError(f"metrics max_series must be between 10 and 1000000, got {m.max_series}")
    if not 0.1 <= m.edge_wait_s <= 600:
        raise SettingsError(f"metrics edge_wait_s must be between 0.1 and 600, got {m.edge_wait_s}")
    if not 100 <= m.edge_max_pending <= 10_000_000:
        raise SettingsError(f"metrics edge_max_pending must be between 100 and 10000000, got {m.edge_max_pending}")
    if not 0.1 <= m.context_wait_s <= 600:
        raise SettingsError(f"metrics context_wait_s must be between 0.1 and 600, got {m.context_wait_s}")
    if not 100 <= m.context_max_pending <= 10_000_000:
        raise SettingsError(f"metrics context_max_pending must be between 100 and 10000000, got {m.context_max_pending}")
    if not 10 <= m.otlp_staleness_s <= 86400:
        raise SettingsError(f"metrics otlp_staleness_s must be between 10 and 86400, got {m.otlp_staleness_s}")
    _validate_alerts(s.alerts)
    _validate_sql(s)
    if s.clickhouse_url and not s.clickhouse_url.startswith(("http://", "https://")):
        raise SettingsError(f"clickhouse_url must start with http:// or https://, got {s.clickhouse_url.split('@')[-1]!r}")
    _validate_cluster(s)


def _validate_cluster(s: ServerSettings) -> None:
    from llmlens.server.store.ddl import check_cluster_name

    if s.clickhouse_cluster is None:
        return
    if not s.clickhouse_url:
        raise SettingsError("clickhouse_cluster needs clickhouse_url (the HTTP address of one of the cluster's hosts)")
    try:
        check_cluster_name(s.clickhouse_cluster)
    except ValueError as exc:
        raise SettingsError(f"clickhouse_cluster: {exc}") from None


def _validate_sql(s: ServerSettings) -> None:
    q = s.sql
    if not 0 <= q.port <= 65535:
        raise SettingsError(f"sql port must be between 0 (off) and 65535, got {q.port}")
    if q.port and q.port in (s.http_port, s.grpc_port):
        raise SettingsError(f"sql port must differ from http_port and grpc_port (all three are ports of this server), "
                            f"got {q.port}")
    if not 0 < q.timeout_s <= 3600:
        raise SettingsError(f"sql timeout_s must be in (0, 3600], got {q.timeout_s}")
    if not 16 <= q.max_memory_mb <= 1024 * 1024:
        raise SettingsError(f"sql max_memory_mb must be between 16 and 1048576, got {q.max_memory_mb}")
    if not 1 <= q.max_result_rows <= 100_000_000:
        raise SettingsError(f"sql max_result_rows must be between 1 and 100000000, got {q.max_result_rows}")
    if not 1 <= q.max_result_mb <= 64 * 1024:
        raise SettingsError(f"sql max_result_mb must be between 1 and 65536, got {q.max_result_mb}")
    if not 1 <= q.max_concurrent <= 64:
        raise SettingsError(f"sql max_concurrent must be between 1 and 64, got {q.max_concurrent}")


def _validate_alerts(a: AlertsSettings) -> None:
    from llmlens.server.alerts.periods import time_zone

    try:
        interval = a.interval_s
    except ValueError:
        raise SettingsError(f"rules_interval must be a duration like 30s or 1m, got {a.rules_interval!r}") from None
    if not 1 <= interval <= 3600:
        raise SettingsError(f"rules_interval must be between 1s and 1h, got {a.rules_interval!r}")
    try:
        time_zone(a.budget_timezone)
    except ValueError as exc:
        raise SettingsError(f"budget_timezone: {exc}") from None
    if not 0 < a.daily_budget_usd <= 1e9:
        raise SettingsError(f"alerts daily_budget_usd must be above 0 (USD), got {a.daily_budget_usd}")
    for name, value in (("alertmanager_url", a.alertmanager_url), ("external_url", a.external_url)):
        for url in (value or "").split(","):
            if url.strip() and not url.strip().startswith(("http://", "https://")):
                raise SettingsError(f"{name} must start with http:// or https://, got {url.strip()[:80]!r}")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

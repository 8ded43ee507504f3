"""`llmlens export grafana`: dashboards plus the provisioning files that load them into Grafana.

Written under the output folder:

    provisioning/datasources/llmlens.yaml   Prometheus (exemplars link to llmlens) and ClickHouse
    provisioning/dashboards/llmlens.yaml    a file provider reading the dashboards folder
    dashboards/<uid>.json                   the dashboards

Grafana expands `$VAR` and `${VAR}` in every string of a provisioning file from its own
environment, and reads `$$` as a literal `$`. So literal values are written with `$` doubled (the
exemplar link's `${__value.raw}` is Grafana's, not the environment's), and the only variable left
for Grafana to expand is the ClickHouse password's, which never goes into a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from llmlens import __version__
from llmlens.export.dashboards import build_dashboards
from llmlens.export.grafana_setup import (
    CLICKHOUSE_PASSWORD_VARIABLE,
    ExportError,
    GrafanaSetup,
    check_setup,
    parse_clickhouse_url,
)
from llmlens.export.panels import (
    CLICKHOUSE_NAME,
    CLICKHOUSE_PLUGIN,
    CLICKHOUSE_UID,
    PROMETHEUS_NAME,
    PROMETHEUS_UID,
)

FOLDER = "llmlens"


def _literal(value: str) -> str:
    """A string Grafana's provisioning must not expand as an environment variable."""
    return value.replace("$", "$$")


def trace_url(llmlens_url: str) -> str:
    """The llmlens trace page of an exemplar's trace id (`${__value.raw}` is Grafana's placeholder)."""
    return llmlens_url.rstrip("/") + "/traces/${__value.raw}"


def datasources_provisioning(setup: GrafanaSetup) -> dict[str, Any]:
    ch = parse_clickhouse_url(setup.clickhouse_url)
    prometheus = {
        "name": PROMETHEUS_NAME, "uid": PROMETHEUS_UID, "type": "prometheus", "access": "proxy",
        "url": _literal(setup.prometheus_url), "editable": False,
        "jsonData": {
            "httpMethod": "POST",
            # Exemplars carry `trace_id`: each becomes a link to the trace's page in llmlens.
            "exemplarTraceIdDestinations": [{
                "name": "trace_id", "url": _literal(trace_url(setup.llmlens_url)),
                "urlDisplayLabel": "Open the trace in llmlens"}],
        },
    }
    otel = {"defaultDatabase": ch.database, "otelEnabled": True, "otelVersion": "latest"}
    clickhouse = {
        "name": CLICKHOUSE_NAME, "uid": CLICKHOUSE_UID, "type": CLICKHOUSE_PLUGIN, "editable": False,
        "jsonData": {
            "protocol": ch.protocol, "host": _literal(ch.host), "port": ch.port, "secure": ch.secure,
            "username": _literal(ch.username), "defaultDatabase": _literal(ch.database),
            "logs": {**otel, "defaultTable": "otel_logs"},
            "traces": {**otel, "defaultTable": "otel_traces", "durationUnit": "nanoseconds"},
        },
        "secureJsonData": {"password": f"${{{CLICKHOUSE_PASSWORD_VARIABLE}}}"},
    }
    return {"apiVersion": 1, "datasources": [prometheus, clickhouse]}


def dashboards_provisioning(setup: GrafanaSetup) -> dict[str, Any]:
    return {"apiVersion": 1, "providers": [{
        "name": "llmlens", "orgId": 1, "folder": FOLDER, "folderUid": FOLDER, "type": "file",
        "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 30,
        "options": {"path": _literal(setup.dashboards_path), "foldersFromFilesStructure": False},
    }]}


def _yaml(data: dict[str, Any], what: str) -> str:
    header = (f"# {what}, written by `llmlens export grafana` (llmlens {__version__}).\n"
              "# Grafana expands $VAR and ${VAR} from its environment here; $$ is a literal $.\n")
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)


def grafana_files(setup: GrafanaSetup) -> dict[str, str]:
    """Every file of the export, by path relative to the output folder."""
    check_setup(setup)
    files = {
        "provisioning/datasources/llmlens.yaml": _yaml(datasources_provisioning(setup), "Data sources"),
        "provisioning/dashboards/llmlens.yaml": _yaml(dashboards_provisioning(setup), "Dashboard provider"),
    }
    for name, board in build_dashboards(default_job=setup.job, llmlens_url=setup.llmlens_url).items():
        files[f"dashboards/{name}"] = json.dumps(board, indent=2, ensure_ascii=False) + "\n"
    return files


def write_grafana_export(out_dir: Path, setup: GrafanaSetup) -> list[Path]:
    """Write the export under `out_dir` (created if missing; files of the same names are replaced)."""
    files = grafana_files(setup)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"--out {out_dir} is a file, not a folder")
    written = []
    for relative, text in files.items():
        path = out_dir / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    return written

"""`llmlens export grafana|prometheus-rules`: the subcommands, registered by llmlens.cli.

Bad flags and unwritable destinations raise UsageError (one line, exit 2). The export extra
(grafana-foundation-sdk, PyYAML, pydantic) is imported only when a command runs, so `llmlens --help`
works without it and a missing extra is reported as such.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from llmlens.cli_checks import UsageError

EXTRA_HINT = "pip install 'llmlens[export]'"


def register(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="Grafana dashboards and Prometheus rules for llmlens metrics",
                            description="Files for teams on Prometheus and Grafana: dashboards with their "
                                        "provisioning, and Prometheus recording rules.")
    esub = export.add_subparsers(title="export commands", metavar="COMMAND")
    export.set_defaults(handler=lambda _a: (export.print_help(), 2)[1])

    from llmlens.export.grafana_setup import GrafanaSetup

    d = GrafanaSetup()
    grafana = esub.add_parser(
        "grafana", help="dashboards and provisioning files for Grafana",
        description="Write three dashboards (LLM overview; RED and service graph; traces and logs from "
                    "ClickHouse) and the provisioning files that load them and their data sources into "
                    "Grafana. See docs/grafana.md.")
    grafana.add_argument("--out", required=True, metavar="DIR", help="folder to write (created if missing)")
    grafana.add_argument("--prometheus-url", default=d.prometheus_url, metavar="URL",
                         help="the Prometheus that scrapes llmlens, as Grafana reaches it "
                              "(default: %(default)s)")
    grafana.add_argument("--clickhouse-url", default=d.clickhouse_url, metavar="URL",
                         help="the ClickHouse server holding the llmlens tables, as Grafana reaches it: "
                              "http[s]://[user@]host[:port]/database, no password (default: %(default)s)")
    grafana.add_argument("--llmlens-url", default=d.llmlens_url, metavar="URL",
                         help="the llmlens UI, as a browser reaches it: exemplars and trace ids link to its "
                              "trace pages (default: %(default)s)")
    grafana.add_argument("--job", default=d.job, metavar="NAME",
                         help="the llmlens server's scrape job name, the dashboards' default job "
                              "(default: %(default)s)")
    grafana.add_argument("--dashboards-path", default=d.dashboards_path, metavar="PATH",
                         help="where Grafana will find the dashboards folder, for the dashboard provider "
                              "(default: %(default)s)")
    grafana.set_defaults(handler=_reporting_missing_extra(_grafana))

    rules = esub.add_parser("prometheus-rules", help="recording and alerting rules for Prometheus",
                            description="Write Prometheus recording rules over the llm_* metrics (latency "
                                        "percentiles by model, error ratios, cost per hour by department and "
                                        "app, tokens per second), and llmlens's alert rules as Prometheus "
                                        "alerting rules where their signal has a PromQL form (the file names "
                                        "the others and why). See docs/alerts.md.")
    rules.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    rules.add_argument("--rules-file", metavar="FILE",
                       help="alert rules (YAML) to translate, with the default ones, as `llmlens serve "
                            "--rules-file` evaluates them (checked as `llmlens rules check` does)")
    rules.add_argument("--alerts-default-rules", action=argparse.BooleanOptionalAction, default=True,
                       help="translate the default alert rules too (default: on, as the server)")
    rules.add_argument("--job", default="llmlens", metavar="NAME",
                       help="the llmlens server's scrape job: alerting rules read its series only, not an "
                            "SDK app's copies of the same calls; '' reads every job (default: %(default)s)")
    rules.set_defaults(handler=_reporting_missing_extra(_prometheus_rules))


def _grafana(args: argparse.Namespace) -> int:
    from llmlens.export.grafana_setup import ExportError, GrafanaSetup, check_setup

    setup = GrafanaSetup(prometheus_url=args.prometheus_url, clickhouse_url=args.clickhouse_url,
                         llmlens_url=args.llmlens_url, job=args.job, dashboards_path=args.dashboards_path)
    out = Path(args.out)
    try:
        check_setup(setup)  # bad flags first, whether or not the export extra is installed
        write_grafana_export = _export_extra("llmlens.export.grafana").write_grafana_export
        written = write_grafana_export(out, setup)
    except ExportError as exc:
        raise UsageError(str(exc)) from None
    for path in written:
        print(path)
    print(f"Mount {out / 'provisioning'} as Grafana's provisioning folder and {out / 'dashboards'} at "
          f"{setup.dashboards_path} (see docs/grafana.md).", file=sys.stderr)
    return 0


def _prometheus_rules(args: argparse.Namespace) -> int:
    path = Path(args.out) if args.out else None
    if path is not None and path.is_dir():
        raise UsageError(f"--out {path} is a folder, not a file")
    if "\n" in args.job or '"' in args.job or "\\" in args.job:
        raise UsageError(f"--job must be a scrape job name without quotes, backslashes or line breaks, got {args.job!r}")
    alerts = _export_extra("llmlens.export.prometheus_alerts")
    try:
        text, skipped = alerts.rules_file_text(args.rules_file, default_rules_on=args.alerts_default_rules,
                                               job=args.job or None)
    except alerts.RulesError as exc:
        raise UsageError(str(exc)) from None  # the message of `llmlens rules check`
    if path is None:
        sys.stdout.write(text)
        return 0
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write --out {path}: {exc.strerror or exc}") from None
    print(path)
    if skipped:
        print(f"{len(skipped)} alert rule{'' if len(skipped) == 1 else 's'} without a PromQL form "
              f"(listed at the top of {path}): {', '.join(skipped)}", file=sys.stderr)
    return 0


class ExportExtraMissing(Exception):
    """grafana-foundation-sdk, PyYAML or pydantic is not installed."""


def _export_extra(module: str) -> ModuleType:
    """Import an export module; without the export extra, say which install brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExportExtraMissing(f"this command needs the export extra ({EXTRA_HINT}): {exc}") from None


Handler = Callable[[argparse.Namespace], int]


def _reporting_missing_extra(handler: Handler) -> Handler:
    """A missing library is the environment's failure, not bad input: one line, exit 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ExportExtraMissing as exc:
            print(f"llmlens: error: {exc}", file=sys.stderr)
            return 1

    return run

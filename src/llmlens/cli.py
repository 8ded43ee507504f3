"""`llmlens ...`: a thin layer over the server, pricing and demo entry points.

Each area registers its own subcommand; this module only wires them and turns expected
errors into one clear line and a non-zero exit code: 2 for bad input (a flag, a variable, a
file: `UsageError`), 1 for a failure of the environment (a busy port, an unreachable store).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from llmlens import __version__, cli_checks
from llmlens.cli_checks import PortInUse, UsageError

if TYPE_CHECKING:
    from llmlens.pricing import PriceBook
    from llmlens.server.settings import ServerSettings

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CliParser(argparse.ArgumentParser):
    """argparse, except that a usage error is one line on stderr, not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(
        prog="llmlens",
        description="OpenTelemetry-native observability for LLM applications.",
        epilog="Start with `llmlens demo` to see everything at work, or `llmlens serve` to receive your own telemetry.",
    )
    parser.add_argument("--version", action="version", version=f"llmlens {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_serve(sub)
    _add_db(sub)
    _add_rules(sub)
    _add_pricing(sub)
    from llmlens.export import cli as export_cli

    export_cli.register(sub)
    try:
        from llmlens.demo import commands as demo_commands
    except ImportError as exc:  # the demo extra is not installed
        demo = sub.add_parser("demo", help="run the demo (needs: pip install 'llmlens[demo]')")
        demo.set_defaults(handler=lambda _a, e=exc: _fail(f"the demo needs the demo extra: {e}"))
    else:
        demo_commands.register(sub)
    return parser


# --- serve ---------------------------------------------------------------------------------

def _add_serve(sub: argparse._SubParsersAction) -> None:
    from llmlens.server.settings import SETTINGS

    serve = sub.add_parser(
        "serve",
        help="receive OTLP, store it, serve the API and UI",
        description=(
            "Receive OTLP over HTTP and gRPC, store it in ClickHouse (embedded chDB by default), and serve "
            "the JSON API, the UI and /openapi.json on the HTTP port. Each flag can also be set by the "
            "environment variable shown, or in a TOML config file ([server] table); flags win over "
            "the environment, which wins over the file."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--config", metavar="FILE", help="TOML config file (env LLMLENS_CONFIG)")
    for s in SETTINGS:
        default = "" if s.default is None or s.secret else f" (default: {s.default})"
        help_text = f"{s.help}{default} [env {s.env}]"
        if s.type is bool:
            serve.add_argument(s.flag, dest=s.key, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        elif s.secret:
            continue  # secrets only from the environment or a file: flags leak into `ps`
        else:
            serve.add_argument(s.flag, dest=s.key, type=s.type, default=None,
                               metavar=s.name.split("_")[-1].upper(), help=help_text)
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from llmlens.server.settings import SETTINGS, SettingsError, load_settings

    # Every file, folder and address is checked before the store opens (see cli_checks).
    flags = {s.key: getattr(args, s.key, None) for s in SETTINGS}
    config_file = args.config or os.environ.get("LLMLENS_CONFIG") or None
    cli_checks.check_config_file(config_file)
    try:
        settings = load_settings(flags, config_file=config_file)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None

    def origin(key: str) -> str:
        return cli_checks.origin(key, flags, config_file)

    _configure_logging(settings.log_level)
    for key, port in (("http_port", settings.http_port), ("grpc_port", settings.grpc_port),
                      ("sql_port", settings.sql.port)):
        if port:
            try:
                cli_checks.check_listen(settings.host, port, "--" + key.replace("_", "-"))
            except PortInUse as exc:
                return _fail(str(exc))
    cli_checks.check_prices_file(settings.prices_file, origin("prices_file"))
    _check_alert_rules(settings)
    if settings.clickhouse_url:
        cli_checks.check_clickhouse_url(settings.clickhouse_url, origin("clickhouse_url"))
    else:
        cli_checks.check_data_dir(settings.data_dir, origin("data_dir"))

    from concurrent.futures import ThreadPoolExecutor

    from llmlens.server.errors import StoreError
    from llmlens.server.store import Store, open_backend

    try:
        backend = open_backend(data_dir=settings.data_dir, clickhouse_url=settings.clickhouse_url,
                               clickhouse_cluster=settings.clickhouse_cluster, query_timeout_s=settings.query_timeout_s)
    except StoreError as exc:
        return _fail(str(exc))
    backend.watch_free_space(settings.min_free_disk_mb * 1024 * 1024)

    def open_store() -> Store:
        return Store(backend, ttl_days=settings.retention_days, max_pending_rows=settings.max_pending_rows)

    # The schema's creation or check (chDB's work, which releases the GIL: ~0.5 s of CPU on a new
    # folder) runs beside the import of the app's modules (FastAPI, the routes: Python, ~0.7 s).
    # Everything it imports was imported above: two threads importing at once could deadlock.
    with ThreadPoolExecutor(1, thread_name_prefix="llmlens-open-store") as opening:
        opened = opening.submit(open_store)
        try:
            from llmlens.server.app import create_app
            from llmlens.server.run import run_server

            store = opened.result()
        except StoreError as exc:  # e.g. a schema this version cannot upgrade
            backend.close()
            return _fail(str(exc))
        except BaseException:
            with contextlib.suppress(BaseException):
                opened.result().close()  # the store, if it opened, with its writer
            backend.close()  # closing twice is safe
            raise
    # The app's lifespan closes the store on a clean stop; this covers every other way out (a
    # failure before or during start-up, SystemExit from the HTTP server). Closing twice is safe,
    # and an embedded store left open crashes the interpreter at exit.
    try:
        app = create_app(settings, store)
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        where = settings.clickhouse_url and settings.public()["clickhouse_url"] or settings.data_dir
        if settings.clickhouse_cluster:
            where += f", cluster {settings.clickhouse_cluster}"
        print(f"llmlens {__version__} — store: {settings.backend} ({where})", flush=True)
        print(f"  UI and API   http://{host}:{settings.http_port}/", flush=True)
        print(f"  OTLP/HTTP    http://{host}:{settings.http_port}/v1/traces (logs, metrics)", flush=True)
        if settings.grpc_port:
            print(f"  OTLP/gRPC    {host}:{settings.grpc_port}", flush=True)
        if settings.sql.port:
            print(f"  SQL          http://{host}:{settings.sql.port}/ (ClickHouse HTTP interface, read-only)", flush=True)
        run_server(app, settings)
    finally:
        store.close()
    return 0


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO, and the alert evaluator posts to Alertmanager every interval. Set
    # here, where the server configures its logging, not on import (that would change an importer's logs).
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))


# --- db ------------------------------------------------------------------------------------

def _add_db(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="the ClickHouse schema: print it, apply it",
                        description="The schema llmlens keeps in ClickHouse, for the embedded store, a single "
                                    "server or a cluster (Replicated tables on every shard, Distributed tables "
                                    "over them). `llmlens serve` applies it at start too.")
    dsub = db.add_subparsers(title="db commands", metavar="COMMAND")
    schema = dsub.add_parser("schema", help="print the DDL that `db init` would run",
                             description="Print every statement, in order, that sets up an empty store "
                                         "(what `llmlens db init` and `llmlens serve` run), for a DBA to read.")
    init = dsub.add_parser("init", help="create or upgrade the schema on a ClickHouse server or cluster",
                           description="Apply the schema's migrations that the store has not seen yet, "
                                       "and set every table's TTL to the retention.")
    for command in (schema, init):
        command.add_argument("--clickhouse-cluster", metavar="NAME",
                             help="a cluster of the servers' <remote_servers> (env LLMLENS_CLICKHOUSE_CLUSTER)")
        command.add_argument("--retention-days", type=int, metavar="DAYS",
                             help="days to keep data (default: 30) [env LLMLENS_RETENTION_DAYS]")
    schema.add_argument("--database", metavar="NAME", help="database the cluster's tables go in (default: the "
                        "path of LLMLENS_CLICKHOUSE_URL, else default)")
    init.add_argument("--clickhouse-url", metavar="URL",
                      help="http[s]://user:password@host:8123/database (env LLMLENS_CLICKHOUSE_URL)")
    schema.set_defaults(handler=_db_schema)
    init.set_defaults(handler=_db_init)
    db.set_defaults(handler=lambda _a: (db.print_help(), EXIT_USAGE)[1])


def _db_option(args: argparse.Namespace, key: str) -> str | None:
    """A `db` command's flag, else its LLMLENS_* variable (the names `llmlens serve` reads)."""
    value = getattr(args, key, None)
    return str(value) if value is not None else os.environ.get("LLMLENS_" + key.upper()) or None


def _db_retention(args: argparse.Namespace) -> int:
    raw = _db_option(args, "retention_days")
    raw = "30" if raw is None else raw
    from llmlens.server.store.ddl import MAX_TTL_DAYS

    try:
        days = int(raw)
    except ValueError:
        raise UsageError(f"bad retention days {raw!r}: a whole number from 1 to {MAX_TTL_DAYS}") from None
    if not 1 <= days <= MAX_TTL_DAYS:
        raise UsageError(f"bad retention days {days}: a whole number from 1 to {MAX_TTL_DAYS}")
    return days


def _db_cluster(args: argparse.Namespace) -> str | None:
    from llmlens.server.store.ddl import check_cluster_name

    name = _db_option(args, "clickhouse_cluster")
    if name is None:
        return None
    try:
        return check_cluster_name(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _db_schema(args: argparse.Namespace) -> int:
    from llmlens.server.store.ddl import Layout
    from llmlens.server.store.schema import script

    days, cluster = _db_retention(args), _db_cluster(args)
    if args.database is not None and not cluster:
        raise UsageError("--database is for a cluster's DDL (--clickhouse-cluster); a single server's DDL "
                         "names no database")
    database = args.database
    if database is None:
        url = os.environ.get("LLMLENS_CLICKHOUSE_URL")
        database = _url_database(url, "LLMLENS_CLICKHOUSE_URL") if url else "default"
    try:
        layout = Layout(cluster=cluster, database=database)
    except ValueError as exc:
        raise UsageError(f"bad --database: {exc}") from None
    sys.stdout.write(script(layout, days))
    return 0


def _url_database(url: str, source: str) -> str:
    from llmlens.server.errors import StoreError
    from llmlens.server.store.clickhouse_backend import ClickHouseTarget

    try:
        return ClickHouseTarget.parse(url).database
    except StoreError as exc:
        raise UsageError(f"bad {source}: {exc}") from None


def _db_init(args: argparse.Namespace) -> int:
    days, cluster = _db_retention(args), _db_cluster(args)
    url = args.clickhouse_url or os.environ.get("LLMLENS_CLICKHOUSE_URL")
    if not url:
        raise UsageError("db init needs --clickhouse-url (or LLMLENS_CLICKHOUSE_URL); the embedded store is "
                         "set up by `llmlens serve` itself")
    source = "--clickhouse-url" if args.clickhouse_url else "LLMLENS_CLICKHOUSE_URL"
    cli_checks.check_clickhouse_url(url, source)

    from llmlens.server.errors import StoreError
    from llmlens.server.store.clickhouse_backend import ClickHouseBackend
    from llmlens.server.store.schema import apply_retention, current_version, migrate

    try:
        # DDL ON CLUSTER waits for every host (distributed_ddl_task_timeout, 180 s by default).
        backend = ClickHouseBackend(url, cluster=cluster, query_timeout_s=600)
    except StoreError as exc:
        return _fail(str(exc))
    try:
        before = current_version(backend)
        after = migrate(backend, days)
        apply_retention(backend, days)
    except StoreError as exc:
        return _fail(f"{exc} (statements that ran are kept: `llmlens db init` again finishes the rest)")
    finally:
        backend.close()
    where = f"cluster {cluster}, database {backend.target.database}" if cluster else \
        f"database {backend.target.database}"
    done = f"migrated from {before} to {after}" if after != before else "already current"
    print(f"llmlens schema {after} ({where}): {done}; retention {days} days")
    return 0


# --- rules ---------------------------------------------------------------------------------

def _add_rules(sub: argparse._SubParsersAction) -> None:
    rules = sub.add_parser("rules", help="alert rules: check a rules file",
                           description="Alert rules are a YAML file (`llmlens serve --rules-file FILE`).")
    rsub = rules.add_subparsers(title="rules commands", metavar="COMMAND")
    check = rsub.add_parser("check", help="validate a rules file",
                            description="Validate a rules file: exit 0 when valid, otherwise 2 with every "
                                        "problem named by line, rule and field.")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(handler=_rules_check)
    rules.set_defaults(handler=lambda _a: (rules.print_help(), EXIT_USAGE)[1])


def _rules_check(args: argparse.Namespace) -> int:
    from llmlens.server.alerts.rules import RulesError, load_rules_file

    try:
        found = load_rules_file(args.file)
    except RulesError as exc:
        raise UsageError(str(exc)) from None
    print(f"{args.file}: {len(found)} rule{'' if len(found) == 1 else 's'}, valid")
    return 0


def _check_alert_rules(settings: ServerSettings) -> None:
    """The server refuses to start on a bad rules file, with `llmlens rules check`'s message."""
    from llmlens.server.alerts.rules import RulesError, check_receivers
    from llmlens.server.alerts.service import build_notifier, load_all_rules
    from llmlens.server.settings import SettingsError

    try:
        check_receivers(load_all_rules(settings), build_notifier(settings).names)
    except (RulesError, SettingsError) as exc:
        raise UsageError(str(exc)) from None


# --- pricing -------------------------------------------------------------------------------

def _add_pricing(sub: argparse._SubParsersAction) -> None:
    from llmlens.pricing.__main__ import token_count  # the same argument types as `python -m llmlens.pricing`

    pricing = sub.add_parser("pricing", help="model prices: refresh the list, price a call",
                             description="Model prices come from LiteLLM's public price list (MIT), shipped "
                                         "with llmlens. Refresh it from a newer copy, or price one call.")
    psub = pricing.add_subparsers(title="pricing commands", metavar="COMMAND")
    update = psub.add_parser("update", help="refresh the bundled price list from a file",
                             description="Validate a LiteLLM-format price file (model_prices_and_context_window"
                                         ".json, or a litellm-*.whl containing it) and install it as the price list.")
    update.add_argument("--from", dest="source", required=True, metavar="FILE", help="the new price file")
    update.add_argument("--dest", metavar="FILE", help="write here instead of the bundled price list")
    update.set_defaults(handler=_pricing_update)
    cost = psub.add_parser("cost", help="price one call", description="Price one call with the current price list.")
    cost.add_argument("model")
    cost.add_argument("--provider")
    for flag in ("--input-tokens", "--output-tokens", "--cached-input-tokens", "--reasoning-tokens"):
        cost.add_argument(flag, type=token_count, default=0, metavar="N")
    cost.set_defaults(handler=_pricing_cost)
    pricing.set_defaults(handler=lambda _a: (pricing.print_help(), EXIT_USAGE)[1])


def _pricing_update(args: argparse.Namespace) -> int:
    from llmlens.pricing import update_price_file

    try:
        count = update_price_file(args.source, args.dest)
    except ValueError as exc:  # the source: unreadable or not a LiteLLM price list
        raise UsageError(f"bad --from {args.source}: {exc}") from None
    except OSError as exc:  # the destination
        dest = f"--dest {args.dest}" if args.dest else "the bundled price list"
        raise UsageError(f"cannot write {dest}: {exc.strerror or exc}") from None
    print(f"price list updated: {count} models")
    return 0


def _price_book() -> PriceBook:
    from llmlens.pricing import PriceBook

    try:
        return PriceBook.default()
    except ValueError as exc:  # only the overrides named by the environment can be bad
        raise UsageError(f"bad LLMLENS_PRICES_FILE: {exc}") from None


def _pricing_cost(args: argparse.Namespace) -> int:
    usd = _price_book().cost(args.model, args.provider, input_tokens=args.input_tokens,
                             output_tokens=args.output_tokens, cached_input_tokens=args.cached_input_tokens,
                             reasoning_tokens=args.reasoning_tokens)
    if usd is None:
        return _fail(f"no price for model {args.model!r}")
    print(f"{usd:.8f} USD")
    return 0


def _fail(message: str, code: int = EXIT_FAILURE) -> int:
    print(f"llmlens: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

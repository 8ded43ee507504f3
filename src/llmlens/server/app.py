"""Builds the server's ASGI app from settings: OTLP/HTTP receiver, JSON API, UI, and the
services (gRPC receiver, ingest workers, store, ...) started and stopped in its lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor

import pyarrow as pa
from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from llmlens import __version__
from llmlens.server.alerts.service import alerting
from llmlens.server.api.alerts_routes import router as alerts_router
from llmlens.server.api.auth import ApiKeyMiddleware
from llmlens.server.api.compare_routes import router as compare_router
from llmlens.server.api.errors import install_error_handlers
from llmlens.server.api.metric_explorer_routes import router as metric_explorer_router
from llmlens.server.api.metrics_routes import router as metrics_router
from llmlens.server.api.profiles_routes import router as profiles_router
from llmlens.server.api.quality_routes import router as quality_router
from llmlens.server.api.routes import router as api_router
from llmlens.server.api.search import router as search_router
from llmlens.server.api.security import HostCheckMiddleware, HostPolicy, SecurityHeadersMiddleware
from llmlens.server.api.services_routes import router as services_router
from llmlens.server.api.sql_routes import router as sql_router
from llmlens.server.api.ui import router as ui_router
from llmlens.server.metrics.aggregator import DERIVATIONS as METRICS_DERIVATIONS
from llmlens.server.metrics.aggregator import ServerMetrics
from llmlens.server.metrics.request_timing import RequestTiming
from llmlens.server.normalise import TimeWindow, build_cost_model
from llmlens.server.receive.grpc import grpc_service
from llmlens.server.receive.http import otlp_routes
from llmlens.server.receive.pipeline import Ingestor
from llmlens.server.receive.profiles import profile_routes
from llmlens.server.receive.wal_service import wal_service
from llmlens.server.receive.workers import start_workers
from llmlens.server.services import on_stop, periodic, running
from llmlens.server.settings import ServerSettings
from llmlens.server.sql.clickhouse_http import sql_http_service
from llmlens.server.sql.engine import SqlEngine
from llmlens.server.store import Store
from llmlens.server.store.batch import DEFAULT_DERIVATIONS
from llmlens.server.web.routes import router as web_router

log = logging.getLogger("llmlens.server")


def create_app(settings: ServerSettings, store: Store) -> FastAPI:
    """The app owns `store` from here on: it closes it when the lifespan ends."""
    # What every normalised batch is run through where it is built (see store/batch.py).
    derivations = (*DEFAULT_DERIVATIONS, *METRICS_DERIVATIONS)
    window = TimeWindow(settings.retention_days, settings.max_future_skew_s)  # the times a record may carry

    def workers() -> ProcessPoolExecutor:
        return start_workers(settings.ingest_workers, settings.prices_file, settings.mask_pii, derivations, window)

    # The price list takes 0.2 s to load: with workers, they each load their own and the server needs none.
    cost = None if settings.ingest_workers else build_cost_model(settings.prices_file, settings.mask_pii, window)
    ingestor = Ingestor(store, cost, workers if settings.ingest_workers else None, derivations,
                        max_inflight_bytes=settings.max_inflight_bytes)
    metrics = ServerMetrics(settings.metrics, store, settings.data_dir)
    store.on_commit(metrics.on_commit)  # counters move for committed rows only: each counted once
    ingestor.outcomes = metrics.health  # told how each export was answered

    # Started in this order, stopped in reverse: stop taking new exports, let in-flight ones
    # finish, then commit what was accepted.
    logged = wal_service(settings, store, ingestor)  # --ingest-wal: replayed before ready, flushed at stop
    services = [
        on_stop("store", store.close),
        *([logged] if logged else []),
        on_stop("ingest workers", ingestor.close),
        metrics.service(),
    ]
    if settings.ingest_workers and settings.ingest_workers_idle_s:
        idle_s = settings.ingest_workers_idle_s

        def when_idle() -> None:
            # Ingest quiet for idle_s: the workers exit, and Arrow's allocator hands back the pages it
            # kept from the last batches (~25 MB after a burst; benchmarks/server_footprint.py).
            if ingestor.retire_idle_workers(idle_s):
                pa.default_memory_pool().release_unused()

        services.append(periodic("idle ingest workers", min(idle_s / 4, 5.0), when_idle))
    if settings.grpc_port:
        services.append(grpc_service(ingestor, settings))
    alerts = alerting(settings, store)  # raises RulesError on a bad rules file
    services.append(alerts.service)  # started last, stopped first: it reads the store
    sql_engine = SqlEngine(store.backend, settings.sql)  # users' read-only SQL (API, SQL page, --sql-port)
    services.append(on_stop("SQL engine", sql_engine.close))
    if settings.sql.port:
        services.append(sql_http_service(sql_engine, settings, __version__))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(services):
            yield
        log.info("store closed; every accepted batch was committed")

    app = FastAPI(
        title="llmlens",
        version=__version__,
        description="OpenTelemetry-native observability for LLM applications: OTLP in, JSON API out.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # /docs is the UI's own API reference (web/routes.py): no CDN
    )
    app.state.settings = settings
    app.state.store = store
    app.state.ingestor = ingestor
    app.state.alerts = alerts
    app.state.metrics = metrics
    app.state.sql_engine = sql_engine
    install_error_handlers(app)
    app.router.routes.extend(otlp_routes())
    app.router.routes.extend(profile_routes())  # Pyroscope's /ingest and Push
    app.include_router(compare_router)  # before api_router: its /traces/{trace_id} would take these paths
    app.include_router(api_router)
    app.include_router(quality_router)
    app.include_router(metric_explorer_router)
    app.include_router(alerts_router, tags=["alerts"])
    app.include_router(search_router, tags=["traces"])
    app.include_router(services_router)
    app.include_router(profiles_router)
    app.include_router(sql_router)
    app.include_router(ui_router, tags=["ui"])
    app.include_router(web_router, include_in_schema=False)
    app.include_router(metrics_router)
    app.add_middleware(RequestTiming, registry=metrics.registry)
    app.add_middleware(GZipMiddleware, minimum_size=4096)
    if settings.api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)
    # Added last, run first: a foreign Host is turned away before anything else, and every answer,
    # a 401 or 400 included, carries the security headers.
    app.add_middleware(HostCheckMiddleware, policy=HostPolicy.of(settings.api_key, settings.allowed_hosts))
    app.add_middleware(SecurityHeadersMiddleware)
    return app

"""Everything /metrics shows, in one object per app: fed by the commit listener (counted once: only
committed rows move counters), by the export answers and by the request timing middleware; read by
the /metrics and /metrics/otlp routes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from llmlens.server.metrics import derive, otlp_series
from llmlens.server.metrics import families as f
from llmlens.server.metrics.context_wait import ContextWait
from llmlens.server.metrics.deltas import BatchMetrics
from llmlens.server.metrics.exposition import otlp_families, registry_families, render, scalar_families
from llmlens.server.metrics.health import ServerHealth
from llmlens.server.metrics.otlp_series import OtlpMetrics, OtlpPoints
from llmlens.server.metrics.registry import Registry
from llmlens.server.metrics.service_graph import ExpirySweep, ServiceGraph
from llmlens.server.services import Service
from llmlens.server.settings import MetricsSettings
from llmlens.server.store import Store
from llmlens.server.store.batch import Batch, Derivation

# Run on every batch where it is built (see store/batch.py): the span metrics, and the OTLP points
# in their Prometheus form.
DERIVATIONS: tuple[Derivation, ...] = (derive.derive, otlp_series.derive)


class ServerMetrics:
    def __init__(self, settings: MetricsSettings, store: Store, data_dir: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = Registry(f.REGISTERED, settings.max_series)
        self.graph = ServiceGraph(self.registry, wait_s=settings.edge_wait_s, max_pending=settings.edge_max_pending,
                                  clock=clock)
        self.context = ContextWait(self.registry, wait_s=settings.context_wait_s,
                                   max_pending=settings.context_max_pending, clock=clock)
        self.health = ServerHealth(self.registry, store, data_dir, clock=clock)
        self.otlp = OtlpMetrics(max_series=settings.max_series, staleness_s=settings.otlp_staleness_s,
                                on_overflow=self.registry.count_overflow, clock=clock)
        self.exemplars = settings.exemplars
        self._sweep = ExpirySweep(self.graph)
        self._context_sweep = ExpirySweep(self.context)

    def on_commit(self, batches: Sequence[Batch]) -> None:
        """The commit listener (writer thread): merge what the derivations computed for these rows."""
        for batch in batches:
            spans = batch.derived.get(derive.NAME)
            if isinstance(spans, BatchMetrics):
                self.registry.merge(spans)
                if spans.clients is not None or spans.servers is not None:
                    self.graph.add(spans.clients, spans.servers)
                if spans.waiting is not None:
                    self.context.add(spans.waiting)
            points = batch.derived.get(otlp_series.NAME)
            if isinstance(points, OtlpPoints):
                self.otlp.merge(points)
        self.health.committed(batches)

    def service(self) -> Service:
        """The service-graph expiry sweep, for the app's lifespan."""
        async def start() -> None:
            self._sweep.start()
            self._context_sweep.start()

        async def stop() -> None:
            self._sweep.stop()
            self._context_sweep.stop()

        return Service("metrics: service-graph expiry", start, stop)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """/metrics: every family, in the format the scraper asked for."""
        gauges = self.health.gauges()
        scalars = {family: gauges[family.name] for family in (f.WRITE_QUEUE, f.COMMITS, f.COMMIT_FAILURES,
                                                               f.STORE_BYTES) if family.name in gauges}
        scalars[f.EDGES_PENDING] = float(self.graph.pending)
        scalars[f.CONTEXT_PENDING] = float(self.context.pending)
        families = [*registry_families(self.registry.snapshot(), exemplars=self.exemplars),
                    *scalar_families(scalars)]
        return render(families, accept)

    def otlp_exposition(self, accept: str | None) -> tuple[bytes, str]:
        """/metrics/otlp: the OTLP metrics apps sent, as the Collector's Prometheus exporter shows them."""
        views, targets = self.otlp.snapshot()
        return render(list(otlp_families(views, targets)), accept)

"""The retriever service: POST /search over the bundled support articles, with spans and /metrics.

Run alone with ``llmlens demo retriever`` or ``python -m llmlens.demo.retriever``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from fastapi import FastAPI, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, Field

import llmlens
from llmlens.demo.arguments import RETRIEVER_HELP, add_retriever_arguments
from llmlens.demo.embedding import DEFAULT_DIMENSIONS, HashingEmbedder
from llmlens.demo.http_metrics import HttpMetrics, HttpMetricsMiddleware
from llmlens.demo.runtime import serve
from llmlens.demo.search_index import Hit, SearchIndex, load_chunks

SERVICE_NAME = "demo-retriever"
DATA_SOURCE_ID = "larkspur-help-center"

log = structlog.get_logger("llmlens.demo.retriever")


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=50_000)
    top_k: int = Field(default=4, ge=1, le=50)
    min_score: float = Field(default=0.0, ge=-1.0, le=1.0)


class SearchResult(BaseModel):
    chunk_id: str
    doc_id: str
    title: str
    text: str
    score: float


class SearchResponse(BaseModel):
    results: list[SearchResult]
    index_size: int


@dataclass(frozen=True)
class RetrieverSettings:
    host: str
    port: int
    otlp_endpoint: str | None = None
    docs_dir: Path | None = None
    dimensions: int = DEFAULT_DIMENSIONS


class RetrieverMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.http = HttpMetrics("retriever", registry)
        self.searches = Counter("retriever_searches", "Searches run against the index.", registry=registry)
        self.results = Histogram(
            "retriever_search_results",
            "Results returned per search.",
            buckets=(0, 1, 2, 3, 4, 5, 8, 12, 20, 50),
            registry=registry,
        )
        self.index_size = Gauge("retriever_index_size", "Chunks held in the vector index.", registry=registry)


def create_app(
    settings: RetrieverSettings, registry: CollectorRegistry | None = None, index: SearchIndex | None = None
) -> FastAPI:
    index = index or SearchIndex(load_chunks(settings.docs_dir), HashingEmbedder(settings.dimensions))
    metrics = RetrieverMetrics(registry or CollectorRegistry())
    metrics.index_size.set(index.size)

    app = FastAPI(title="llmlens demo retriever")

    @app.get("/metrics", include_in_schema=False)
    def metrics_page() -> Response:
        return metrics.http.exposition()

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        return {"status": "ok", "index_size": index.size}

    @app.post("/search")
    def search(request: SearchRequest) -> SearchResponse:
        hits = _traced_search(index, request)
        metrics.searches.inc()
        metrics.results.observe(len(hits))
        log.info("search", top_k=request.top_k, results=len(hits), index_size=index.size)
        return SearchResponse(results=[_result(h) for h in hits], index_size=index.size)

    app.add_middleware(HttpMetricsMiddleware, metrics=metrics.http)
    return app


def _traced_search(index: SearchIndex, request: SearchRequest) -> list[Hit]:
    attributes = {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.data_source.id": DATA_SOURCE_ID,
        "gen_ai.retrieval.query.text": request.query,
        "retrieval.top_k": request.top_k,
        "retrieval.min_score": request.min_score,
        "retrieval.index.size": index.size,
    }
    with llmlens.span(f"retrieval {DATA_SOURCE_ID}", kind="retrieval", attributes=attributes) as span:
        with llmlens.span(
            "embed query",
            kind="embedding",
            attributes={
                "gen_ai.embeddings.dimension.count": index.embedder.dimensions,
                "embedding.model": "hashing",
            },
        ):
            vector = index.embedder.embed_one(request.query)
        with llmlens.span(
            "vector index search",
            attributes={
                "db.system.name": "faiss",
                "retrieval.index.type": "IndexFlatIP",
                "retrieval.top_k": request.top_k,
            },
        ) as search_span:
            hits = index.search_vector(vector, request.top_k, request.min_score)
            search_span.set_attribute("retrieval.result.count", len(hits))
        for key, value in _result_attributes(hits).items():
            span.set_attribute(key, value)
    return hits


def _result_attributes(hits: Sequence[Hit]) -> dict[str, float | int]:
    attrs: dict[str, float | int] = {"retrieval.result.count": len(hits)}
    if hits:
        scores = [h.score for h in hits]
        attrs |= {
            "retrieval.score.min": min(scores),
            "retrieval.score.max": max(scores),
            "retrieval.score.avg": sum(scores) / len(scores),
        }
    return attrs


def _result(hit: Hit) -> SearchResult:
    c = hit.chunk
    return SearchResult(
        chunk_id=c.chunk_id, doc_id=c.doc_id, title=c.title, text=c.text, score=round(hit.score, 4)
    )


def run(args: argparse.Namespace) -> int:
    settings = RetrieverSettings(
        host=args.host, port=args.port, otlp_endpoint=args.otlp_endpoint, docs_dir=args.docs_dir
    )
    return serve(
        SERVICE_NAME, settings.host, settings.port, settings.otlp_endpoint, lambda: create_app(settings)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmlens demo retriever", description=RETRIEVER_HELP)
    add_retriever_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

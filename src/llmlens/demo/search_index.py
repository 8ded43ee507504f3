"""The bundled support articles, cut into chunks and held in a FAISS inner-product index.

Vectors are L2-normalised, so inner product equals cosine similarity and scores fall in [-1, 1].
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import faiss
import numpy as np

from llmlens.demo.embedding import HashingEmbedder

MAX_CHUNK_CHARS = 700


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float


def bundled_docs_dir() -> Path:
    return Path(str(resources.files("llmlens.demo") / "docs"))


def load_chunks(docs_dir: Path | None = None) -> list[Chunk]:
    """Read every Markdown file and split it at second-level headings (and overlong paragraphs)."""
    directory = docs_dir or bundled_docs_dir()
    files = sorted(directory.glob("*.md"))
    if not files:
        raise FileNotFoundError(f"no .md documents in {directory}")
    chunks: list[Chunk] = []
    for path in files:
        chunks.extend(_chunk_document(path.stem, path.read_text(encoding="utf-8")))
    return chunks


def _chunk_document(doc_id: str, markdown: str) -> list[Chunk]:
    title_match = re.search(r"^# (.+)$", markdown, flags=re.MULTILINE)
    title = title_match.group(1).strip() if title_match else doc_id
    body = re.sub(r"^# .+$", "", markdown, count=1, flags=re.MULTILINE)
    sections = [s.strip() for s in re.split(r"^## ", body, flags=re.MULTILINE) if s.strip()]
    pieces: list[str] = []
    for section in sections:
        pieces.extend(_split_long(section))
    # The title goes into every chunk's text: it is often the best single description of the topic.
    return [Chunk(f"{doc_id}#{i}", doc_id, title, f"{title}. {piece}") for i, piece in enumerate(pieces)]


def _split_long(section: str) -> list[str]:
    paragraphs = [p.strip() for p in section.split("\n\n") if p.strip()]
    out: list[str] = []
    current = ""
    for para in paragraphs:
        joined = f"{current}\n\n{para}" if current else para
        if current and len(joined) > MAX_CHUNK_CHARS:
            out.append(current)
            current = para
        else:
            current = joined
    if current:
        out.append(current)
    return [" ".join(p.split()) for p in out]


class SearchIndex:
    """Fits the embedder on the chunks, embeds them once at start-up, answers nearest-neighbour queries."""

    def __init__(self, chunks: list[Chunk], embedder: HashingEmbedder) -> None:
        self.chunks = chunks
        self.embedder = embedder.fit(c.text for c in chunks)
        self._index = faiss.IndexFlatIP(embedder.dimensions)
        if chunks:
            self._index.add(embedder.embed(c.text for c in chunks))

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    def search_vector(self, vector: np.ndarray, top_k: int, min_score: float) -> list[Hit]:
        k = min(top_k, self.size)
        if k <= 0:
            return []
        scores, ids = self._index.search(vector.reshape(1, -1).astype(np.float32), k)
        return [
            Hit(self.chunks[int(i)], float(s))
            for s, i in zip(scores[0], ids[0], strict=True)
            if i >= 0 and s >= min_score
        ]

    def search(self, query: str, top_k: int, min_score: float = 0.0) -> list[Hit]:
        return self.search_vector(self.embedder.embed_one(query), top_k, min_score)

"""PDF file in, chunks with embeddings out: extract, normalise, chunk, embed.

Pages stream through extraction and normalisation one at a time; only chunk texts and their
vectors are kept, so memory follows the amount of text, never the number of pages held open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.chunking import TextChunk, chunk_pages
from pipeline.embedding import Embedder
from pipeline.errors import NoExtractableText
from pipeline.normalise import normalise_text
from pipeline.pdf import PageText, PdfSource
from pipeline.pdf_isolation import ReadLimits, read_pdf

# Fewer letters than this in the whole document: a scan or a picture book, not text.
MIN_LETTERS = 10


@dataclass(frozen=True)
class IngestProgress:
    stage: str  # "extracting" (pages), "embedding" (chunks)
    done: int
    total: int


@dataclass(frozen=True)
class IngestedDocument:
    page_count: int
    chunks: list[TextChunk]
    vectors: np.ndarray  # one row per chunk
    embedding_tokens: int


@dataclass(frozen=True)
class ChunkingOptions:
    chunk_tokens: int
    overlap_tokens: int
    limits: ReadLimits
    batch_size: int = 32


def _noop(_: IngestProgress) -> None:
    return None


def normalised_pages(
    source: PdfSource, on_page: Callable[[int], None] = lambda _: None
) -> Iterator[PageText]:
    for page in source.pages():
        yield PageText(page.number, normalise_text(page.text))
        on_page(page.number)


def ingest_pdf(
    path: Path,
    embedder: Embedder,
    options: ChunkingOptions,
    on_progress: Callable[[IngestProgress], None] = _noop,
) -> IngestedDocument:
    """Read, chunk and embed one PDF. `on_progress` may raise to stop the work early."""
    with read_pdf(path, options.limits) as source:
        total_pages = source.page_count
        on_progress(IngestProgress("extracting", 0, total_pages))
        pages = normalised_pages(
            source, lambda n: on_progress(IngestProgress("extracting", n, total_pages))
        )
        chunks = list(chunk_pages(pages, options.chunk_tokens, options.overlap_tokens))
    if sum(ch.isalpha() for chunk in chunks for ch in chunk.text) < MIN_LETTERS:
        raise NoExtractableText()
    batches: list[np.ndarray] = []
    tokens = 0
    on_progress(IngestProgress("embedding", 0, len(chunks)))
    for start in range(0, len(chunks), options.batch_size):
        batch = chunks[start : start + options.batch_size]
        embedded = embedder.embed_passages([chunk.text for chunk in batch])
        batches.append(embedded.vectors)
        tokens += embedded.prompt_tokens
        on_progress(IngestProgress("embedding", start + len(batch), len(chunks)))
    return IngestedDocument(total_pages, chunks, np.concatenate(batches), tokens)

"""PDF pages in, chunks with embeddings out: extract, drop running headers and footers,
normalise, chunk, embed.

A document is ingested in batches of pages (`ingest_pages`), so several workers can share a
large one and none holds a slot for long; `ingest_pdf` does a whole file at once. Pages
stream through extraction and normalisation one at a time; running lines are recognised
a window of pages at a time (`pipeline/margins.py`), and only chunk texts and their vectors
are kept, so memory follows the amount of text, never the number of pages. A page
that takes more than its CPU budget is skipped and reported, not fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pipeline.chunking import TextChunk, chunk_pages
from pipeline.embedding import Embedder
from pipeline.errors import NoExtractableText
from pipeline.margins import CONTEXT_PAGES, without_running_lines
from pipeline.normalise import normalise_text
from pipeline.pdf import PageText
from pipeline.pdf_isolation import ReadLimits, SkippedPage, read_page_range, read_pdf

# Fewer letters than this in the whole document: a scan or a picture book, not text.
MIN_LETTERS = 10
# Chunk ordinals of batch n start at n * ORDINAL_STRIDE: far above a batch's chunk count.
ORDINAL_STRIDE = 100_000


@dataclass(frozen=True)
class IngestProgress:
    stage: str  # "extracting" (pages), "embedding" (chunks)
    done: int
    total: int


@dataclass(frozen=True)
class IngestedPages:
    """What a batch of pages gave."""

    pages_read: int
    chunks: list[TextChunk]
    vectors: np.ndarray  # one row per chunk
    embedding_tokens: int
    letters: int  # letters in the chunks: too few in a whole document means a scan
    skipped: list[SkippedPage] = field(default_factory=list)
    pages: list[PageText] = field(default_factory=list)  # as indexed, with how each was read


@dataclass(frozen=True)
class IngestedDocument:
    page_count: int
    chunks: list[TextChunk]
    vectors: np.ndarray
    embedding_tokens: int
    skipped: list[SkippedPage]


@dataclass(frozen=True)
class ChunkingOptions:
    chunk_tokens: int
    overlap_tokens: int
    limits: ReadLimits
    batch_size: int = 32


def _noop(_: IngestProgress) -> None:
    return None


def normalised_pages(
    pages: Iterable[PageText], context: Sequence[PageText] = ()
) -> Iterator[PageText]:
    """Pages without their running lines, normalised; `context`: neighbouring pages that
    help to recognise running lines in a short run of pages."""
    for page in without_running_lines(pages, context):
        yield replace(page, text=normalise_text(page.text))


def _neighbours(path: Path, limits: ReadLimits, first: int, last: int) -> list[PageText]:
    """A few pages on each side of a short batch (none for a long one)."""
    if last - first + 1 >= 2 * CONTEXT_PAGES:
        return []
    ranges = [(max(1, first - CONTEXT_PAGES), first - 1), (last + 1, last + CONTEXT_PAGES)]
    return [
        page
        for start, end in ranges
        if start <= end
        for page in read_page_range(path, limits, start, end)
        if isinstance(page, PageText)
    ]


def ingest_pages(
    path: Path,
    embedder: Embedder,
    options: ChunkingOptions,
    first: int,
    last: int,
    ordinal_base: int = 0,
    on_progress: Callable[[IngestProgress], None] = _noop,
) -> IngestedPages:
    """Read, chunk and embed pages `first`..`last` of a PDF; chunk ordinals start at
    `ordinal_base`. `on_progress` may raise to stop the work early."""
    total = last - first + 1
    skipped: list[SkippedPage] = []
    read = 0

    def texts() -> Iterator[PageText]:
        nonlocal read
        on_progress(IngestProgress("extracting", 0, total))
        for item in read_page_range(path, options.limits, first, last):
            read += 1
            if isinstance(item, SkippedPage):
                skipped.append(item)
            else:
                yield item
            on_progress(IngestProgress("extracting", read, total))

    indexed: list[PageText] = []

    def kept(pages: Iterable[PageText]) -> Iterator[PageText]:
        for page in pages:
            indexed.append(page)
            yield page

    pages = kept(normalised_pages(texts(), _neighbours(path, options.limits, first, last)))
    chunks = [
        replace(chunk, ordinal=ordinal_base + chunk.ordinal)
        for chunk in chunk_pages(pages, options.chunk_tokens, options.overlap_tokens)
    ]
    vectors, tokens = _embed(chunks, embedder, options.batch_size, on_progress)
    letters = sum(ch.isalpha() for chunk in chunks for ch in chunk.text)
    return IngestedPages(read, chunks, vectors, tokens, letters, skipped, indexed)


def _embed(
    chunks: list[TextChunk],
    embedder: Embedder,
    batch_size: int,
    on_progress: Callable[[IngestProgress], None],
) -> tuple[np.ndarray, int]:
    batches: list[np.ndarray] = [np.zeros((0, embedder.dimension), dtype=np.float32)]
    tokens = 0
    on_progress(IngestProgress("embedding", 0, len(chunks)))
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start : start + batch_size]
        embedded = embedder.embed_passages([chunk.text for chunk in batch])
        batches.append(embedded.vectors)
        tokens += embedded.prompt_tokens
        on_progress(IngestProgress("embedding", start + len(batch), len(chunks)))
    return np.concatenate(batches), tokens


def ingest_pdf(
    path: Path,
    embedder: Embedder,
    options: ChunkingOptions,
    on_progress: Callable[[IngestProgress], None] = _noop,
) -> IngestedDocument:
    """Read, chunk and embed a whole PDF in one go."""
    with read_pdf(path, options.limits, with_text=False) as source:
        page_count = source.page_count
    done = ingest_pages(path, embedder, options, 1, page_count, on_progress=on_progress)
    if done.letters < MIN_LETTERS:
        raise NoExtractableText()
    return IngestedDocument(
        page_count, done.chunks, done.vectors, done.embedding_tokens, done.skipped
    )

"""Retrieval as a pipeline step: a question is normalised and embedded once (`embed_question`),
then searched (`retrieve`) in whatever a `Searcher` searches (db/search.py: a tenant's chunks
in Postgres, hybrid). Plain values in and out: no settings, no database here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.embedding import Embedder
from pipeline.normalise import normalise_text


@dataclass(frozen=True)
class Query:
    text: str  # normalised, as the chunks were
    vector: np.ndarray
    model: str  # the embedder that made the vector
    tokens: int  # what embedding it cost
    estimated: bool = False  # `tokens` is tiktoken's count, not the provider's


@dataclass(frozen=True)
class Hit:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    filename: str
    page_start: int
    page_end: int
    score: float
    text: str
    section: str | None = None  # the heading it falls under (formats without pages)


class Searcher(Protocol):
    def search(
        self, query: Query, top_k: int, document_ids: Sequence[uuid.UUID] | None
    ) -> list[Hit]:
        """The `top_k` best chunks for `query` (of `document_ids` when given), best first."""


def embed_question(text: str, embedder: Embedder) -> Query:
    """Normalise and embed what someone asked; an empty result means nothing searchable."""
    normalised = normalise_text(text)
    embedded = embedder.embed_query(normalised)
    return Query(
        normalised,
        embedded.vectors[0],
        embedder.model,
        embedded.prompt_tokens,
        embedder.estimates_usage,
    )


def retrieve(
    query: Query,
    searcher: Searcher,
    top_k: int,
    document_ids: Sequence[uuid.UUID] | None = None,
) -> list[Hit]:
    return searcher.search(query, top_k, document_ids)

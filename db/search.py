"""Hybrid retrieval in one SQL statement: HNSW cosine search and weighted full-text search,
fused by weighted reciprocal rank fusion.

score = 1 / (RRF_K + vector rank) + LEXICAL_WEIGHT / (RRF_K + lexical rank)
        + 1 / (RRF_K + 1) for a chunk holding every content word of the query
        + 1 / (RRF_K + 1) for a chunk holding the query as a phrase

The lexical rank is by the summed inverse document frequency (among the tenant's chunks) of
the query's content words a chunk holds, function words left out (`pipeline/lexicon.py`): a
rare identifier such as `\\DeclareFontSubstitution` or a name and a year ("Cork 1990") weigh
far more than "how" or "the", which ts_rank alone would count as much. The two bonuses put a
chunk that contains what was asked word for word at the top, whatever its vector rank. The
weights were measured on the dev set (`make bench`: vector only, text only, fused). The same
counts (`term_counts`) tell the offline answerer which of a question's words matter.

Full text uses the `simple` configuration (no stemming), so Persian words match as written;
digits fold to ASCII and the zero-width non-joiner goes, on both sides. Tenant filters can
leave an HNSW scan short of k rows, so the scan is iterative (pgvector >= 0.8,
`relaxed_order`), and the ranks are recomputed from exact distances afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import Text, TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Session

from pipeline.lexicon import STOP_WORDS, TermCounts, fold
from pipeline.retrieval import Hit, Query

SearchMode = Literal["hybrid", "vector", "text"]

RRF_K = 60
LEXICAL_WEIGHT = 0.5
MIN_CANDIDATES = 40
NAMED_WEIGHT = 1.0
# Words of a file name that name no document in particular, and names too short to tell.
GENERIC_NAMES = frozenset(
    [
        "doc",
        "docs",
        "document",
        "documentation",
        "guide",
        "user",
        "userguide",
        "manual",
        "readme",
        "final",
        "draft",
        "copy",
        "new",
        "pdf",
        "book",
        "notes",
        "en",
        "fa",
    ]
)
MIN_NAME_LENGTH = 3
# Document frequencies are counted up to this many chunks: rarer is what matters.
DF_CAP = 10_000

_VECTOR_HITS = """
vector_hits AS (
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank
    FROM (
        SELECT id, embedding <=> :query_vector AS distance
        FROM chunks
        WHERE tenant_id = :tenant_id {document_filter}
        ORDER BY embedding <=> :query_vector
        LIMIT :candidates
    ) AS nearest
)"""

_TERM_WEIGHTS = """
terms AS (
    SELECT lexeme, to_tsquery('simple', quote_literal(lexeme)) AS tsquery
    FROM unnest(tsvector_to_array(to_tsvector('simple', :query_text))) AS lexeme
    WHERE NOT lexeme = ANY(:stop_words)
),
corpus AS (
    SELECT greatest(count(*), 1) AS n
    FROM (SELECT 1 FROM chunks WHERE tenant_id = :tenant_id LIMIT :df_cap * 10) AS capped
),
weights AS (
    SELECT terms.lexeme, terms.tsquery, ln(1 + (corpus.n - df.n + 0.5) / (df.n + 0.5)) AS idf,
           df.n AS holding, corpus.n AS chunks
    FROM terms, corpus, LATERAL (
        SELECT count(*) AS n FROM (
            SELECT 1 FROM chunks
            WHERE tenant_id = :tenant_id AND search_vector @@ terms.tsquery LIMIT :df_cap
        ) AS capped
    ) AS df
)"""

_LEXICAL_HITS = """
{term_weights},
query AS (
    SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) AS any_term,
           sum(idf) AS idf, count(*) AS terms,
           phraseto_tsquery('simple', :query_text) AS phrase
    FROM weights
),
lexical AS (
    SELECT chunks.id,
           (SELECT sum(idf) FROM weights WHERE chunks.search_vector @@ weights.tsquery)
             AS matched,
           chunks.search_vector @@ query.phrase AS in_phrase
    FROM chunks, query
    WHERE chunks.tenant_id = :tenant_id {document_filter}
      AND chunks.search_vector @@ query.any_term
),
lexical_hits AS (
    SELECT lexical.id, row_number() OVER (ORDER BY matched DESC, lexical.id) AS rank,
           matched >= query.idf * 0.999 AS every_word,
           in_phrase AND query.terms >= 2 AS phrase
    FROM lexical, query
    ORDER BY matched DESC, lexical.id
    LIMIT :candidates
)"""

# Chunks of the documents the question names (a word of it in a file's name: "todonotes" for
# todonotes.pdf), nearest first: a question that names a document is about it, even when its
# other words are in another language than the document.
_NAMED_HITS = """
named AS (
    SELECT id FROM (
        SELECT documents.id, count(*) AS names, max(count(*)) OVER () AS most
        FROM documents, terms
        WHERE documents.tenant_id = :tenant_id
          AND char_length(terms.lexeme) >= :min_name_length
          AND NOT terms.lexeme = ANY(:generic_names)
          AND strpos(
              '-' || translate(lower(documents.filename), '_. ', '---') || '-',
              '-' || translate(terms.lexeme, '_. ', '---') || '-'
          ) > 0
        GROUP BY documents.id
    ) AS matched
    WHERE names = most
),
named_hits AS (
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank
    FROM (
        SELECT id, embedding <=> :query_vector AS distance
        FROM chunks
        WHERE tenant_id = :tenant_id AND document_id IN (SELECT id FROM named) {document_filter}
        ORDER BY embedding <=> :query_vector
        LIMIT :candidates
    ) AS nearest
)"""

_FUSED = """
WITH {vector_hits}, {lexical_hits}, {named_hits}
SELECT chunks.id AS chunk_id, chunks.document_id, documents.filename, chunks.page_start,
       chunks.page_end, chunks.text, chunks.section,
       coalesce(1.0 / (:rrf_k + vector_hits.rank), 0)
         + coalesce(:lexical_weight / (:rrf_k + lexical_hits.rank), 0)
         + CASE WHEN lexical_hits.every_word THEN 1.0 / (:rrf_k + 1) ELSE 0 END
         + CASE WHEN lexical_hits.phrase THEN 1.0 / (:rrf_k + 1) ELSE 0 END
         + coalesce(:named_weight / (:rrf_k + named_hits.rank), 0) AS score
FROM vector_hits
FULL OUTER JOIN lexical_hits ON lexical_hits.id = vector_hits.id
FULL OUTER JOIN named_hits ON named_hits.id = coalesce(vector_hits.id, lexical_hits.id)
JOIN chunks ON chunks.id = coalesce(vector_hits.id, lexical_hits.id, named_hits.id)
JOIN documents ON documents.id = chunks.document_id
ORDER BY score DESC, chunks.id
LIMIT :top_k
"""

_ONE_LIST = """
WITH {hits}
SELECT chunks.id AS chunk_id, chunks.document_id, documents.filename, chunks.page_start,
       chunks.page_end, chunks.text, chunks.section, 1.0 / (:rrf_k + hits.rank) AS score
FROM {name} AS hits
JOIN chunks ON chunks.id = hits.id
JOIN documents ON documents.id = chunks.document_id
ORDER BY hits.rank
LIMIT :top_k
"""

_TERM_COUNTS = """
WITH {term_weights}
SELECT lexeme, holding, chunks FROM weights
"""

_ITERATIVE_SCAN = text(
    "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('hnsw.ef_search', :ef_search, true)"
)


def _sql(mode: SearchMode, document_filter: str) -> str:
    vector_hits = _VECTOR_HITS.format(document_filter=document_filter)
    lexical_hits = _LEXICAL_HITS.format(term_weights=_TERM_WEIGHTS, document_filter=document_filter)
    if mode == "vector":
        return _ONE_LIST.format(hits=vector_hits, name="vector_hits")
    if mode == "text":
        return _ONE_LIST.format(hits=lexical_hits, name="lexical_hits")
    named_hits = _NAMED_HITS.format(document_filter=document_filter)
    return _FUSED.format(vector_hits=vector_hits, lexical_hits=lexical_hits, named_hits=named_hits)


def _statement(
    tenant_id: uuid.UUID,
    query_text: str,
    query_vector: np.ndarray,
    top_k: int,
    document_ids: Sequence[uuid.UUID] | None,
    mode: SearchMode = "hybrid",
) -> tuple[TextClause, dict[str, Any]]:
    sql = _sql(mode, "AND document_id = ANY(:document_ids)" if document_ids else "")
    values: dict[str, Any] = {"tenant_id": tenant_id, "rrf_k": RRF_K, "top_k": top_k}
    values["candidates"] = max(MIN_CANDIDATES, 4 * top_k)
    params = []
    if mode != "text":
        params.append(bindparam("query_vector", type_=Vector(len(query_vector))))
        values["query_vector"] = query_vector
    if mode != "vector":
        params.append(bindparam("stop_words", type_=ARRAY(Text())))
        values |= {"query_text": fold(query_text), "stop_words": sorted(STOP_WORDS)}
        values |= {"df_cap": DF_CAP, "lexical_weight": LEXICAL_WEIGHT}
    if mode == "hybrid":
        params.append(bindparam("generic_names", type_=ARRAY(Text())))
        values |= {"named_weight": NAMED_WEIGHT, "min_name_length": MIN_NAME_LENGTH}
        values["generic_names"] = sorted(GENERIC_NAMES)
    if document_ids:
        params.append(bindparam("document_ids", type_=ARRAY(UUID(as_uuid=True))))
        values["document_ids"] = list(document_ids)
    return text(sql).bindparams(*params), values


def _ef_search(top_k: int) -> dict[str, str]:
    return {"ef_search": str(max(100, 4 * top_k))}


def term_counts(session: Session, tenant_id: uuid.UUID, words: str) -> TermCounts:
    """How many of the tenant's chunks hold each content word of `words` (as the lexical
    search counts them for its weights), by folded word."""
    sql = _TERM_COUNTS.format(term_weights=_TERM_WEIGHTS)
    statement = text(sql).bindparams(bindparam("stop_words", type_=ARRAY(Text())))
    values = {
        "tenant_id": tenant_id,
        "query_text": fold(words),
        "stop_words": sorted(STOP_WORDS),
        "df_cap": DF_CAP,
    }
    rows = session.execute(statement, values).all()
    chunks = rows[0].chunks if rows else 0
    return TermCounts(chunks, {row.lexeme: row.holding for row in rows})


class TenantSearch:
    """A tenant's chunks as pipeline.retrieval searches them, in the caller's transaction.
    `mode` is for measuring (`make bench`): the product searches `hybrid`."""

    def __init__(self, session: Session, tenant_id: uuid.UUID, mode: SearchMode = "hybrid") -> None:
        self._session = session
        self._tenant_id = tenant_id
        self._mode = mode

    def search(
        self, query: Query, top_k: int, document_ids: Sequence[uuid.UUID] | None
    ) -> list[Hit]:
        statement, values = _statement(
            self._tenant_id, query.text, query.vector, top_k, document_ids, self._mode
        )
        self._session.execute(_ITERATIVE_SCAN, _ef_search(top_k))
        rows = self._session.execute(statement, values).mappings().all()
        return [Hit(**row) for row in rows]

"""Hybrid retrieval in one SQL statement: HNSW cosine search and full-text search, fused by
reciprocal rank fusion (score = sum over both lists of 1 / (RRF_K + rank)).

Full text uses the `simple` configuration (no stemming, no stop words), so Persian words match
as written; digits are folded to ASCII on both sides. Tenant filters can leave an HNSW scan
short of k rows, so the scan is iterative (pgvector >= 0.8, `relaxed_order`), and the ranks
are recomputed from exact distances afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Session

from pipeline.retrieval import Hit, Query

RRF_K = 60
MIN_CANDIDATES = 40

_DIGITS = "translate({value}, '۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩', '01234567890123456789')"

_SEARCH_SQL = """
WITH vector_hits AS (
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank
    FROM (
        SELECT id, embedding <=> :query_vector AS distance
        FROM chunks
        WHERE tenant_id = :tenant_id {document_filter}
        ORDER BY embedding <=> :query_vector
        LIMIT :candidates
    ) AS nearest
),
query AS (
    SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) AS tsquery
    FROM unnest(tsvector_to_array(to_tsvector('simple', {folded_query}))) AS lexeme
),
lexical_hits AS (
    SELECT chunks.id,
           row_number() OVER (
               ORDER BY ts_rank_cd(chunks.search_vector, query.tsquery) DESC, chunks.id
           ) AS rank
    FROM chunks, query
    WHERE chunks.tenant_id = :tenant_id {document_filter}
      AND chunks.search_vector @@ query.tsquery
    ORDER BY ts_rank_cd(chunks.search_vector, query.tsquery) DESC, chunks.id
    LIMIT :candidates
)
SELECT chunks.id AS chunk_id, chunks.document_id, documents.filename, chunks.page_start,
       chunks.page_end, chunks.text,
       coalesce(1.0 / (:rrf_k + vector_hits.rank), 0)
         + coalesce(1.0 / (:rrf_k + lexical_hits.rank), 0) AS score
FROM vector_hits
FULL OUTER JOIN lexical_hits ON lexical_hits.id = vector_hits.id
JOIN chunks ON chunks.id = coalesce(vector_hits.id, lexical_hits.id)
JOIN documents ON documents.id = chunks.document_id
ORDER BY score DESC, chunks.id
LIMIT :top_k
"""

_ITERATIVE_SCAN = text(
    "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('hnsw.ef_search', :ef_search, true)"
)


def _statement(
    tenant_id: uuid.UUID,
    query_text: str,
    query_vector: np.ndarray,
    top_k: int,
    document_ids: Sequence[uuid.UUID] | None,
) -> tuple[TextClause, dict[str, Any]]:
    sql = _SEARCH_SQL.format(
        document_filter="AND document_id = ANY(:document_ids)" if document_ids else "",
        folded_query=_DIGITS.format(value=":query_text"),
    )
    params = [bindparam("query_vector", type_=Vector(len(query_vector)))]
    if document_ids:
        params.append(bindparam("document_ids", type_=ARRAY(UUID(as_uuid=True))))
    values: dict[str, Any] = {
        "query_vector": query_vector,
        "tenant_id": tenant_id,
        "query_text": query_text,
        "candidates": max(MIN_CANDIDATES, 4 * top_k),
        "rrf_k": RRF_K,
        "top_k": top_k,
    }
    if document_ids:
        values["document_ids"] = list(document_ids)
    return text(sql).bindparams(*params), values


def _ef_search(top_k: int) -> dict[str, str]:
    return {"ef_search": str(max(100, 4 * top_k))}


class TenantSearch:
    """A tenant's chunks as pipeline.retrieval searches them, in the caller's transaction."""

    def __init__(self, session: Session, tenant_id: uuid.UUID) -> None:
        self._session = session
        self._tenant_id = tenant_id

    def search(
        self, query: Query, top_k: int, document_ids: Sequence[uuid.UUID] | None
    ) -> list[Hit]:
        statement, values = _statement(
            self._tenant_id, query.text, query.vector, top_k, document_ids
        )
        self._session.execute(_ITERATIVE_SCAN, _ef_search(top_k))
        rows = self._session.execute(statement, values).mappings().all()
        return [Hit(**row) for row in rows]

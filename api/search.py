"""`POST /v1/search`: hybrid retrieval over the caller's tenant's documents
(usecases/retrieval.py)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Router, post
from litestar.params import JSONBody

from api.identity import CallerDep
from api.params import parse_document_ids, text_field
from api.resources import ResourcesDep
from usecases import retrieval


class SearchRequest(msgspec.Struct, forbid_unknown_fields=True):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    top_k: Annotated[int, msgspec.Meta(ge=1, le=50)] | None = None
    document_ids: Annotated[list[str], msgspec.Meta(max_length=100)] | None = None


class SearchResult(msgspec.Struct):
    chunk_id: str
    document_id: str
    filename: str
    page_start: int
    page_end: int
    score: float
    text: str
    section: str | None = None  # formats without pages: the heading it falls under


class SearchResponse(msgspec.Struct):
    results: list[SearchResult]


@post("/", status_code=200, summary="Ranked chunks for a query")
async def search(
    resources: ResourcesDep, caller: CallerDep, data: JSONBody[SearchRequest]
) -> SearchResponse:
    hits = await retrieval.search(
        resources,
        caller,
        text_field(data.query, "query"),
        data.top_k,
        parse_document_ids(data.document_ids),
    )
    return SearchResponse(
        [
            SearchResult(
                chunk_id=str(hit.chunk_id),
                document_id=str(hit.document_id),
                filename=hit.filename,
                page_start=hit.page_start,
                page_end=hit.page_end,
                score=round(float(hit.score), 6),
                text=hit.text,
                section=hit.section,
            )
            for hit in hits
        ]
    )


router = Router("/search", tags=["search"], route_handlers=[search])

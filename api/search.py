"""`POST /v1/search`: hybrid retrieval over the caller's tenant's documents."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
import msgspec
from litestar import Request, post
from litestar.params import JSONBody

from api.files import parse_document_ids, text_field
from api.identity import Caller
from api.resources import resources_of
from api.usage import require_quota
from core.errors import InvalidInput
from db.documents import require_documents
from db.engine import async_unit_of_work
from db.search import hybrid_search
from db.usage import record_usage
from pipeline.normalise import normalise_text


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


class SearchResponse(msgspec.Struct):
    results: list[SearchResult]


@post("/v1/search", status_code=200, tags=["search"], summary="Ranked chunks for a query")
async def search(
    request: Request[Caller, Any, Any], data: JSONBody[SearchRequest]
) -> SearchResponse:
    resources = resources_of(request)
    caller = request.user
    query = normalise_text(text_field(data.query, "query"))
    if not query:
        raise InvalidInput("query", "the query has no searchable text")
    document_ids = parse_document_ids(data.document_ids)
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        if document_ids:
            await require_documents(session, document_ids)
        await require_quota(session, caller)
    embedder = resources.embedder
    embedded = await anyio.to_thread.run_sync(embedder.embed_query, query)
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        hits = await session.run_sync(
            hybrid_search,
            caller.tenant_id,
            query,
            embedded.vectors[0],
            data.top_k or resources.settings.top_k,
            document_ids,
        )
        await session.run_sync(  # last: the tenant's month total stays locked only until commit
            record_usage,
            tenant_id=caller.tenant_id,
            user_id=caller.user_id,
            job_id=None,
            kind="embedding",
            model=embedder.model,
            prompt_tokens=embedded.prompt_tokens,
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
            )
            for hit in hits
        ]
    )

"""Finding a question's chunks in a tenant's documents, and counting the embedding it took:
the one retrieval that searches (POST /v1/search) and answers (chat jobs) share."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import anyio.to_thread
from sqlalchemy.orm import Session

from core.errors import InvalidInput
from db.documents import require_documents
from db.engine import async_unit_of_work
from db.jobs import hold_job
from db.search import TenantSearch
from db.usage import record_usage
from pipeline.normalise import normalise_text
from pipeline.retrieval import Hit, Query, embed_question, retrieve
from usecases.ports import ApiParts, Who
from usecases.quota import require_quota


def search_chunks(
    session: Session,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID | None,
    query: Query,
    top_k: int,
    document_ids: Sequence[uuid.UUID] | None,
    job_id: uuid.UUID | None = None,
) -> list[Hit]:
    """The `top_k` best chunks for an embedded question, with its embedding counted (for
    the chat job that asked, when one did and it still exists)."""
    hits = retrieve(query, TenantSearch(session, tenant_id), top_k, document_ids)
    record_usage(  # last: the tenant's month total stays locked only until the commit
        session,
        tenant_id=tenant_id,
        user_id=user_id,
        job_id=job_id if job_id is not None and hold_job(session, job_id) else None,
        kind="embedding",
        model=query.model,
        prompt_tokens=query.tokens,
        estimated=query.estimated,
    )
    return hits


async def search(
    parts: ApiParts,
    who: Who,
    text: str,
    top_k: int | None,
    document_ids: Sequence[uuid.UUID] | None,
) -> list[Hit]:
    """POST /v1/search: the caller's tenant's best chunks for `text`. Documents named must
    be the tenant's, and a tenant over its quota spends nothing more."""
    if not normalise_text(text):
        raise InvalidInput("query", "the query has no searchable text")
    async with async_unit_of_work(parts.engine, who.tenant_id) as session:
        if document_ids:
            await require_documents(session, document_ids)
        await require_quota(session, who)
    query = await anyio.to_thread.run_sync(embed_question, text, parts.embedder)
    async with async_unit_of_work(parts.engine, who.tenant_id) as session:
        return await session.run_sync(
            search_chunks,
            who.tenant_id,
            who.user_id,
            query,
            top_k or parts.settings.top_k,
            document_ids,
        )

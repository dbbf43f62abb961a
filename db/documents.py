"""Documents, their bytes and their chunks: the queries behind uploads, listings and ingestion.

The API side is async (it runs in the event loop); the worker side is sync (it runs in
Dramatiq's threads). Callers own the transaction: nothing here commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.errors import InvalidInput, NotFound
from db.jobs import ACTIVE, new_ingest_job
from db.models import Chunk, Document, DocumentBlob, Job, PageRecord
from db.paging import decode_cursor, page_of

BLOB_PART_BYTES = 1 << 20


@dataclass(frozen=True)
class StoredUpload:
    """A checked upload waiting in a temporary file."""

    path: Path
    filename: str
    size_bytes: int
    sha256: str
    page_count: int


# --- API side -------------------------------------------------------------------------------


async def add_document(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: uuid.UUID, upload: StoredUpload
) -> tuple[Document, Job | None, bool]:
    """The document for this upload and its ingest job, and whether it is new.

    The same bytes uploaded again by the same tenant give back the existing document and its
    latest job; the unique (tenant, sha256) key settles two identical uploads racing.
    """
    new_id = await session.scalar(
        pg_insert(Document)
        .values(
            tenant_id=tenant_id,
            uploaded_by=user_id,
            filename=upload.filename,
            size_bytes=upload.size_bytes,
            sha256=upload.sha256,
            page_count=upload.page_count,
        )
        .on_conflict_do_nothing(index_elements=[Document.tenant_id, Document.sha256])
        .returning(Document.id)
    )
    if new_id is None:
        existing = await session.scalar(
            select(Document).where(
                Document.tenant_id == tenant_id, Document.sha256 == upload.sha256
            )
        )
        if existing is None:  # deleted between the insert and the select
            raise NotFound("the document was deleted while uploading; upload it again")
        return existing, await latest_job(session, existing.id), False
    with upload.path.open("rb") as file:
        for part, data in enumerate(iter(lambda: file.read(BLOB_PART_BYTES), b"")):
            await session.execute(
                insert(DocumentBlob).values(
                    document_id=new_id, part=part, tenant_id=tenant_id, data=data
                )
            )
    job = new_ingest_job(tenant_id, user_id, new_id)
    session.add(job)
    await session.flush()
    document = await session.get_one(Document, new_id)
    return document, job, True


async def latest_job(session: AsyncSession, document_id: uuid.UUID) -> Job | None:
    return await session.scalar(
        select(Job)
        .where(Job.document_id == document_id, Job.kind == "ingest")
        .order_by(Job.created_at.desc())
        .limit(1)
    )


async def list_documents(
    session: AsyncSession, limit: int, cursor: str | None
) -> tuple[list[Document], str | None]:
    """A page of the tenant's documents, newest first, and the cursor of the next page."""
    query = select(Document).order_by(Document.created_at.desc(), Document.id.desc())
    if cursor:
        created, ident = decode_cursor(cursor)
        query = query.where(tuple_(Document.created_at, Document.id) < tuple_(created, ident))
    rows = (await session.scalars(query.limit(limit + 1))).all()
    return page_of(rows, limit, lambda document: (document.created_at, document.id))


async def get_document(session: AsyncSession, document_id: uuid.UUID) -> Document:
    document = await session.get(Document, document_id)
    if document is None:
        raise NotFound(f"no document {document_id}")
    return document


@dataclass(frozen=True)
class PageSummary:
    number: int
    source: str
    flagged: bool
    note: str | None


async def page_summaries(session: AsyncSession, document_id: uuid.UUID) -> list[PageSummary]:
    """How each page of a document was read (no texts), in page order."""
    rows = await session.execute(
        select(PageRecord.number, PageRecord.source, PageRecord.flagged, PageRecord.note)
        .where(PageRecord.document_id == document_id)
        .order_by(PageRecord.number)
    )
    return [PageSummary(*row) for row in rows]


async def get_page(session: AsyncSession, document: Document, number: int) -> PageRecord:
    """Page `number` of a document as stored; NotFound with the reason otherwise."""
    page = await session.get(PageRecord, (document.id, number))
    if page is not None:
        return page
    if document.page_count is not None and not 1 <= number <= document.page_count:
        raise NotFound(
            f"{document.filename} has no page {number}; its last page is {document.page_count}"
        )
    if document.status in ("queued", "processing"):
        raise NotFound(f"page {number} of {document.filename} has not been read yet")
    if document.status == "failed":
        raise NotFound(f"{document.filename} failed to ingest: {document.error or 'no reason'}")
    raise NotFound(
        f"{document.filename} was ingested before DocuChat kept the text of each page; "
        "an operator's `docuchat reindex` reads it again"
    )


async def locked_document(session: AsyncSession, document_id: uuid.UUID) -> Document:
    document = await session.get(Document, document_id, with_for_update=True)
    if document is None:
        raise NotFound(f"no document {document_id}")
    return document


async def delete_document(session: AsyncSession, document: Document) -> None:
    """Delete a document, its bytes and chunks; its unfinished ingest job ends cancelled."""
    await session.execute(
        update(Job)
        .where(Job.document_id == document.id, Job.status.in_(ACTIVE))
        .values(
            status="cancelled",
            error="the document was deleted",
            claimed_by=None,
            finished_at=func.now(),
            updated_at=func.now(),
        )
    )
    await session.execute(delete(Document).where(Document.id == document.id))


# --- worker side ----------------------------------------------------------------------------


def copy_blob(session: Session, document_id: uuid.UUID, out: IO[bytes]) -> int:
    """Write a document's bytes to `out` one part at a time; returns the bytes written."""
    written = 0
    part = 0
    while True:
        data = session.scalar(
            select(DocumentBlob.data).where(
                DocumentBlob.document_id == document_id, DocumentBlob.part == part
            )
        )
        if data is None:
            return written
        out.write(data)
        written += len(data)
        part += 1


def lock_document(session: Session, document_id: uuid.UUID) -> Document | None:
    return session.get(Document, document_id, with_for_update=True, populate_existing=True)


class ChunkRow(Protocol):
    """What a chunk must offer to be stored (the pipeline's TextChunk does)."""

    @property
    def ordinal(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def page_start(self) -> int: ...
    @property
    def page_end(self) -> int: ...
    @property
    def token_count(self) -> int: ...
    @property
    def section(self) -> str | None: ...


class PageRow(Protocol):
    """What a page record must offer to be stored (the pipeline's PageText does)."""

    @property
    def number(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def flagged(self) -> bool: ...
    @property
    def note(self) -> str | None: ...
    @property
    def section(self) -> str | None: ...


def begin_ingestion(session: Session, document_id: uuid.UUID | None) -> Document | None:
    """The document an ingestion works on, locked and marked processing; None when it is
    gone. The caller checks its work is still wanted before committing."""
    if document_id is None:
        return None
    document = lock_document(session, document_id)
    if document is not None:
        document.status, document.error = "processing", None
    return document


def finish_document(
    session: Session,
    document: Document,
    page_count: int,
    chunk_ordinals_below: int,
    skipped_pages: list[dict[str, Any]],
) -> int:
    """A document whose batches are all stored: chunks left from an earlier ingestion cut
    into more batches go, and it is ready; returns how many chunks it has."""
    session.execute(
        delete(Chunk).where(Chunk.document_id == document.id, Chunk.ordinal >= chunk_ordinals_below)
    )
    chunks = session.scalar(
        select(func.count()).select_from(Chunk).where(Chunk.document_id == document.id)
    )
    session.execute(
        delete(PageRecord).where(
            PageRecord.document_id == document.id, PageRecord.number > page_count
        )
    )
    document.status, document.error = "ready", None
    document.page_count, document.chunk_count = page_count, int(chunks or 0)
    document.skipped_pages = skipped_pages
    document.updated_at = func.now()
    return document.chunk_count


def insert_chunks(
    session: Session, document: Document, chunks: Iterable[ChunkRow], vectors: np.ndarray
) -> int:
    rows: list[dict[str, Any]] = [
        {
            "tenant_id": document.tenant_id,
            "document_id": document.id,
            "ordinal": chunk.ordinal,
            "text": chunk.text,
            "page_start": chunk.page_start,
            "page_end": chunk.page_end,
            "token_count": chunk.token_count,
            "section": chunk.section,
            "embedding": vector,
        }
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]
    for start in range(0, len(rows), 500):
        session.execute(insert(Chunk), rows[start : start + 500])
    return len(rows)


def store_pages(
    session: Session, document: Document, first: int, last: int, pages: Iterable[PageRow]
) -> None:
    """Make the records of pages `first`..`last` exactly these."""
    session.execute(
        delete(PageRecord).where(
            PageRecord.document_id == document.id,
            PageRecord.number >= first,
            PageRecord.number <= last,
        )
    )
    rows: list[dict[str, Any]] = [
        {
            "document_id": document.id,
            "tenant_id": document.tenant_id,
            "number": page.number,
            "source": page.source,
            "flagged": page.flagged,
            "note": page.note,
            "section": page.section,
            "text": page.text,
        }
        for page in pages
    ]
    for start in range(0, len(rows), 500):
        session.execute(insert(PageRecord), rows[start : start + 500])


async def require_documents(session: AsyncSession, document_ids: Iterable[uuid.UUID]) -> None:
    """Raise InvalidInput naming those of `document_ids` the tenant has no document for."""
    wanted = list(dict.fromkeys(document_ids))
    found = set(await session.scalars(select(Document.id).where(Document.id.in_(wanted))))
    unknown = [str(ident) for ident in wanted if ident not in found]
    if unknown:
        raise InvalidInput("document_ids", f"no such documents: {', '.join(unknown)}")

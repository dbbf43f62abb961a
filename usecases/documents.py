"""A tenant's documents: storing an upload and queueing its ingestion, deleting one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio.to_thread

from core.errors import PermissionDenied
from core.settings import Settings
from db.documents import StoredUpload, add_document, delete_document, locked_document
from db.engine import async_unit_of_work
from db.jobs import fail_ingest
from db.models import Document, Job
from pipeline.pdf_isolation import ReadLimits, count_pages
from transport.broker import INGEST_ACTOR
from usecases.jobs import enqueue_or_fail
from usecases.ports import ApiParts, Who


class ReceivedFile(Protocol):
    """An upload, received into a temporary file (api/uploads.py)."""

    @property
    def path(self) -> Path: ...
    @property
    def filename(self) -> str: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def sha256(self) -> str: ...


@dataclass(frozen=True)
class Stored:
    document: Document
    job: Job | None
    created: bool  # False: the tenant had these bytes already; nothing was started


def read_limits(settings: Settings) -> ReadLimits:
    """What reading one PDF may take (its child process's memory and CPU, its pages)."""
    return ReadLimits(settings.max_pages, settings.pdf_memory_limit_mb, settings.pdf_cpu_seconds)


async def store_upload(parts: ApiParts, who: Who, received: ReceivedFile) -> Stored:
    """Check the file (a PDF within the page limit, read in a bounded child process), keep
    its bytes, and queue its ingestion. The same bytes again give back the tenant's existing
    document and start nothing."""
    limits = read_limits(parts.settings)
    pages = await anyio.to_thread.run_sync(count_pages, received.path, limits)
    upload = StoredUpload(
        received.path, received.filename, received.size_bytes, received.sha256, pages
    )
    async with async_unit_of_work(parts.engine, who.tenant_id) as session:
        document, job, created = await add_document(session, who.tenant_id, who.user_id, upload)
    if created and job is not None:
        await enqueue_or_fail(
            parts,
            who,
            job.id,
            "ingest",
            INGEST_ACTOR,
            fail_ingest,
            "the job queue is unavailable; the upload was not processed, try again shortly",
        )
    return Stored(document, job, created)


async def delete(parts: ApiParts, who: Who, document_id: uuid.UUID) -> None:
    """Delete a document, its bytes and chunks: its uploader may, and any admin; a running
    ingestion of it stops."""
    async with async_unit_of_work(parts.engine, who.tenant_id) as session:
        document = await locked_document(session, document_id)
        if not who.is_admin and document.uploaded_by != who.user_id:
            raise PermissionDenied(
                "only the member who uploaded a document, or an admin, may delete it"
            )
        await delete_document(session, document)

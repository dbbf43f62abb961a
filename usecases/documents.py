"""A tenant's documents: storing an upload and queueing its ingestion, deleting one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio.to_thread
from sqlalchemy import func

from core.errors import Conflict, PermissionDenied
from core.settings import Settings
from db.batches import add_batches_async
from db.documents import (
    StoredUpload,
    add_document,
    delete_document,
    latest_job,
    locked_document,
)
from db.engine import async_unit_of_work
from db.jobs import ACTIVE, end_job, fail_ingest, new_ingest_job
from db.models import Document, Job
from pipeline.ocr import HOW_TO_TURN_ON, OcrOptions, ocr_missing
from pipeline.pdf_isolation import ReadLimits, count_pages
from transport.queue import wake_ingestion
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


def configured_ocr(settings: Settings) -> OcrOptions:
    """How scanned pages are to be read (OCR_LANGUAGES, OCR_DPI, OCR_PAGE_SECONDS)."""
    return OcrOptions(settings.ocr_languages, settings.ocr_dpi, settings.ocr_page_seconds)


def ocr_options(settings: Settings) -> OcrOptions | None:
    """How scanned pages are read, or None when Tesseract or a language is missing."""
    options = configured_ocr(settings)
    return None if ocr_missing(options) else options


def ocr_off(settings: Settings) -> str | None:
    """Why OCR is off, with how to turn it on, for the API and each worker to say at start;
    None when it is on."""
    missing = ocr_missing(configured_ocr(settings))
    if not missing:
        return None
    return (
        f"OCR is off ({'+'.join(missing)} missing): scanned pages fail and broken fonts are "
        f"only flagged; {HOW_TO_TURN_ON}"
    )


def read_limits(settings: Settings) -> ReadLimits:
    """What reading one document may take (its child process's memory and CPU, its pages),
    and how its scanned pages are read."""
    return ReadLimits(
        settings.max_pages,
        settings.pdf_memory_limit_mb,
        settings.pdf_cpu_seconds,
        page_cpu_seconds=settings.pdf_page_cpu_seconds,
        ocr=ocr_options(settings),
    )


async def store_upload(parts: ApiParts, who: Who, received: ReceivedFile) -> Stored:
    """Check the file (a PDF within the page limit, read in a bounded child process), keep
    its bytes, and queue its ingestion in batches of pages. The same bytes again give back
    the tenant's existing document and start nothing, unless its ingestion failed: then it
    is retried."""
    limits = read_limits(parts.settings)
    pages = await anyio.to_thread.run_sync(count_pages, received.path, limits)
    upload = StoredUpload(
        received.path, received.filename, received.size_bytes, received.sha256, pages
    )
    async with async_unit_of_work(parts.engine, who.tenant_id) as session:
        document, job, created = await add_document(session, who.tenant_id, who.user_id, upload)
        if created and job is not None:
            batches = await add_batches_async(
                session, job, pages, parts.settings.ingest_batch_pages
            )
    if not created:
        if document.status == "failed":  # the same bytes again: try once more
            return await retry(parts, who, document.id, uploaded_again=True)
        return Stored(document, job, created=False)
    assert job is not None
    await _queue(parts, who, job, batches)
    return Stored(document, job, created=True)


async def retry(
    parts: ApiParts, who: Who, document_id: uuid.UUID, *, uploaded_again: bool = False
) -> Stored:
    """Ingest a document again: one that failed, or whose ingestion looks stuck (an
    ingestion still under way is cancelled and starts over). Its uploader may, and any admin,
    and anyone who uploads the same bytes again. A ready document is a conflict."""
    async with async_unit_of_work(parts.engine, who.tenant_id) as session:
        document = await locked_document(session, document_id)
        if not (uploaded_again or who.is_admin or document.uploaded_by == who.user_id):
            raise PermissionDenied(
                "only the member who uploaded a document, or an admin, may retry it"
            )
        if document.status == "ready":
            raise Conflict("the document is ready; there is nothing to retry")
        if document.page_count is None:
            raise Conflict("the document was never read; upload it again")
        previous = await latest_job(session, document.id)
        if previous is not None and previous.status in ACTIVE:
            await session.run_sync(
                lambda sync: end_job(sync, previous.id, "cancelled", "retried on request")
            )
        job = new_ingest_job(who.tenant_id, who.user_id, document.id)
        session.add(job)
        await session.flush()
        batches = await add_batches_async(
            session, job, document.page_count, parts.settings.ingest_batch_pages
        )
        document.status, document.error, document.skipped_pages = "queued", None, []
        document.updated_at = func.now()
        await session.flush()
        await session.refresh(document)
        await session.refresh(job)
    await _queue(parts, who, job, batches)
    return Stored(document, job, created=True)


async def _queue(parts: ApiParts, who: Who, job: Job, batches: int) -> None:
    await enqueue_or_fail(
        parts,
        who,
        job.id,
        # As many turns as the tenant may run at once: each running batch sends the next.
        lambda broker: wake_ingestion(broker, min(batches, parts.settings.tenant_ingest_share)),
        fail_ingest,
        "the job queue is unavailable; the upload was not processed, try again shortly",
    )


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

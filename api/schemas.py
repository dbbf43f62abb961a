"""Response bodies shared by the document, job and search routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from db.models import Document, Job


class DocumentOut(msgspec.Struct):
    id: str
    filename: str
    size_bytes: int
    sha256: str
    status: str  # queued | processing | ready | failed
    pages: int | None
    chunks: int
    error: str | None
    uploaded_by: str | None
    created_at: datetime
    updated_at: datetime


class JobProgress(msgspec.Struct, omit_defaults=True):
    stage: str = "queued"  # queued | extracting | embedding | storing | done
    pages_done: int | None = None
    pages_total: int | None = None
    chunks_done: int | None = None
    chunks_total: int | None = None


class JobOut(msgspec.Struct):
    id: str
    kind: str  # ingest | chat
    status: str  # queued | running | succeeded | failed | cancelled
    progress: JobProgress
    error: str | None
    document_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class UploadOut(msgspec.Struct):
    document: DocumentOut
    job: JobOut | None


class DocumentPage(msgspec.Struct):
    items: list[DocumentOut]
    next_cursor: str | None


def document_out(document: Document) -> DocumentOut:
    return DocumentOut(
        id=str(document.id),
        filename=document.filename,
        size_bytes=document.size_bytes,
        sha256=document.sha256,
        status=document.status,
        pages=document.page_count,
        chunks=document.chunk_count,
        error=document.error,
        uploaded_by=str(document.uploaded_by) if document.uploaded_by else None,
        created_at=document.created_at,
        updated_at=document.updated_at,
    )


def job_out(job: Job) -> JobOut:
    progress: dict[str, Any] = dict(job.progress or {})
    fields = JobProgress.__struct_fields__
    return JobOut(
        id=str(job.id),
        kind=job.kind,
        status=job.status,
        progress=JobProgress(**{k: v for k, v in progress.items() if k in fields}),
        error=job.error,
        document_id=str(job.document_id) if job.document_id else None,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )

"""Response bodies of the document, job, chat and session routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from db.models import ChatSession, Document, Job, Message
from transport.events import Citation


class SkippedPageOut(msgspec.Struct):
    page: int
    reason: str


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
    # Pages left out of a ready document, with the reason (one over its CPU budget).
    skipped_pages: list[SkippedPageOut] = []


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
    # Chat jobs: where to follow the answer (carries a token for this job only).
    stream_url: str | None = None
    # Any job: its progress as Server-Sent Events (GET /v1/jobs/{id}/events, with a token for
    # this job only), so nobody needs to poll.
    events_url: str | None = None


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
        skipped_pages=[
            SkippedPageOut(int(page["page"]), str(page["reason"]))
            for page in document.skipped_pages or []
        ],
    )


def job_out(job: Job, stream_url: str | None = None, events_url: str | None = None) -> JobOut:
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
        stream_url=stream_url,
        events_url=events_url,
    )


class ChatStarted(msgspec.Struct):
    job_id: str
    session_id: str
    message_id: str  # the answer's message, filled in as the job runs
    stream_url: str  # GET it for Server-Sent Events; carries a token for this job only


class MessageOut(msgspec.Struct):
    id: str
    role: str  # user | assistant
    content: str
    status: str  # pending | complete | cancelled | failed
    citations: list[Citation]
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    job_id: str | None
    created_at: datetime


class SessionOut(msgspec.Struct):
    id: str
    title: str
    created_at: datetime
    updated_at: datetime


class SessionPage(msgspec.Struct):
    items: list[SessionOut]
    next_cursor: str | None


class SessionMessages(msgspec.Struct):
    session: SessionOut
    messages: list[MessageOut]


def session_out(chat: ChatSession) -> SessionOut:
    return SessionOut(str(chat.id), chat.title, chat.created_at, chat.updated_at)


def message_out(message: Message) -> MessageOut:
    return MessageOut(
        id=str(message.id),
        role=message.role,
        content=message.content,
        status=message.status,
        citations=[Citation(**c) for c in message.citations or []],
        model=message.model,
        prompt_tokens=message.prompt_tokens,
        completion_tokens=message.completion_tokens,
        job_id=str(message.job_id) if message.job_id else None,
        created_at=message.created_at,
    )

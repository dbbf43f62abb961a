"""Response bodies of the document, job, chat and session routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from db.documents import PageSummary
from db.models import ChatSession, Document, Job, Message, PageRecord
from pipeline.pdf import OCR, SECTION, SKIPPED, TEXT_LAYER
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
    # How each page was read: only in `GET /v1/files/{id}`, once pages have been read.
    page_report: PageReport | None = None


class PageNote(msgspec.Struct):
    page: int
    reason: str


class PageSet(msgspec.Struct):
    count: int
    pages: list[int]


class PageNotes(msgspec.Struct):
    count: int
    pages: list[PageNote]


class PageReport(msgspec.Struct):
    """How a document's pages were read. `text_layer`: the PDF's own text; `ocr`: read by
    Tesseract (with why: no text layer, or a broken font); `sections`: pieces of a format
    without pages; `skipped`: left out, with why; `flagged`: indexed, but the text may be
    wrong (a broken font or no text, when OCR is off or failed), with why."""

    text_layer: PageSet
    ocr: PageNotes
    sections: PageSet
    skipped: PageNotes
    flagged: PageNotes


class PageOut(msgspec.Struct):
    document_id: str
    filename: str
    number: int
    source: str  # text_layer | ocr | section | skipped
    flagged: bool
    note: str | None  # why it was read so (OCR), what may be wrong (flagged), or why skipped
    section: str | None  # the heading it falls under (formats without pages)
    text: str  # as indexed: normalised, running headers and footers removed


def page_report(pages: list[PageSummary]) -> PageReport:
    def numbers(source: str) -> PageSet:
        found = [page.number for page in pages if page.source == source]
        return PageSet(len(found), found)

    def notes(chosen: list[PageSummary]) -> PageNotes:
        return PageNotes(len(chosen), [PageNote(page.number, page.note or "") for page in chosen])

    return PageReport(
        text_layer=numbers(TEXT_LAYER),
        ocr=notes([page for page in pages if page.source == OCR]),
        sections=numbers(SECTION),
        skipped=notes([page for page in pages if page.source == SKIPPED]),
        flagged=notes([page for page in pages if page.flagged]),
    )


def page_out(document: Document, page: PageRecord) -> PageOut:
    return PageOut(
        document_id=str(document.id),
        filename=document.filename,
        number=page.number,
        source=page.source,
        flagged=page.flagged,
        note=page.note,
        section=page.section,
        text=page.text,
    )


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


def document_out(document: Document, pages: list[PageSummary] | None = None) -> DocumentOut:
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
        page_report=page_report(pages) if pages else None,
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

"""Uploads and the documents API: `POST/GET /v1/files`, `GET/DELETE /v1/files/{id}`,
`POST /v1/files/{id}/retry`, `GET /v1/files/{id}/pages/{n}`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, Parameter

from api.identity import Caller, CallerDep
from api.job_events import events_url
from api.openapi import problem_responses
from api.params import parse_id
from api.resources import ApiResources, ResourcesDep
from api.schemas import (
    DocumentOut,
    DocumentPage,
    JobOut,
    PageOut,
    UploadOut,
    document_out,
    job_out,
    page_out,
)
from api.uploads import receive_upload
from core.errors import InvalidInput
from db.documents import get_document, get_page, list_documents, page_summaries
from db.engine import async_unit_of_work
from db.models import Job
from usecases import documents
from usecases.disk_space import require_room_for_upload
from usecases.quota import require_quota

MAX_PAGE = 1_000_000


def _job(resources: ApiResources, caller: Caller, job: Job | None) -> JobOut | None:
    return job_out(job, events_url=events_url(resources, caller, job.id)) if job else None


@post(
    "/",
    status_code=202,
    request_max_body_size=None,  # the upload enforces MAX_UPLOAD_MB itself, while streaming
    summary="Upload a PDF, Word, HTML, Markdown or text file (multipart field `file`)",
    opt={"upload": True},  # its multipart body is documented in api/openapi.py
    responses={
        200: ResponseSpec(
            UploadOut,
            description="these bytes were uploaded before: the tenant's document and its job",
        )
    },
)
async def upload_file(
    request: Request[Caller, Any, Any], resources: ResourcesDep, caller: CallerDep
) -> Response[UploadOut]:
    require_room_for_upload(resources.settings)  # before a byte of it is written to disk
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        await require_quota(session, caller)  # before reading a byte of the upload
    async with await resources.capacity.take(resources.uploads, caller.user_id, caller.tenant_id):
        received = await receive_upload(request, resources.settings.max_upload_mb)
        try:
            stored = await documents.store_upload(resources, caller, received)
        finally:
            received.path.unlink(missing_ok=True)
    job = _job(resources, caller, stored.job)
    return Response(
        UploadOut(document_out(stored.document), job), status_code=202 if stored.created else 200
    )


@get("/", summary="The tenant's documents, newest first")
async def list_files(
    resources: ResourcesDep,
    caller: CallerDep,
    limit: int = Parameter(default=20, ge=1, le=100),
    cursor: str | None = Parameter(default=None, max_length=200),
) -> DocumentPage:
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        documents, next_cursor = await list_documents(session, limit, cursor)
    return DocumentPage([document_out(d) for d in documents], next_cursor)


@get(
    "/{document_id:str}",
    summary="One document, with how each of its pages was read",
    description=(
        "`page_report` says which pages came from the PDF's text layer, which were read by "
        "OCR (and why), which are sections of a format without pages, which were skipped "
        "and which are flagged (indexed, but the text may be wrong), with page numbers and "
        "reasons. It is null until pages have been read."
    ),
)
async def get_file(
    resources: ResourcesDep, caller: CallerDep, document_id: FromPath[str]
) -> DocumentOut:
    ident = parse_id(document_id, "document")
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        document = await get_document(session, ident)
        return document_out(document, await page_summaries(session, ident))


@get(
    "/{document_id:str}/pages/{number:str}",
    summary="The text DocuChat stored for one page, and how it was obtained",
    description=(
        "Pages count from 1, as a citation's `page_start` does; for a format without pages "
        "they are its sections of about 4,000 characters in reading order. 404 with the "
        "reason for a page the document does not have or has not had read yet."
    ),
)
async def get_file_page(
    resources: ResourcesDep, caller: CallerDep, document_id: FromPath[str], number: FromPath[str]
) -> PageOut:
    ident = parse_id(document_id, "document")
    if not number.isascii() or not number.isdigit() or not 1 <= int(number) <= MAX_PAGE:
        raise InvalidInput("number", "a page number is a whole number from 1")
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        document = await get_document(session, ident)
        return page_out(document, await get_page(session, document, int(number)))


@delete(
    "/{document_id:str}",
    status_code=204,
    summary="Delete a document, its chunks and bytes; a running ingestion of it stops",
    description="Members delete their own uploads; admins delete any document (403 otherwise).",
)
async def delete_file(
    resources: ResourcesDep, caller: CallerDep, document_id: FromPath[str]
) -> None:
    await documents.delete(resources, caller, parse_id(document_id, "document"))


@post(
    "/{document_id:str}/retry",
    status_code=202,
    summary="Ingest a failed or stuck document again",
    description=(
        "Starts a new ingest job for a document whose ingestion failed, or seems stuck (an "
        "unfinished one is cancelled and starts over); returns the document and the new job. "
        "Its uploader may, and any admin (403 otherwise); a ready document is a conflict "
        "(409). Uploading the same bytes of a failed document again retries it too."
    ),
    responses=problem_responses(409),
)
async def retry_file(
    resources: ResourcesDep, caller: CallerDep, document_id: FromPath[str]
) -> Response[UploadOut]:
    ident = parse_id(document_id, "document")
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        await require_quota(session, caller)
    stored = await documents.retry(resources, caller, ident)
    return Response(
        UploadOut(document_out(stored.document), _job(resources, caller, stored.job)),
        status_code=202,
    )


router = Router(
    "/files",
    tags=["files"],
    route_handlers=[upload_file, list_files, get_file, get_file_page, delete_file, retry_file],
)

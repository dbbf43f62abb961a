"""Uploads and the documents API: `POST/GET /v1/files`, `GET/DELETE /v1/files/{id}`."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import anyio.to_thread
from litestar import Request, Response, delete, get, post
from litestar.params import FromPath, Parameter
from redis.exceptions import RedisError

from api.identity import Caller
from api.resources import ApiResources, resources_of
from api.schemas import DocumentOut, DocumentPage, UploadOut, document_out, job_out
from api.uploads import receive_upload
from api.usage import require_quota
from core.bootstrap import INGEST_ACTOR, enqueue
from core.errors import InvalidInput, NotFound, ServiceUnavailable
from db.documents import (
    StoredUpload,
    add_document,
    delete_document,
    get_document,
    list_documents,
)
from db.engine import async_unit_of_work
from db.jobs import fail_ingest_async
from db.models import Job
from pipeline.pdf_isolation import ReadLimits, count_pages

log = logging.getLogger("docuchat.api")


def parse_id(value: str, what: str) -> uuid.UUID:
    """Ids in paths: anything that is not a UUID names nothing, hence 404."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no {what} {value!r}") from None


def parse_field_id(value: str, field: str) -> uuid.UUID:
    """Ids in request bodies: one that is not a UUID is a malformed field, hence 422."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(field, f"{value!r} is not an id (a UUID)") from None


def text_field(value: str, field: str) -> str:
    """Free text from a request body. Postgres text cannot hold NUL, and no person types one:
    a clear 422 here, not a failed insert later."""
    if "\x00" in value:
        raise InvalidInput(field, "contains a NUL character (U+0000), which text cannot hold")
    return value


def parse_document_ids(values: list[str] | None) -> list[uuid.UUID] | None:
    """An optional `document_ids` field: left out means all documents, never an empty list."""
    if values is None:
        return None
    if not values:
        raise InvalidInput("document_ids", "give at least one id, or leave the field out")
    return [parse_field_id(value, "document_ids") for value in values]


async def enqueue_ingest(resources: ApiResources, job: Job, tenant_id: uuid.UUID) -> None:
    try:
        await anyio.to_thread.run_sync(
            enqueue, resources.broker, "ingest", INGEST_ACTOR, str(job.id), str(tenant_id)
        )
    except RedisError as exc:
        log.error("could not queue ingest job %s: %s", job.id, exc)
        async with async_unit_of_work(resources.engine, tenant_id) as session:
            await fail_ingest_async(session, job.id, "could not be queued: the queue is down")
        raise ServiceUnavailable(
            "the job queue is unavailable; the upload was not processed, try again shortly"
        ) from None


@post(
    "/v1/files",
    status_code=202,
    request_max_body_size=None,  # the upload enforces MAX_UPLOAD_MB itself, while streaming
    tags=["files"],
    summary="Upload a PDF (multipart field `file`); ingestion runs in the background",
    opt={"upload": True},  # its multipart body is documented in api/openapi.py
)
async def upload_file(request: Request[Caller, Any, Any]) -> Response[UploadOut]:
    resources = resources_of(request)
    caller, settings = request.user, resources.settings
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        await require_quota(session, caller)  # before reading a byte of the upload
    received = await receive_upload(request, settings.max_upload_mb)
    try:
        limits = ReadLimits.from_settings(settings)
        pages = await anyio.to_thread.run_sync(count_pages, received.path, limits)
        upload = StoredUpload(
            received.path, received.filename, received.size_bytes, received.sha256, pages
        )
        async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
            document, job, created = await add_document(
                session, caller.tenant_id, caller.user_id, upload
            )
        if created and job is not None:
            await enqueue_ingest(resources, job, caller.tenant_id)
    finally:
        received.path.unlink(missing_ok=True)
    body = UploadOut(document_out(document), job_out(job) if job else None)
    return Response(body, status_code=202 if created else 200)


@get("/v1/files", tags=["files"], summary="The tenant's documents, newest first")
async def list_files(
    request: Request[Caller, Any, Any],
    limit: int = Parameter(default=20, ge=1, le=100),
    cursor: str | None = Parameter(default=None, max_length=200),
) -> DocumentPage:
    resources = resources_of(request)
    async with async_unit_of_work(resources.engine, request.user.tenant_id) as session:
        documents, next_cursor = await list_documents(session, limit, cursor)
    return DocumentPage([document_out(d) for d in documents], next_cursor)


@get("/v1/files/{document_id:str}", tags=["files"], summary="One document")
async def get_file(request: Request[Caller, Any, Any], document_id: FromPath[str]) -> DocumentOut:
    resources = resources_of(request)
    ident = parse_id(document_id, "document")
    async with async_unit_of_work(resources.engine, request.user.tenant_id) as session:
        return document_out(await get_document(session, ident))


@delete(
    "/v1/files/{document_id:str}",
    status_code=204,
    tags=["files"],
    summary="Delete a document, its chunks and bytes; a running ingestion of it stops",
    description="Members delete their own uploads; admins delete any document (403 otherwise).",
)
async def delete_file(request: Request[Caller, Any, Any], document_id: FromPath[str]) -> None:
    resources = resources_of(request)
    caller = request.user
    ident = parse_id(document_id, "document")
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        await delete_document(session, ident, caller.user_id, caller.is_admin)

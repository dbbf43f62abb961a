"""Handing jobs to the queue, and cancelling them: the steps every job shares."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import anyio.to_thread
from dramatiq import Broker
from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from core.errors import NotFound, PermissionDenied, ServiceUnavailable
from db.chat import cancel_queued_answer
from db.engine import async_unit_of_work
from db.jobs import cancel_job, get_job
from db.models import Document, Job
from transport import events
from usecases.ports import ApiParts, Who

log = logging.getLogger("docuchat.usecases")


class Cancelled(Exception):
    """The work is no longer wanted: its job was cancelled or its document deleted."""


async def enqueue_or_fail(
    parts: ApiParts,
    who: Who,
    job_id: uuid.UUID,
    send: Callable[[Broker], object],
    fail: Callable[[Session, uuid.UUID, str], None],
    apology: str,
    first: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Send a saved job's messages with `send` (after `first`, another step through Redis);
    when Redis is down, fail the job with `fail` (so nothing waits for a message that never
    came) and refuse with 503 and `apology`."""
    try:
        if first is not None:
            await first()
        await anyio.to_thread.run_sync(send, parts.broker)
    except RedisError as exc:
        log.error("could not queue job %s: %s", job_id, exc)
        async with async_unit_of_work(parts.engine, who.tenant_id) as session:
            await session.run_sync(fail, job_id, "could not be queued: the queue is down")
        raise ServiceUnavailable(apology) from None


def visible(job: Job, who: Who) -> Job:
    """Ingest jobs are the tenant's; a chat job is its user's alone."""
    if job.kind == "chat" and job.user_id != who.user_id:
        raise NotFound(f"no job {job.id}")
    return job


async def cancel(parts: ApiParts, who: Who, job_id: uuid.UUID) -> Job:
    """Cancel a queued or running job: a question its asker may, an ingestion its document's
    uploader or an admin (who may delete the document too). A running one's worker stops at
    its next look at the cancel key; a chat job no worker took gets its answer marked
    cancelled and its stream's `End` here, since no worker will write it."""
    retention = parts.settings.stream_retention_seconds
    async with async_unit_of_work(parts.engine, who.tenant_id) as session:
        job = visible(await get_job(session, job_id), who)
        if job.kind == "ingest" and not who.is_admin:
            document = await session.get(Document, job.document_id) if job.document_id else None
            uploader = document.uploaded_by if document is not None else job.user_id
            if uploader != who.user_id:
                raise PermissionDenied(
                    "only the member who uploaded a document, or an admin, may cancel its ingestion"
                )
        job, previous = await cancel_job(session, job_id)
        if job.kind == "chat" and previous == "queued":
            await cancel_queued_answer(session, job_id)
    if job.kind == "chat":
        await events.request_cancel(parts.redis, [job_id], retention)
        if previous == "queued":
            await events.publish(parts.redis, job_id, retention, events.CANCELLED)
    return job

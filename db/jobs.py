"""Job rows: what clients poll, and the state changes workers make as they go.

queued ──claim──> running ──finish──> succeeded | failed | cancelled
   ^                 │
   └──── retry ──────┘   (a transient error, or a lost queue message: back to queued)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Update, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound
from db.models import Document, IngestBatch, Job

FINISHED = ("succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> Job:
    job = await session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


async def cancel_job(session: AsyncSession, job_id: uuid.UUID) -> tuple[Job, str]:
    """Cancel an unfinished job; returns it and the status it had (queued or running).
    A running job's worker notices and stops; a cancelled ingestion fails its document."""
    document_id = await session.scalar(select(Job.document_id).where(Job.id == job_id))
    if document_id is not None:  # the document first: the order every writer locks in
        await session.execute(
            select(Document.id).where(Document.id == document_id).with_for_update()
        )
    job = await session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None:
        raise NotFound(f"no job {job_id}")
    previous = job.status
    if previous in FINISHED:
        raise Conflict(
            f"the job has already {_FINISHED_VERB[previous]}; there is nothing to cancel"
        )
    job.status, job.error, job.finished_at = "cancelled", "cancelled on request", func.now()
    job.claimed_by, job.updated_at = None, func.now()  # a new version: event streams see it
    await session.execute(close_batches(job_id, "cancelled"))
    if job.kind == "ingest" and job.document_id is not None:
        await session.execute(
            update(Document)
            .where(Document.id == job.document_id)
            .values(status="failed", error="ingestion was cancelled", updated_at=func.now())
        )
    await session.flush()
    await session.refresh(job)
    return job, previous


def close_batches(job_id: uuid.UUID, status: str) -> Update:
    """The statement that ends a job's open batches of pages (failed or cancelled with it)."""
    return (
        update(IngestBatch)
        .where(IngestBatch.job_id == job_id, IngestBatch.status.in_(ACTIVE))
        .values(status=status, claimed_by=None, updated_at=func.now())
    )


def end_job(session: Session, job_id: uuid.UUID, status: str, reason: str) -> None:
    """End an unfinished job now (`status` failed or cancelled), with its batches: its worker,
    if any, notices at its next progress report and stops."""
    finish_job(session, job_id, status, error=reason)
    session.execute(close_batches(job_id, status))


_FINISHED_VERB = {"succeeded": "succeeded", "failed": "failed", "cancelled": "been cancelled"}


@dataclass(frozen=True)
class Claimed:
    job: Job
    earlier_attempt: bool  # an attempt before this one started the job (and did not finish)


def hold_job(session: Session, job_id: uuid.UUID) -> bool:
    """Whether the job still exists (deleting a chat session deletes its jobs), held so that
    it cannot be deleted before the caller's transaction ends: rows written now may name it."""
    held = session.execute(
        select(Job.id).where(Job.id == job_id).with_for_update(read=True, key_share=True)
    ).first()
    return held is not None


def claim_job(session: Session, job_id: uuid.UUID, worker: str | None = None) -> Claimed | None:
    """Mark the job running (for `worker`, whose heartbeat says it lives) and return it, or
    None when it is gone or already finished (a duplicate delivery of finished work)."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None or job.status in FINISHED:
        return None
    earlier_attempt = job.started_at is not None
    job.status = "running"
    job.claimed_by = worker
    job.error = None
    job.started_at = job.started_at or func.now()
    job.updated_at = func.now()
    session.flush()
    return Claimed(job, earlier_attempt)


@dataclass(frozen=True)
class UnfinishedJob:
    id: uuid.UUID
    tenant_id: uuid.UUID
    kind: str
    status: str
    idle: timedelta  # since the job last changed hands
    claimed_by: str | None  # the worker running it


def unfinished_jobs(session: Session, older_than: timedelta) -> list[UnfinishedJob]:
    """Queued or running jobs of every tenant that have not changed hands for `older_than`
    (at most 1,000, longest idle first): the reaper's candidates."""
    rows = session.execute(
        text(
            "SELECT id, tenant_id, kind, status, idle, claimed_by "
            "FROM docuchat_unfinished_jobs(:older_than)"
        ),
        {"older_than": older_than},
    )
    return [UnfinishedJob(*row) for row in rows]


def requeue_lost_job(session: Session, job_id: uuid.UUID, reason: str) -> int | None:
    """Back to queued because its message was lost; returns how many times that has now
    happened, or None when the job finished meanwhile (its message was done, not lost)."""
    return session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(ACTIVE))
        .values(
            status="queued",
            error=f"requeued: {reason}",
            requeues=Job.requeues + 1,
            claimed_by=None,
            updated_at=func.now(),
        )
        .returning(Job.requeues)
    ).scalar_one_or_none()


def finish_job(
    session: Session,
    job_id: uuid.UUID,
    status: str,
    *,
    error: str | None = None,
    progress: dict[str, Any] | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": status,
        "error": error,
        "claimed_by": None,
        "finished_at": func.now(),
        "updated_at": func.now(),
    }
    if progress is not None:
        values["progress"] = progress
    session.execute(
        update(Job).where(Job.id == job_id, Job.status.not_in(FINISHED)).values(**values)
    )


def requeue_job(session: Session, job_id: uuid.UUID, reason: str) -> None:
    """Back to queued after a transient failure; the reason shows while it waits."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.not_in(FINISHED))
        .values(
            status="queued",
            error=f"will retry: {reason}",
            claimed_by=None,
            updated_at=func.now(),
        )
    )


def fail_ingest(session: Session, job_id: uuid.UUID, reason: str) -> None:
    """The ingest job failed for `reason`, and so did its document (if it still exists); its
    other batches stop."""
    document_id = select(Job.document_id).where(Job.id == job_id).scalar_subquery()
    session.execute(
        update(Document)
        .where(Document.id == document_id)
        .values(status="failed", error=reason, updated_at=func.now())
    )
    finish_job(session, job_id, "failed", error=reason)
    session.execute(close_batches(job_id, "failed"))


def new_ingest_job(tenant_id: uuid.UUID, user_id: uuid.UUID | None, document_id: uuid.UUID) -> Job:
    """A queued ingest job of a document, as an upload and a re-ingestion make it."""
    return Job(
        tenant_id=tenant_id,
        user_id=user_id,
        kind="ingest",
        document_id=document_id,
        progress={"stage": "queued"},
    )

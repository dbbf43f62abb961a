"""A document's ingestion in batches of pages: planning them, the fair claim, progress, the
chunks each stores, and the end of the job once every batch is done.

Whoever locks more than one of them locks in one order, document, job, batch, so the API
(cancel, retry, delete) and the workers (claim, progress, store) never deadlock.

queued ──claim──> running ──store──> done
   ^                 │
   └── requeue ──────┘   (a transient failure, after a backoff; a worker found dead)
Any batch can end failed or cancelled, with its job.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from db.documents import ChunkRow, PageRow, insert_chunks, store_pages
from db.jobs import new_ingest_job
from db.models import Chunk, Document, IngestBatch, Job

ORDINAL_STRIDE = 100_000  # as pipeline.ingest numbers a batch's chunks
OPEN = ("queued", "running")


def page_ranges(page_count: int, batch_pages: int) -> list[tuple[int, int]]:
    """Pages 1..page_count cut into batches of at most `batch_pages` (1-based, inclusive)."""
    return [
        (first, min(first + batch_pages - 1, page_count))
        for first in range(1, page_count + 1, batch_pages)
    ]


def add_batches(session: Session, job: Job, page_count: int, batch_pages: int) -> int:
    """The batches of an ingest job; returns how many."""
    assert job.document_id is not None
    ranges = page_ranges(page_count, batch_pages)
    session.add_all(
        IngestBatch(
            tenant_id=job.tenant_id,
            job_id=job.id,
            document_id=job.document_id,
            ordinal=n,
            first_page=first,
            last_page=last,
        )
        for n, (first, last) in enumerate(ranges)
    )
    session.flush()
    return len(ranges)


async def add_batches_async(
    session: AsyncSession, job: Job, page_count: int, batch_pages: int
) -> int:
    return await session.run_sync(lambda sync: add_batches(sync, job, page_count, batch_pages))


@dataclass(frozen=True)
class Claim:
    batch_id: uuid.UUID
    tenant_id: uuid.UUID
    job_id: uuid.UUID
    worker: str  # who holds it


def claim_batch(session: Session, worker: str, tenant_cap: int) -> Claim | None:
    """The fairest claimable batch of any tenant, now running for `worker`: the tenant served
    longest ago that runs fewer than `tenant_cap` batches, its oldest job's next batch."""
    row = session.execute(
        text("SELECT batch_id, tenant_id, job_id FROM docuchat_claim_ingest_batch(:w, :cap)"),
        {"w": worker, "cap": tenant_cap},
    ).first()
    return Claim(row.batch_id, row.tenant_id, row.job_id, worker) if row else None


@dataclass(frozen=True)
class OpenBatch:
    id: uuid.UUID
    tenant_id: uuid.UUID
    job_id: uuid.UUID
    status: str
    claimed_by: str | None
    claimable: bool
    idle: timedelta  # since it last reported progress or changed hands


def open_batches(session: Session) -> list[OpenBatch]:
    """Queued and running batches of every tenant (ids only): the reaper's view."""
    rows = session.execute(text("SELECT * FROM docuchat_open_batches()"))
    return [OpenBatch(*row) for row in rows]


def running_batch(session: Session, claim: Claim) -> IngestBatch | None:
    """The claimed batch, if it still runs for its claimant (not cancelled, requeued or
    handed to another worker meanwhile)."""
    batch = session.get(IngestBatch, claim.batch_id, populate_existing=True)
    if batch is None or batch.status != "running" or batch.claimed_by != claim.worker:
        return None
    return batch


def document_of(session: Session, batch_id: uuid.UUID) -> uuid.UUID | None:
    return session.scalar(select(IngestBatch.document_id).where(IngestBatch.id == batch_id))


def report_batch_progress(
    session: Session, batch: IngestBatch, stage: str, pages_done: int, chunks: tuple[int, int]
) -> bool:
    """Record a batch's progress and its job's, summed over the job's batches; False when
    the job or the batch was stopped meanwhile (cancelled, requeued, handed on, deleted)."""
    chunks_done, chunks_total = chunks
    job = session.execute(  # the job first: every writer locks job, then batch
        select(Job.id).where(Job.id == batch.job_id, Job.status == "running").with_for_update()
    ).first()
    if job is None:
        return False
    updated = session.execute(
        update(IngestBatch)
        .where(
            IngestBatch.id == batch.id,
            IngestBatch.status == "running",
            IngestBatch.claimed_by == batch.claimed_by,
        )
        .values(
            pages_done=pages_done,
            chunks_done=chunks_done,
            chunks_total=chunks_total,
            updated_at=func.now(),
        )
        .returning(IngestBatch.id)
    ).first()
    if updated is None:
        return False
    return _refresh_job_progress(session, batch.job_id, stage)


def _refresh_job_progress(session: Session, job_id: uuid.UUID, stage: str) -> bool:
    progress = session.execute(
        text("""
            UPDATE jobs SET progress = jsonb_build_object(
                'stage', CAST(:stage AS text),
                'pages_done', totals.pages_done, 'pages_total', totals.pages_total,
                'chunks_done', totals.chunks_done, 'chunks_total', totals.chunks_total),
                updated_at = clock_timestamp()
            FROM (SELECT sum(pages_done) AS pages_done,
                         sum(last_page - first_page + 1) AS pages_total,
                         sum(chunks_done) AS chunks_done,
                         sum(chunks_total) AS chunks_total
                    FROM ingest_batches WHERE job_id = :job) AS totals
            WHERE jobs.id = :job AND jobs.status = 'running'
            RETURNING jobs.id"""),
        {"job": job_id, "stage": stage},
    ).first()
    return progress is not None


def store_batch_chunks(
    session: Session,
    batch: IngestBatch,
    chunks: Iterable[ChunkRow],
    vectors: np.ndarray,
    *,
    letters: int,
    embedding_tokens: int,
    skipped: list[dict[str, Any]],
    pages: Iterable[PageRow] = (),
) -> int:
    """Make the batch's chunks and page records exactly these (however often it runs) and
    mark it done."""
    base = batch.ordinal * ORDINAL_STRIDE
    session.execute(
        delete(Chunk).where(
            Chunk.document_id == batch.document_id,
            Chunk.ordinal >= base,
            Chunk.ordinal < base + ORDINAL_STRIDE,
        )
    )
    document = session.get_one(Document, batch.document_id)
    stored = insert_chunks(session, document, chunks, vectors)
    store_pages(session, document, batch.first_page, batch.last_page, pages)
    batch.status, batch.error, batch.claimed_by = "done", None, None
    batch.pages_done = batch.last_page - batch.first_page + 1
    batch.chunks_done = batch.chunks_total = stored
    batch.letters, batch.embedding_tokens, batch.skipped = letters, embedding_tokens, skipped
    batch.updated_at = func.now()
    session.flush()
    return stored


@dataclass(frozen=True)
class JobTotals:
    batches: int
    remaining: int  # batches not done
    page_count: int
    chunks: int
    letters: int
    embedding_tokens: int
    skipped: list[dict[str, Any]]


def lock_job_totals(session: Session, job_id: uuid.UUID) -> JobTotals | None:
    """Lock the job (whoever finishes its last batch ends it, once) and sum its batches;
    None when the job is gone or no longer running."""
    job = session.execute(
        select(Job.id).where(Job.id == job_id, Job.status == "running").with_for_update()
    ).first()
    if job is None:
        return None
    batches = session.scalars(select(IngestBatch).where(IngestBatch.job_id == job_id)).all()
    return JobTotals(
        batches=len(batches),
        remaining=sum(batch.status != "done" for batch in batches),
        page_count=sum(batch.last_page - batch.first_page + 1 for batch in batches),
        chunks=sum(batch.chunks_done for batch in batches),
        letters=sum(batch.letters for batch in batches),
        embedding_tokens=sum(batch.embedding_tokens for batch in batches),
        skipped=sorted(
            (page for batch in batches for page in batch.skipped), key=lambda p: p["page"]
        ),
    )


def requeue_batch(session: Session, batch_id: uuid.UUID, reason: str, delay: timedelta) -> int:
    """Back to queued, claimable again after `delay`; returns its attempts so far."""
    attempts = session.execute(
        update(IngestBatch)
        .where(IngestBatch.id == batch_id, IngestBatch.status == "running")
        .values(
            status="queued",
            claimed_by=None,
            error=f"will retry: {reason}",
            not_before=func.now() + delay,
            updated_at=func.now(),
        )
        .returning(IngestBatch.attempts)
    ).scalar_one_or_none()
    return int(attempts or 0)


def attempts_of(session: Session, batch_id: uuid.UUID) -> int:
    return int(session.scalar(select(IngestBatch.attempts).where(IngestBatch.id == batch_id)) or 0)


def release_batch(session: Session, batch_id: uuid.UUID, worker: str) -> bool:
    """Back to queued, a batch its worker held when it died (it never reports again)."""
    released = session.execute(
        update(IngestBatch)
        .where(
            IngestBatch.id == batch_id,
            IngestBatch.claimed_by == worker,
            IngestBatch.status == "running",
        )
        .values(status="queued", claimed_by=None, error="its worker stopped", updated_at=func.now())
        .returning(IngestBatch.id)
    ).first()
    return released is not None


def queue_reingestion(
    session: Session, tenant_id: uuid.UUID, batch_pages: int
) -> tuple[list[uuid.UUID], int]:
    """A new ingest job, in batches, for each of the tenant's documents that is ready or
    failed and has no unfinished job (it is in work already); returns the jobs' ids and how
    many batches they have. The documents keep their chunks, and stay searchable, until each
    batch replaces its own."""
    busy = select(Job.document_id).where(
        Job.tenant_id == tenant_id, Job.kind == "ingest", Job.status.in_(OPEN)
    )
    documents = session.scalars(
        select(Document)
        .where(
            Document.tenant_id == tenant_id,
            Document.status.in_(("ready", "failed")),
            Document.page_count.is_not(None),
            Document.id.not_in(busy.where(Job.document_id.is_not(None))),
        )
        .order_by(Document.created_at)
    ).all()
    jobs = [new_ingest_job(tenant_id, document.uploaded_by, document.id) for document in documents]
    session.add_all(jobs)
    session.flush()
    batches = sum(
        add_batches(session, job, document.page_count or 0, batch_pages)
        for job, document in zip(jobs, documents, strict=True)
    )
    return [job.id for job in jobs], batches

"""Ingesting documents (the worker's side of an upload), in batches of pages, fairly.

An upload's job is cut into batches of INGEST_BATCH_PAGES pages when it is stored
(usecases/documents.py, `add_batches_async`). A worker that takes
an ingest message does not take a particular document: it claims the fairest batch of any
tenant (`claim`: the tenant served longest ago, under its TENANT_INGEST_CONCURRENCY), reads,
chunks and embeds those pages (`run_batch`), and stores that batch's chunks. Whoever stores a
job's last batch ends the job: the document is ready, its embedding counted once.

Idempotent: a batch run again (a redelivered message, a worker that died) replaces its own
chunks, so exactly one set is ever stored. A job cancelled or a document deleted meanwhile
raises Cancelled at the batch's next progress report.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from core.settings import Settings
from db.batches import (
    ORDINAL_STRIDE,
    Claim,
    claim_batch,
    document_of,
    lock_job_totals,
    report_batch_progress,
    running_batch,
    store_batch_chunks,
)
from db.documents import begin_ingestion, copy_blob, finish_document, lock_document
from db.engine import unit_of_work
from db.jobs import fail_ingest, finish_job
from db.models import IngestBatch
from db.usage import record_usage
from pipeline.errors import NoExtractableText
from pipeline.ingest import (
    MIN_LETTERS,
    ChunkingOptions,
    IngestedPages,
    IngestProgress,
    ingest_pages,
)
from pipeline.ocr import HOW_TO_TURN_ON
from pipeline.pdf import SKIPPED, PageText
from transport import fleet_metrics as metrics
from usecases.documents import ocr_options, read_limits
from usecases.jobs import Cancelled
from usecases.ports import WorkerParts

log = logging.getLogger("docuchat.usecases")

# A batch's progress is written at most this often (and at each change of stage).
PROGRESS_INTERVAL_SECONDS = 0.5


def claim(resources: WorkerParts, worker: str) -> Claim | None:
    """The fairest claimable batch of any tenant, now running for `worker`; None when no
    tenant has one (or every tenant that has one runs its share already)."""
    with unit_of_work(resources.engine) as session:
        return claim_batch(session, worker, resources.settings.tenant_ingest_share)


class ProgressReporter:
    """Writes a batch's progress cheaply, and stops the work when it is no longer wanted."""

    def __init__(self, resources: WorkerParts, batch: IngestBatch) -> None:
        self._resources = resources
        self._batch = batch
        self._last_stage = ""
        self._last_write = 0.0
        self._pages = 0

    def __call__(self, progress: IngestProgress) -> None:
        now = time.monotonic()
        if progress.stage == "extracting":
            self._pages = progress.done
        if (
            progress.stage == self._last_stage
            and progress.done < progress.total
            and now - self._last_write < PROGRESS_INTERVAL_SECONDS
        ):
            return
        self._last_stage, self._last_write = progress.stage, now
        chunks = (progress.done, progress.total) if progress.stage == "embedding" else (0, 0)
        with unit_of_work(self._resources.engine, self._batch.tenant_id) as session:
            wanted = report_batch_progress(
                session, self._batch, progress.stage, self._pages, chunks
            )
        if not wanted:
            raise Cancelled()


def run_batch(resources: WorkerParts, claimed: Claim) -> bool:
    """Read, chunk, embed and store one claimed batch; returns whether it ended its job."""
    settings, began = resources.settings, time.monotonic()
    with unit_of_work(resources.engine, claimed.tenant_id) as session:
        # The document locked first (the fleet's lock order), so a cancel or a retry that
        # came first is seen here, and one that comes later finds it processing.
        document = begin_ingestion(session, document_of(session, claimed.batch_id))
        batch = running_batch(session, claimed)
        if batch is None or document is None:
            raise Cancelled()
    with tempfile.TemporaryDirectory(prefix="docuchat-ingest-") as folder:
        path = Path(folder) / "document.pdf"
        with unit_of_work(resources.engine, claimed.tenant_id) as session, path.open("wb") as out:
            copy_blob(session, batch.document_id, out)
        result = ingest_pages(
            path,
            resources.embedder,
            ChunkingOptions(
                chunk_tokens=settings.chunk_token_size,
                overlap_tokens=settings.chunk_overlap,
                limits=read_limits(settings),
                batch_size=settings.embedding_batch_size,
            ),
            batch.first_page,
            batch.last_page,
            ordinal_base=batch.ordinal * ORDINAL_STRIDE,
            on_progress=ProgressReporter(resources, batch),
        )
    skipped = [{"page": page.number, "reason": page.reason} for page in result.skipped]
    with unit_of_work(resources.engine, claimed.tenant_id) as session:
        # Locks in the fleet's one order (document, job, batch): the job's lock makes one
        # batch the one that ends it.
        document = lock_document(session, batch.document_id)
        running = lock_job_totals(session, claimed.job_id)
        held = running_batch(session, claimed)
        if document is None or running is None or held is None:
            raise Cancelled()
        store_batch_chunks(
            session,
            held,
            result.chunks,
            result.vectors,
            letters=result.letters,
            embedding_tokens=result.embedding_tokens,
            skipped=skipped,
            pages=_page_records(result),
        )
        ended = _end_job_if_last(session, resources, claimed, held.document_id)
    metrics.record_ingestion(resources.redis, result.pages_read, time.monotonic() - began)
    return ended


def _page_records(result: IngestedPages) -> list[PageText]:
    """Every page of the batch as it was indexed, and those skipped, with the reason."""
    skipped = [
        PageText(page.number, "", source=SKIPPED, note=page.reason) for page in result.skipped
    ]
    return sorted([*result.pages, *skipped], key=lambda page: page.number)


def _end_job_if_last(
    session: Session, resources: WorkerParts, claimed: Claim, document_id: uuid.UUID
) -> bool:
    """With every batch of the job stored, the document is ready (or fails: no text at all,
    or every page skipped) and the job ends; its embedding is counted once."""
    totals = lock_job_totals(session, claimed.job_id)
    if totals is None or totals.remaining:
        return False
    document = lock_document(session, document_id)
    if document is None:
        raise Cancelled()
    if len(totals.skipped) == totals.page_count:
        reasons = sorted({page["reason"] for page in totals.skipped})
        fail_ingest(session, claimed.job_id, f"every page was skipped: {'; '.join(reasons)}")
        return True
    if totals.letters < MIN_LETTERS:
        fail_ingest(session, claimed.job_id, str(_no_text(resources.settings)))
        return True
    chunks = finish_document(
        session, document, totals.page_count, totals.batches * ORDINAL_STRIDE, totals.skipped
    )
    record_usage(
        session,
        tenant_id=claimed.tenant_id,
        user_id=document.uploaded_by,
        job_id=claimed.job_id,
        kind="embedding",
        model=resources.embedder.model,
        prompt_tokens=totals.embedding_tokens,
        estimated=resources.embedder.estimates_usage,
    )
    finish_job(
        session,
        claimed.job_id,
        "succeeded",
        progress={
            "stage": "done",
            "pages_done": totals.page_count,
            "pages_total": totals.page_count,
            "chunks_done": chunks,
            "chunks_total": chunks,
        },
    )
    log.info(
        "ingested document %s: %d pages (%d skipped), %d chunks",
        document_id,
        totals.page_count,
        len(totals.skipped),
        chunks,
    )
    return True


def _no_text(settings: Settings) -> NoExtractableText:
    """Why a document gave no text: OCR read nothing either, or OCR is off (and how to turn
    it on)."""
    if ocr_options(settings) is None:
        return NoExtractableText(f"a scanned document, and OCR is off: {HOW_TO_TURN_ON}")
    return NoExtractableText("a scanned document in which OCR found no text either")

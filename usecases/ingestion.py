"""Ingesting one uploaded document (the worker's side of an upload): its bytes read from the
database, extracted, chunked and embedded by the pipeline, and its chunks stored with its
usage, in one transaction at the end.

Idempotent: a duplicate or redelivered message either finds the job finished and stops, or
redoes the work and replaces the chunks, so exactly one set is ever stored. A job cancelled
or a document deleted meanwhile raises Cancelled at the next progress report.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from pathlib import Path

from db.documents import begin_ingestion, copy_blob, finish_ingestion, lock_document
from db.engine import unit_of_work
from db.jobs import claim_job, finish_job, report_progress
from db.usage import record_usage
from pipeline.ingest import ChunkingOptions, IngestProgress, ingest_pdf
from transport import fleet_metrics as metrics
from usecases.documents import read_limits
from usecases.jobs import Cancelled
from usecases.ports import WorkerParts

log = logging.getLogger("docuchat.usecases")

# Progress is written at most this often (and at each change of stage), not once per chunk.
PROGRESS_INTERVAL_SECONDS = 0.5


class ProgressReporter:
    """Writes job progress cheaply, and stops the work when the job was cancelled."""

    def __init__(self, resources: WorkerParts, tenant_id: uuid.UUID, job_id: uuid.UUID):
        self._resources = resources
        self._tenant_id = tenant_id
        self._job_id = job_id
        self._last_stage = ""
        self._last_write = 0.0
        self.pages_total = 0

    def __call__(self, progress: IngestProgress) -> None:
        now = time.monotonic()
        if progress.stage == "extracting":
            self.pages_total = progress.total
        if (
            progress.stage == self._last_stage
            and progress.done < progress.total
            and now - self._last_write < PROGRESS_INTERVAL_SECONDS
        ):
            return
        self._last_stage, self._last_write = progress.stage, now
        with unit_of_work(self._resources.engine, self._tenant_id) as session:
            still_running = report_progress(session, self._job_id, self.snapshot(progress))
        if not still_running:
            raise Cancelled()

    def snapshot(self, progress: IngestProgress) -> dict[str, object]:
        pages_done = progress.done if progress.stage == "extracting" else self.pages_total
        snapshot: dict[str, object] = {
            "stage": progress.stage,
            "pages_done": pages_done,
            "pages_total": self.pages_total,
        }
        if progress.stage != "extracting":
            snapshot |= {"chunks_done": progress.done, "chunks_total": progress.total}
        return snapshot


def ingest(resources: WorkerParts, tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
    settings = resources.settings
    began = time.monotonic()
    with unit_of_work(resources.engine, tenant_id) as session:
        claimed = claim_job(session, job_id)
        if claimed is None:
            return  # a duplicate delivery of finished work
        job = claimed.job
        document = begin_ingestion(session, job.document_id) if job.document_id else None
        if document is None:
            raise Cancelled()
        document_id = document.id
    with tempfile.TemporaryDirectory(prefix="docuchat-ingest-") as folder:
        path = Path(folder) / "document.pdf"
        with unit_of_work(resources.engine, tenant_id) as session, path.open("wb") as out:
            copy_blob(session, document_id, out)
        result = ingest_pdf(
            path,
            resources.embedder,
            ChunkingOptions(
                chunk_tokens=settings.chunk_token_size,
                overlap_tokens=settings.chunk_overlap,
                limits=read_limits(settings),
                batch_size=settings.embedding_batch_size,
            ),
            on_progress=ProgressReporter(resources, tenant_id, job_id),
        )
    with unit_of_work(resources.engine, tenant_id) as session:
        document = lock_document(session, document_id)
        if document is None or not report_progress(session, job_id, {"stage": "storing"}):
            raise Cancelled()
        stored = finish_ingestion(
            session, document, result.page_count, result.chunks, result.vectors
        )
        record_usage(
            session,
            tenant_id=tenant_id,
            user_id=document.uploaded_by,
            job_id=job_id,
            kind="embedding",
            model=resources.embedder.model,
            prompt_tokens=result.embedding_tokens,
        )
        finish_job(
            session,
            job_id,
            "succeeded",
            progress={
                "stage": "done",
                "pages_done": result.page_count,
                "pages_total": result.page_count,
                "chunks_done": stored,
                "chunks_total": stored,
            },
        )
    metrics.record_job(resources.redis, "ingest", "succeeded")
    metrics.record_ingestion(resources.redis, result.page_count, time.monotonic() - began)
    log.info("ingested document %s: %d pages, %d chunks", document_id, result.page_count, stored)

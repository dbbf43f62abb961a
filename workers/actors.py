"""The actors: thin translations from queue messages to pipeline calls and stored results.

Start the fleet with `dramatiq workers.broker workers.actors`.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import time
import uuid
from pathlib import Path

import dramatiq
from sqlalchemy import func

import workers.broker
from core import metrics
from core.bootstrap import CHAT_ACTOR, INGEST_ACTOR, TIME_LIMIT_MS
from core.job_streams import error_payload
from db.documents import copy_blob, lock_document, replace_chunks
from db.engine import unit_of_work
from db.jobs import claim_job, finish_job, report_progress
from db.usage import record_usage
from pipeline.errors import PermanentError
from pipeline.ingest import ChunkingOptions, IngestProgress, ingest_pdf
from pipeline.pdf_isolation import ReadLimits
from workers.answering import answer_chat_job
from workers.event_stream import EventWriter
from workers.outcomes import Cancelled, chat_outcome, ingest_outcome
from workers.resources import WorkerResources, worker_resources

log = logging.getLogger("docuchat.workers")

INGEST_MAX_RETRIES = 5
INGEST_TIME_LIMIT_MS = TIME_LIMIT_MS["ingest"]
CHAT_MAX_RETRIES = 3
CHAT_TIME_LIMIT_MS = TIME_LIMIT_MS["chat"]
# Progress is written at most this often (and at each change of stage), not once per chunk.
PROGRESS_INTERVAL_SECONDS = 0.5


class ProgressReporter:
    """Writes job progress cheaply, and stops the work when the job was cancelled."""

    def __init__(self, resources: WorkerResources, tenant_id: uuid.UUID, job_id: uuid.UUID):
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


@dramatiq.actor(
    actor_name=INGEST_ACTOR,
    queue_name="ingest",
    max_retries=INGEST_MAX_RETRIES,
    min_backoff=1_000,
    max_backoff=60_000,
    time_limit=INGEST_TIME_LIMIT_MS,
    throws=(PermanentError,),
)
def ingest_document(job_id: str, tenant_id: str) -> None:
    """Extract, chunk and embed one uploaded PDF, then store its chunks in one transaction.

    Idempotent: a duplicate or redelivered message either finds the job finished and stops, or
    redoes the work and replaces the chunks, so exactly one set is ever stored.
    """
    resources = worker_resources(workers.broker.settings)
    job, tenant = uuid.UUID(job_id), uuid.UUID(tenant_id)
    count = functools.partial(metrics.record_job, resources.redis, "ingest")
    with ingest_outcome(resources.engine, tenant, job, INGEST_MAX_RETRIES, count):
        _ingest(resources, tenant, job)


@dramatiq.actor(
    actor_name=CHAT_ACTOR,
    queue_name="chat",
    max_retries=CHAT_MAX_RETRIES,
    min_backoff=200,
    max_backoff=5_000,
    time_limit=CHAT_TIME_LIMIT_MS,
)
def answer_question(job_id: str, tenant_id: str) -> None:
    """Retrieve, prompt and stream one chat answer into the job's event stream, then save it.

    A retried message finds a finished job and stops; the answer and its usage are saved
    once, keyed by the job.
    """
    resources = worker_resources(workers.broker.settings)
    job, tenant = uuid.UUID(job_id), uuid.UUID(tenant_id)
    writer = EventWriter(resources.redis, job, resources.settings.stream_retention_seconds)

    def announce(reason: str) -> None:
        writer.emit("error", error_payload("internal_error", reason))

    count = functools.partial(metrics.record_job, resources.redis, "chat")
    with chat_outcome(resources.engine, tenant, job, CHAT_MAX_RETRIES, announce, count):
        answer_chat_job(resources, writer, tenant, job)


def _ingest(resources: WorkerResources, tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
    settings = resources.settings
    began = time.monotonic()
    with unit_of_work(resources.engine, tenant_id) as session:
        claimed = claim_job(session, job_id)
        if claimed is None:
            return  # a duplicate delivery of finished work
        job = claimed.job
        document = lock_document(session, job.document_id) if job.document_id else None
        if document is None:
            raise Cancelled()
        document.status, document.error = "processing", None
        document_id = document.id
    with tempfile.TemporaryDirectory(prefix="docuchat-ingest-") as folder:
        path = Path(folder) / "document.pdf"
        with unit_of_work(resources.engine, tenant_id) as session, path.open("wb") as out:
            copy_blob(session, document_id, out)
        progress = ProgressReporter(resources, tenant_id, job_id)
        result = ingest_pdf(
            path,
            resources.embedder,
            ChunkingOptions(
                chunk_tokens=settings.chunk_token_size,
                overlap_tokens=settings.chunk_overlap,
                limits=ReadLimits.from_settings(settings),
                batch_size=settings.embedding_batch_size,
            ),
            on_progress=progress,
        )
    with unit_of_work(resources.engine, tenant_id) as session:
        document = lock_document(session, document_id)
        if document is None or not report_progress(session, job_id, {"stage": "storing"}):
            raise Cancelled()
        stored = replace_chunks(session, document, result.chunks, result.vectors)
        document.status, document.error = "ready", None
        document.page_count, document.chunk_count = result.page_count, stored
        document.updated_at = func.now()
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

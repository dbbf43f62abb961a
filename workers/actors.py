"""The actors: queue messages translated to use cases, with the outcome of each recorded.

Start the fleet with `dramatiq workers.broker:setup workers.actors`.
"""

from __future__ import annotations

import functools
import logging
import uuid

import dramatiq

from core import logs
from transport import events
from transport import fleet_metrics as metrics
from transport.events import EventWriter
from transport.queue import CHAT_ACTOR, INGEST_ACTOR, TIME_LIMIT_MS, wake_ingestion
from usecases import ingestion
from usecases.answering import answer
from workers.heartbeat import worker_id
from workers.outcomes import batch_outcome, chat_outcome
from workers.services import services_of

log = logging.getLogger("docuchat.workers")

INGEST_MAX_ATTEMPTS = 5  # per batch
INGEST_TURN_RETRIES = 20  # about a quarter of an hour of backoff; then the reaper's rounds
INGEST_TIME_LIMIT_MS = TIME_LIMIT_MS["ingest"]
CHAT_MAX_RETRIES = 3
CHAT_TIME_LIMIT_MS = TIME_LIMIT_MS["chat"]


@dramatiq.actor(
    actor_name=INGEST_ACTOR,
    queue_name="ingest",
    # Dramatiq retries a turn whose claim failed (the database away); a claimed batch retries
    # in the database, with its own backoff (batch_outcome), and never raises to here.
    max_retries=INGEST_TURN_RETRIES,
    min_backoff=1_000,
    max_backoff=60_000,
    time_limit=INGEST_TIME_LIMIT_MS,
    notify_shutdown=True,  # a stopping worker hands its batch back at once
)
def ingest_turn() -> None:
    """One turn of ingestion: claim the fairest batch of pages of any tenant, read, chunk,
    embed and store it (usecases/ingestion.py). Another turn follows while work is left."""
    services = services_of()
    worker = worker_id(services.broker)
    claimed = ingestion.claim(services, worker)
    if claimed is None:
        return  # nothing claimable: no work, or each tenant with work runs its share
    job_context = logs.job_id.set(str(claimed.job_id)), logs.tenant_id.set(str(claimed.tenant_id))
    count = functools.partial(metrics.record_job, services.redis, "ingest")

    def wake(delay_ms: int | None) -> None:
        try:
            wake_ingestion(services.broker, delay_ms=delay_ms)
        except Exception as exc:  # Redis away: the reaper sends the turns the work needs
            log.warning("could not send an ingest turn: %s", exc)

    try:
        with batch_outcome(services.engine, claimed, INGEST_MAX_ATTEMPTS, count, wake):
            if ingestion.run_batch(services, claimed):
                count("succeeded")
    finally:
        wake(None)  # this turn is spent, however it ended: another for the work left, if any
        logs.job_id.reset(job_context[0])
        logs.tenant_id.reset(job_context[1])


@dramatiq.actor(
    actor_name=CHAT_ACTOR,
    queue_name="chat",
    max_retries=CHAT_MAX_RETRIES,
    min_backoff=200,
    max_backoff=5_000,
    time_limit=CHAT_TIME_LIMIT_MS,
)
def answer_question(job_id: str, tenant_id: str) -> None:
    """Retrieve, prompt and stream one chat answer, then save it (usecases/answering.py). A
    retried message finds a finished job and stops; the answer and its usage are saved once."""
    services = services_of()
    job, tenant = uuid.UUID(job_id), uuid.UUID(tenant_id)
    settings = services.settings
    writer = EventWriter(
        services.redis, job, settings.stream_retention_seconds, settings.redis_outage_wait_seconds
    )

    def announce(reason: str) -> None:
        writer.emit(events.Error("internal_error", reason))

    count = functools.partial(metrics.record_job, services.redis, "chat")
    with chat_outcome(services.engine, tenant, job, CHAT_MAX_RETRIES, announce, count):
        answer(services, writer, tenant, job, worker_id(services.broker))

"""The actors: queue messages translated to use cases, with the outcome of each recorded.

Start the fleet with `dramatiq workers.broker:setup workers.actors`.
"""

from __future__ import annotations

import functools
import uuid

import dramatiq

from pipeline.errors import PermanentError
from transport import events
from transport import fleet_metrics as metrics
from transport.broker import CHAT_ACTOR, INGEST_ACTOR, TIME_LIMIT_MS
from transport.events import EventWriter
from usecases.answering import answer
from usecases.ingestion import ingest
from workers.outcomes import chat_outcome, ingest_outcome
from workers.services import services_of

INGEST_MAX_RETRIES = 5
INGEST_TIME_LIMIT_MS = TIME_LIMIT_MS["ingest"]
CHAT_MAX_RETRIES = 3
CHAT_TIME_LIMIT_MS = TIME_LIMIT_MS["chat"]


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
    """Extract, chunk and embed one uploaded PDF, then store its chunks (usecases/ingestion.py).
    Bad files fail at once; database or provider trouble is retried with backoff."""
    services = services_of()
    job, tenant = uuid.UUID(job_id), uuid.UUID(tenant_id)
    count = functools.partial(metrics.record_job, services.redis, "ingest")
    with ingest_outcome(services.engine, tenant, job, INGEST_MAX_RETRIES, count):
        ingest(services, tenant, job)


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
    writer = EventWriter(services.redis, job, services.settings.stream_retention_seconds)

    def announce(reason: str) -> None:
        writer.emit(events.Error("internal_error", reason))

    count = functools.partial(metrics.record_job, services.redis, "chat")
    with chat_outcome(services.engine, tenant, job, CHAT_MAX_RETRIES, announce, count):
        answer(services, writer, tenant, job)

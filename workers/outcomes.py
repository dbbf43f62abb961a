"""The one place where errors become job outcomes.

Ingestion, one batch of pages at a time (`batch_outcome`):
- PermanentError (a bad file, a refused request): the job and document fail with the error's
  sentence, and the job's other batches stop.
- Cancelled (the job cancelled, the document deleted, the batch handed on): nothing stored.
- Anything else (database or provider trouble, time limit, a bug): the batch goes back to the
  queue with the reason, claimable after a backoff; after its last attempt the job fails.
- Its worker stopping (SIGTERM): the batch goes back to the queue at once.

Answers (`chat_outcome`):
- Infrastructure trouble: the job goes back to queued and Dramatiq retries with backoff; on
  the last attempt it fails, and its stream says so.
- A chat answer's own failures (the provider refused, timed out, broke off) are handled by
  the answer itself (usecases/answering.py): an `Error` event ends its stream and the job
  fails, not retried.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from dramatiq.middleware import CurrentMessage, Shutdown
from dramatiq.threading import Interrupt
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from db.batches import Claim, attempts_of, requeue_batch
from db.chat import fail_chat
from db.engine import unit_of_work
from db.jobs import fail_ingest, requeue_job
from pipeline.errors import PermanentError, PipelineError
from usecases.jobs import Cancelled

log = logging.getLogger("docuchat.workers")


def retries_so_far() -> int:
    message = CurrentMessage.get_current_message()
    return int(message.options.get("retries", 0)) if message is not None else 0


def describe(exc: BaseException) -> str:
    """A sentence for the job's error field; details stay in the worker's log."""
    if isinstance(exc, PipelineError):
        return str(exc)
    if isinstance(exc, DBAPIError):
        return "the database is unavailable"
    if type(exc).__name__ == "TimeLimitExceeded":
        return "the job ran past its time limit"
    return "an internal error (logged on the worker)"


def _record(engine: Engine, tenant_id: uuid.UUID, action: Callable[[Session], object]) -> None:
    """Write an outcome; when even that fails (the database is down), log and move on."""
    try:
        with unit_of_work(engine, tenant_id) as session:
            action(session)
    except Exception:
        log.exception("could not record the outcome of a job")


def _retry_or_give_up(
    engine: Engine,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    max_retries: int,
    exc: BaseException,
    give_up: Callable[[Session, uuid.UUID, str], None],
) -> str | None:
    """Requeue the job for Dramatiq's retry, or fail it on the last attempt; returns the
    final reason when it gave up."""
    reason = describe(exc)
    retries = retries_so_far()
    if retries < max_retries:
        log.warning("job %s will be retried: %s", job_id, reason, exc_info=exc)
        _record(engine, tenant_id, lambda s: requeue_job(s, job_id, reason))
        return None
    log.error("job %s failed for good: %s", job_id, reason, exc_info=exc)
    final = f"gave up after {retries + 1} attempts: {reason}"
    _record(engine, tenant_id, lambda s: give_up(s, job_id, final))
    return final


@contextmanager
def batch_outcome(
    engine: Engine,
    claimed: Claim,
    max_attempts: int,
    count: Callable[[str], None],
    wake: Callable[[int | None], None],
) -> Iterator[None]:
    """A batch of pages ends stored, or its job ends failed (a bad file; too many attempts),
    or it goes back to the queue: at once when its worker is stopping, else after a backoff
    that doubles with each attempt. Batches retry in the database, not by Dramatiq's retries:
    `wake` sends the turn that claims it once the backoff is over (a delay in ms)."""
    tenant, job, batch = claimed.tenant_id, claimed.job_id, claimed.batch_id
    try:
        yield
    except Cancelled:
        log.info("ingest job %s stopped: cancelled, deleted, or handed to another worker", job)
    except PermanentError as exc:
        reason = str(exc)
        log.info("ingest job %s failed: %s", job, reason)
        _record(engine, tenant, lambda s: fail_ingest(s, job, reason))
        count("failed")
    except Shutdown:
        log.info("batch %s goes back to the queue: its worker is stopping", batch)
        _record(engine, tenant, lambda s: requeue_batch(s, batch, "its worker stopped", NOW))
    except (Exception, Interrupt) as exc:
        reason = describe(exc)
        attempts = _attempts(engine, tenant, batch)
        if attempts >= max_attempts:
            log.error("ingest job %s failed for good: %s", job, reason, exc_info=exc)
            final = f"gave up after {attempts} attempts: {reason}"
            _record(engine, tenant, lambda s: fail_ingest(s, job, final))
            count("failed")
            return
        delay = backoff(attempts)
        log.warning("batch %s will be retried in %s: %s", batch, delay, reason, exc_info=exc)
        _record(engine, tenant, lambda s: requeue_batch(s, batch, reason, delay))
        wake(int(delay.total_seconds() * 1000))


NOW = timedelta(0)


def backoff(attempts: int) -> timedelta:
    """1 s after a first failure, doubling, at most a minute."""
    return timedelta(seconds=min(60, 2 ** max(0, attempts - 1)))


def _attempts(engine: Engine, tenant_id: uuid.UUID, batch_id: uuid.UUID) -> int:
    try:
        with unit_of_work(engine, tenant_id) as session:
            return attempts_of(session, batch_id)
    except Exception:
        log.exception("could not read a batch's attempts")
        return 0


@contextmanager
def chat_outcome(
    engine: Engine,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    max_retries: int,
    announce: Callable[[str], None],
    count: Callable[[str], None],
) -> Iterator[None]:
    """Failures of the answer itself are handled where they happen (an `error` event); what
    reaches here is the infrastructure's: retried, and on the last attempt announced on the
    job's stream."""
    try:
        yield
    except BaseException as exc:
        final = _retry_or_give_up(engine, tenant_id, job_id, max_retries, exc, fail_chat)
        if final is not None:
            count("failed")
            try:
                announce(final)
            except Exception:
                log.exception("could not announce the failure of chat job %s", job_id)
        raise

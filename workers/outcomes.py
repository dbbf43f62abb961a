"""The one place where errors become job outcomes.

- PermanentError (a bad file, a refused request): the job and document fail with the error's
  sentence; Dramatiq does not retry (the actor lists it in `throws`).
- Cancelled (the document was deleted meanwhile): the job ends cancelled, nothing is stored.
- Anything else (database or provider trouble, time limit, a bug): the job goes back to
  queued with the reason and Dramatiq retries with backoff; on the last attempt it fails.
- A chat answer's own failures (the provider refused, timed out, broke off) are handled by
  the answer itself (usecases/answering.py): an `Error` event ends its stream and the job
  fails, not retried.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dramatiq.middleware import CurrentMessage
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from db.chat import fail_chat
from db.engine import unit_of_work
from db.jobs import fail_ingest, finish_job, requeue_job
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


def _record(engine: Engine, tenant_id: uuid.UUID, action: Callable[[Session], None]) -> None:
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
def ingest_outcome(
    engine: Engine,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    max_retries: int,
    count: Callable[[str], None],
) -> Iterator[None]:
    """`count` is told how the job ended when it ended here (cancelled or failed)."""
    try:
        yield
    except Cancelled:
        log.info("ingest job %s cancelled", job_id)
        _record(engine, tenant_id, lambda s: finish_job(s, job_id, "cancelled"))
        count("cancelled")
    except PermanentError as exc:
        reason = str(exc)
        log.info("ingest job %s failed: %s", job_id, reason)
        _record(engine, tenant_id, lambda s: fail_ingest(s, job_id, reason))
        count("failed")
        raise
    except BaseException as exc:
        if _retry_or_give_up(engine, tenant_id, job_id, max_retries, exc, fail_ingest):
            count("failed")
        raise


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

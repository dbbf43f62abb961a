"""The one place where errors become job outcomes.

- PermanentError (a bad file, a refused request): the job and document fail with the error's
  sentence; Dramatiq does not retry (the actor lists it in `throws`).
- Cancelled (the document was deleted meanwhile): the job ends cancelled, nothing is stored.
- Anything else (database or provider trouble, time limit, a bug): the job goes back to
  queued with the reason and Dramatiq retries with backoff; on the last attempt it fails.
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

from db.engine import unit_of_work
from db.jobs import fail_ingest, finish_job, requeue_job
from pipeline.errors import PermanentError, TransientError

log = logging.getLogger("docuchat.workers")


class Cancelled(Exception):
    """The work is no longer wanted: its job was cancelled or its document deleted."""


def retries_so_far() -> int:
    message = CurrentMessage.get_current_message()
    return int(message.options.get("retries", 0)) if message is not None else 0


def describe(exc: BaseException) -> str:
    """A sentence for the job's error field; details stay in the worker's log."""
    if isinstance(exc, TransientError):
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


@contextmanager
def ingest_outcome(
    engine: Engine, tenant_id: uuid.UUID, job_id: uuid.UUID, max_retries: int
) -> Iterator[None]:
    try:
        yield
    except Cancelled:
        log.info("ingest job %s cancelled", job_id)
        _record(engine, tenant_id, lambda s: finish_job(s, job_id, "cancelled"))
    except PermanentError as exc:
        reason = str(exc)
        log.info("ingest job %s failed: %s", job_id, reason)
        _record(engine, tenant_id, lambda s: fail_ingest(s, job_id, reason))
        raise
    except BaseException as exc:
        reason = describe(exc)
        retries = retries_so_far()
        if retries >= max_retries:
            log.error("ingest job %s failed for good: %s", job_id, reason, exc_info=exc)
            final = f"gave up after {retries + 1} attempts: {reason}"
            _record(engine, tenant_id, lambda s: fail_ingest(s, job_id, final))
        else:
            log.warning("ingest job %s will be retried: %s", job_id, reason, exc_info=exc)
            _record(engine, tenant_id, lambda s: requeue_job(s, job_id, reason))
        raise

"""The reaper: no job stays queued or running forever because Redis lost its message.

A job's queue message has the job's id as its message id, and Dramatiq keeps a message in
its queue's hashes from enqueue until the ack, which comes after the job's final state is
committed. So an unfinished job with no message in either hash of its queue has lost it (a
Redis restart without persistence, a failover, a flush), provided it is not merely between
two steps: a queued job must have been idle longer than a grace that covers the moment
between its row and its enqueue, and a running one longer than its attempt's time limit, for
its worker may still be at it. The reaper sends such a job again, at most MAX_REQUEUES times,
then fails it with the reason.

Every worker process runs one; a Postgres advisory lock lets one of them reap at a time.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta
from typing import Any

import dramatiq
import msgspec
from dramatiq import Broker
from redis import Redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from core.settings import Settings
from db.chat import fail_chat
from db.engine import SCOPE_SQL
from db.jobs import UnfinishedJob, fail_ingest, requeue_lost_job, unfinished_jobs
from transport import events
from transport.broker import CHAT_ACTOR, INGEST_ACTOR, TIME_LIMIT_MS, enqueue, message_keys
from transport.events import EventWriter
from workers.services import services_of

log = logging.getLogger("docuchat.workers.reaper")

MAX_REQUEUES = 3
LOST = "its queue message was lost (Redis restarted or was flushed)"
# Any constant the fleet agrees on: one reaper at a time.
_LOCK_KEY = 0x646F6375_72656170  # "docu" "reap"
_ACTORS = {"ingest": INGEST_ACTOR, "chat": CHAT_ACTOR}


def reap_lost_jobs(
    engine: Engine, redis: Redis, broker: Broker, grace: timedelta, retention_seconds: int
) -> dict[str, list[uuid.UUID]]:
    """One round: requeue (or, past MAX_REQUEUES, fail) every unfinished job whose message is
    gone. Returns the ids it requeued and failed; nothing when another reaper holds the lock."""
    done: dict[str, list[uuid.UUID]] = {"requeued": [], "failed": []}
    with engine.begin() as conn:
        locked = conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        if not locked.scalar():
            return done
        session = Session(bind=conn)
        candidates = [job for job in unfinished_jobs(session, grace) if _may_be_lost(job, grace)]
        present = _jobs_with_messages(redis) if candidates else set()
        lost = [job for job in candidates if str(job.id) not in present]
        for job in lost:
            session.execute(SCOPE_SQL, {"tenant_id": str(job.tenant_id)})
            requeues = requeue_lost_job(session, job.id, LOST)
            if requeues is None:
                continue  # finished between the two looks: its message was acked, not lost
            if requeues > MAX_REQUEUES:
                reason = f"{LOST}, {MAX_REQUEUES} times; giving up"
                (fail_ingest if job.kind == "ingest" else fail_chat)(session, job.id, reason)
                if job.kind == "chat":
                    writer = EventWriter(redis, job.id, retention_seconds)
                    writer.emit(events.Error("internal_error", reason))
                done["failed"].append(job.id)
                continue
            session.flush()  # the row stays locked until the commit: a worker waits for it
            enqueue(broker, job.kind, _ACTORS[job.kind], str(job.id), str(job.tenant_id))
            done["requeued"].append(job.id)
        session.flush()
    for kind, ids in done.items():
        if ids:
            log.warning("%s %d job(s) whose message was lost: %s", kind, len(ids), ids)
    return done


def _may_be_lost(job: UnfinishedJob, grace: timedelta) -> bool:
    """A queued job idle past the grace should have a message; a running one may still be on
    a live worker (whose message Redis lost) until its attempt's time limit has passed."""
    if job.status == "queued":
        return True
    return job.idle > timedelta(milliseconds=TIME_LIMIT_MS[job.kind]) + grace


class _Envelope(msgspec.Struct):
    message_id: str  # the job's id (transport.broker.enqueue)


def _jobs_with_messages(redis: Redis) -> set[str]:
    """The ids of the jobs that have a message in Redis, waiting, delayed or being worked on.
    Read only when there are candidates: one pass over the queues' hashes."""
    present: set[str] = set()
    for queue in _ACTORS:
        for key in message_keys(queue):
            for _, raw in redis.hscan_iter(key, count=1000):
                present.add(msgspec.json.decode(raw, type=_Envelope).message_id)
    return present


class JobReaper(dramatiq.Middleware):
    """Runs `reap_lost_jobs` every REAPER_INTERVAL_SECONDS in each worker process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(broker,), name="job-reaper", daemon=True
        )
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        self._stop.set()

    def _run(self, broker: Broker) -> None:
        settings = self._settings
        grace = timedelta(seconds=settings.reaper_grace_seconds)
        while not self._stop.wait(settings.reaper_interval_seconds):
            try:
                resources = services_of(broker)
                reap_lost_jobs(
                    resources.engine,
                    resources.redis,
                    broker,
                    grace,
                    settings.stream_retention_seconds,
                )
            except Exception as exc:  # Redis or Postgres down: the next round tries again
                log.warning("the reaper could not look for lost jobs: %s", exc)

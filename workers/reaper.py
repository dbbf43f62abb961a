"""The reaper: no work stays queued or running forever because a worker died or Redis lost
a message.

Answers. A chat job's queue message has the job's id as its message id, and Dramatiq keeps a
message in its queue's hashes from enqueue until the ack, which comes after the job's final
state is committed. So an unfinished chat job with no message in either hash of its queue has
lost it (a Redis restart without persistence, a failover, a flush), provided it is not merely
between two steps: a queued job must have been idle longer than a grace that covers the moment
between its row and its enqueue, and a running one must have lost its worker (no heartbeat
for WORKER_HEARTBEAT_TIMEOUT_SECONDS) or be idle past its attempt's time limit. The reaper
sends such a job again, at most MAX_REQUEUES times, then fails it with the reason.

Ingestion. Batches of pages live in Postgres; ingest messages are only turns (transport/
broker.py). A running batch whose worker's heartbeat stopped, or that has been idle past a
turn's time limit, goes back to the queue at once. And every claimable batch has a turn
waiting for it: turns lost with Redis, or never sent because Redis was away, are sent again.

Every worker process runs one; a Postgres advisory lock lets one of them reap at a time.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dramatiq
import msgspec
from dramatiq import Broker
from redis import Redis
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from core.settings import Settings
from db.batches import OpenBatch, open_batches, release_batch
from db.chat import fail_chat
from db.engine import SCOPE_SQL
from db.jobs import UnfinishedJob, requeue_lost_job, unfinished_jobs
from transport import events
from transport.broker import (
    CHAT_ACTOR,
    HEARTBEATS_KEY,
    TIME_LIMIT_MS,
    enqueue,
    message_keys,
    wake_ingestion,
)
from transport.events import EventWriter
from workers.services import services_of

log = logging.getLogger("docuchat.workers.reaper")

MAX_REQUEUES = 3
LOST = "its queue message was lost (Redis restarted or was flushed)"
# Any constant the fleet agrees on: one reaper at a time.
_LOCK_KEY = 0x646F6375_72656170  # "docu" "reap"
# Turns sent in one round at most: enough to fill any fleet, few enough to stay cheap.
_MAX_TURNS_PER_ROUND = 1000
FIRST_ROUND_SECONDS = 10.0


@dataclass(frozen=True)
class Fleet:
    """What the reaper needs to know about the workers."""

    heartbeat_timeout: timedelta
    tenant_ingest_share: int


@dataclass
class Reaped:
    requeued: list[uuid.UUID] = field(default_factory=list)  # chat jobs sent again
    failed: list[uuid.UUID] = field(default_factory=list)  # chat jobs given up
    released: list[uuid.UUID] = field(default_factory=list)  # batches back in the queue
    turns: int = 0  # ingest turns sent


def reap(
    engine: Engine,
    redis: Redis,
    broker: Broker,
    grace: timedelta,
    retention_seconds: int,
    fleet: Fleet,
) -> Reaped:
    """One round; nothing when another reaper holds the lock."""
    done = Reaped()
    with engine.begin() as conn:
        locked = conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        if not locked.scalar():
            return done
        session = Session(bind=conn)
        live = live_workers(redis, fleet.heartbeat_timeout)
        _reap_chat(session, redis, broker, grace, retention_seconds, live, done)
        batches = open_batches(session)
        _release_batches(session, batches, live, grace, done)
        session.flush()
    # Turns after the commit: a released batch is claimable only once it is visible.
    with engine.begin() as conn:
        batches = open_batches(Session(bind=conn))
    done.turns = _missing_turns(redis, batches, fleet.tenant_ingest_share)
    if done.turns:
        wake_ingestion(broker, done.turns)
    for what in ("requeued", "failed", "released"):
        ids = getattr(done, what)
        if ids:
            log.warning("%s %d: %s", what, len(ids), ids)
    if done.turns:
        log.warning("sent %d ingest turn(s) for claimable batches without one", done.turns)
    return done


def live_workers(redis: Redis, timeout: timedelta) -> set[str]:
    """The broker ids whose heartbeat is younger than `timeout`."""
    since = int((time.time() - timeout.total_seconds()) * 1000)
    return {
        member.decode() if isinstance(member, bytes) else str(member)
        for member in redis.zrangebyscore(HEARTBEATS_KEY, since, "+inf")
    }


def _reap_chat(
    session: Session,
    redis: Redis,
    broker: Broker,
    grace: timedelta,
    retention_seconds: int,
    live: set[str],
    done: Reaped,
) -> None:
    """Requeue (or, past MAX_REQUEUES, fail) every unfinished chat job whose message is gone."""
    candidates = [
        job
        for job in unfinished_jobs(session, grace)
        if job.kind == "chat" and _may_be_lost(job, grace, live)
    ]
    present = _jobs_with_messages(redis) if candidates else set()
    for job in (job for job in candidates if str(job.id) not in present):
        session.execute(SCOPE_SQL, {"tenant_id": str(job.tenant_id)})
        requeues = requeue_lost_job(session, job.id, LOST)
        if requeues is None:
            continue  # finished between the two looks: its message was acked, not lost
        if requeues > MAX_REQUEUES:
            reason = f"{LOST}, {MAX_REQUEUES} times; giving up"
            fail_chat(session, job.id, reason)
            EventWriter(redis, job.id, retention_seconds).emit(
                events.Error("internal_error", reason)
            )
            done.failed.append(job.id)
            continue
        session.flush()  # the row stays locked until the commit: a worker waits for it
        enqueue(broker, "chat", CHAT_ACTOR, str(job.id), str(job.tenant_id))
        done.requeued.append(job.id)


def _may_be_lost(job: UnfinishedJob, grace: timedelta, live: set[str]) -> bool:
    """A queued job idle past the grace should have a message; a running one may still be on
    a live worker (whose message Redis lost) until its attempt's time limit has passed."""
    if job.status == "queued" or (job.claimed_by and job.claimed_by not in live):
        return True
    return job.idle > timedelta(milliseconds=TIME_LIMIT_MS[job.kind]) + grace


def _release_batches(
    session: Session, batches: list[OpenBatch], live: set[str], grace: timedelta, done: Reaped
) -> None:
    """Running batches whose worker is gone, or that stalled past a turn's time limit, go
    back to the queue; the worker that held a stalled one stops at its next report."""
    stalled = timedelta(milliseconds=TIME_LIMIT_MS["ingest"]) + grace
    for batch in batches:
        if batch.status != "running" or batch.claimed_by is None:
            continue
        if batch.claimed_by in live and batch.idle <= stalled:
            continue
        session.execute(SCOPE_SQL, {"tenant_id": str(batch.tenant_id)})
        if release_batch(session, batch.id, batch.claimed_by):
            done.released.append(batch.id)


def _missing_turns(redis: Redis, batches: list[OpenBatch], tenant_share: int) -> int:
    """How many more turns the claimable batches need: as many as the tenants may start now
    (each under its share), less the turns already waiting."""
    running = Counter(batch.tenant_id for batch in batches if batch.status == "running")
    claimable = Counter(batch.tenant_id for batch in batches if batch.claimable)
    startable = sum(
        min(count, max(0, tenant_share - running[tenant])) for tenant, count in claimable.items()
    )
    if not startable:
        return 0
    # Every ingest message from enqueue to ack, less those running a batch now: waiting turns.
    messages = sum(int(redis.hlen(key)) for key in message_keys("ingest"))
    waiting = max(0, messages - sum(running.values()))
    return min(_MAX_TURNS_PER_ROUND, max(0, startable - waiting))


class _Envelope(msgspec.Struct):
    message_id: str  # the job's id (transport.broker.enqueue)


def _jobs_with_messages(redis: Redis) -> set[str]:
    """The ids of the chat jobs that have a message in Redis, waiting, delayed or being worked
    on. Read only when there are candidates: one pass over the queue's hashes."""
    present: set[str] = set()
    for key in message_keys("chat"):
        for _, raw in redis.hscan_iter(key, count=1000):
            present.add(msgspec.json.decode(raw, type=_Envelope).message_id)
    return present


class JobReaper(dramatiq.Middleware):
    """Runs `reap` every REAPER_INTERVAL_SECONDS in each worker process."""

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
        fleet = Fleet(
            timedelta(seconds=settings.worker_heartbeat_timeout_seconds),
            settings.tenant_ingest_share,
        )
        # A first round soon after boot: a restarted fleet picks up what the last one left.
        wait = min(settings.reaper_interval_seconds, FIRST_ROUND_SECONDS)
        while not self._stop.wait(wait):
            wait = settings.reaper_interval_seconds
            try:
                resources = services_of(broker)
                reap(
                    resources.engine,
                    resources.redis,
                    broker,
                    grace,
                    settings.stream_retention_seconds,
                    fleet,
                )
            except Exception as exc:  # Redis or Postgres down: the next round tries again
                log.warning("the reaper could not look for lost work: %s", exc)

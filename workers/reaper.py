"""The reaper: no work stays queued or running forever because a worker died or Redis lost
or stranded a message.

Every unit of work has an owner with a heartbeat and a deadline. A chat job's owner is the
worker that claimed it (`claimed_by`, whose heartbeat is in Redis) and its deadline is its
attempt's time limit; a queued one has no owner, only a message that must be waiting for one.
A batch of pages is owned the same way, and a document's next batch needs an ingest turn
waiting for it.

Answers. A chat job's queue message has the job's id as its message id, and Dramatiq keeps a
message in its queue's hashes from enqueue until the ack. A message is waiting when it is in
its queue's list, or delayed with a due time not long past; any other copy is held by a worker.
An unfinished chat job past the grace whose message is not waiting is sent again: its message
is gone (a Redis restart without persistence, a flush), or it is held by a worker that is dead
or no longer works on it (Redis froze while the worker tried to retry or acknowledge it, so
the worker kept it). A running job is left to its owner while the owner's heartbeat is fresh
and its time limit has not passed. The held copy is taken back first, then a new message is
sent, at most MAX_REQUEUES times; then the job fails with the reason.

Ingestion. Batches of pages live in Postgres; ingest messages are only turns (transport/
broker.py). A running batch whose worker's heartbeat stopped, or that has been idle past a
turn's time limit, goes back to the queue at once. And every claimable batch has a turn
waiting for it: turns lost with Redis, never sent because Redis was away, or held by a worker
that could not hand them back are sent again.

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
from transport.events import EventWriter
from transport.queue import (
    BROKER_NAMESPACE,
    CHAT_ACTOR,
    HEARTBEATS_KEY,
    TIME_LIMIT_MS,
    enqueue,
    message_keys,
    queue_key,
    wake_ingestion,
)
from workers.services import services_of

log = logging.getLogger("docuchat.workers.reaper")

MAX_REQUEUES = 3
LOST = "its queue message was lost (Redis restarted or was flushed)"
STRANDED = "its queue message was held by a worker that no longer worked on it"
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
    done.turns = _missing_turns(redis, batches, fleet.tenant_ingest_share, grace)
    if done.turns:
        wake_ingestion(broker, done.turns)
    for what in ("requeued", "failed", "released"):
        ids = getattr(done, what)
        if ids:
            log.warning("%s %d: %s", what, len(ids), ids)
    if done.turns:
        log.warning("sent %d ingest turn(s) for claimable batches without one", done.turns)
    return done


@dataclass(frozen=True)
class LiveWorkers:
    """Who counts as alive: a worker whose heartbeat is younger than the timeout, and, while
    Redis itself is younger than that (it restarted without its data), any worker it has not
    heard from yet: a live one beats within a quarter of the timeout."""

    fresh: set[str]
    unheard_may_live: bool
    heard: set[str]

    def __contains__(self, worker: object) -> bool:
        return worker in self.fresh or (self.unheard_may_live and worker not in self.heard)


def live_workers(redis: Redis, timeout: timedelta) -> LiveWorkers:
    since = (time.time() - timeout.total_seconds()) * 1000
    scored: list[tuple[bytes, float]] = redis.zrange(HEARTBEATS_KEY, 0, -1, withscores=True)  # type: ignore[assignment]
    beats = {_text(member): score for member, score in scored}
    uptime = float(redis.info("server")["uptime_in_seconds"])
    return LiveWorkers(
        fresh={worker for worker, beat in beats.items() if beat >= since},
        unheard_may_live=uptime < timeout.total_seconds(),
        heard=set(beats),
    )


def _reap_chat(
    session: Session,
    redis: Redis,
    broker: Broker,
    grace: timedelta,
    retention_seconds: int,
    live: LiveWorkers,
    done: Reaped,
) -> None:
    """Send again (or, past MAX_REQUEUES, fail) every unfinished chat job whose message is
    neither waiting nor with its live owner."""
    candidates = [
        job
        for job in unfinished_jobs(session, grace)
        if job.kind == "chat" and _may_be_lost(job, grace, live)
    ]
    messages = queue_messages(redis, "chat", grace) if candidates else QueueMessages()
    for job in (job for job in candidates if str(job.id) not in messages.waiting):
        held = messages.present.get(str(job.id), [])
        reason = STRANDED if held else LOST
        session.execute(SCOPE_SQL, {"tenant_id": str(job.tenant_id)})
        requeues = requeue_lost_job(session, job.id, reason)
        if requeues is None:
            continue  # finished between the two looks: its message was acked, not lost
        if held:
            take_back(redis, "chat", held)
        if requeues > MAX_REQUEUES:
            final = f"{reason}, {MAX_REQUEUES} times; giving up"
            fail_chat(session, job.id, final)
            EventWriter(redis, job.id, retention_seconds).emit(
                events.Error("internal_error", final)
            )
            done.failed.append(job.id)
            continue
        session.flush()  # the row stays locked until the commit: a worker waits for it
        enqueue(broker, "chat", CHAT_ACTOR, str(job.id), str(job.tenant_id))
        done.requeued.append(job.id)


def _may_be_lost(job: UnfinishedJob, grace: timedelta, live: LiveWorkers) -> bool:
    """A queued job idle past the grace should have a message; a running one may still be on
    a live worker (whose message Redis lost) until its attempt's time limit has passed."""
    if job.status == "queued" or (job.claimed_by and job.claimed_by not in live):
        return True
    return job.idle > timedelta(milliseconds=TIME_LIMIT_MS[job.kind]) + grace


def _release_batches(
    session: Session, batches: list[OpenBatch], live: LiveWorkers, grace: timedelta, done: Reaped
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


def _missing_turns(
    redis: Redis, batches: list[OpenBatch], tenant_share: int, grace: timedelta
) -> int:
    """How many more turns the claimable batches need: as many as the tenants may start now
    (each under its share), less the turns waiting. A turn a worker holds is not waiting: it
    runs a batch (counted among the running), or its worker could not hand it back."""
    running = Counter(batch.tenant_id for batch in batches if batch.status == "running")
    claimable = Counter(batch.tenant_id for batch in batches if batch.claimable)
    startable = sum(
        min(count, max(0, tenant_share - running[tenant])) for tenant, count in claimable.items()
    )
    if not startable:
        return 0
    waiting = len(queue_messages(redis, "ingest", grace).waiting)
    return min(_MAX_TURNS_PER_ROUND, max(0, startable - waiting))


class _Envelope(msgspec.Struct):
    message_id: str  # the job's id for a chat message (transport.queue.enqueue)
    options: dict[str, Any] = {}


@dataclass(frozen=True)
class QueueMessages:
    """A queue's messages: by message id (a chat job's id), the ids Redis keeps their copies
    under; and the message ids waiting for a worker."""

    present: dict[str, list[str]] = field(default_factory=dict)
    waiting: set[str] = field(default_factory=set)


def queue_messages(redis: Redis, queue: str, grace: timedelta) -> QueueMessages:
    """One pass over a queue's list and hashes. Waiting: in the queue's list (a worker takes it
    next), or delayed and due less than `grace` ago (a worker moves it to the list when due);
    any other is held by a worker, or by nobody."""
    ready, delayed = message_keys(queue)
    listed = {_text(member) for member in redis.lrange(queue_key(queue), 0, -1)}
    overdue = (time.time() - grace.total_seconds()) * 1000
    found = QueueMessages()
    for key in (ready, delayed):
        for copy_id, raw in redis.hscan_iter(key, count=1000):
            envelope = msgspec.json.decode(raw, type=_Envelope)
            found.present.setdefault(envelope.message_id, []).append(_text(copy_id))
            due = float(envelope.options.get("eta", 0))
            if (due >= overdue) if key == delayed else (_text(copy_id) in listed):
                found.waiting.add(envelope.message_id)
    return found


# Take copies of a message back from whoever holds them: out of every worker's
# acknowledgements and out of the queue's hashes and lists, in one step, so that no worker
# acknowledges or requeues them afterwards.
_TAKE_BACK = """
for _, id in ipairs(ARGV) do
  for i = 5, #KEYS do redis.call('SREM', KEYS[i], id) end
  redis.call('HDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('LREM', KEYS[3], 0, id)
  redis.call('LREM', KEYS[4], 0, id)
end
"""


def take_back(redis: Redis, queue: str, copy_ids: list[str]) -> None:
    """Take back the copies (Dramatiq's ids of them) of a message that workers hold."""
    ready, delayed = message_keys(queue)
    holders = [
        _text(key)
        for key in redis.scan_iter(match=f"{BROKER_NAMESPACE}:__acks__.*.{queue}*", count=1000)
    ]
    keys = [ready, delayed, queue_key(queue), f"{queue_key(queue)}.DQ", *holders]
    redis.eval(_TAKE_BACK, len(keys), *keys, *copy_ids)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


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

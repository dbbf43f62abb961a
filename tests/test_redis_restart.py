"""Redis killed in the middle of an answer and started again empty: the client that was
reading gets a clear `error` event, and after reconnecting with Last-Event-ID it gets the
whole answer (after a `restart`); the reaper sends the job whose message was lost again, and
the answer and its usage are saved once. No job is left unfinished.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import timedelta

import httpx
import pytest
import redis
from httpx_sse import connect_sse
from sqlalchemy import text

from bootstrap import bootstrap
from db.batches import claim_batch
from db.engine import unit_of_work
from standins.chat_client import Answer, Event, ask, read_stream
from standins.documents import english_pdf, filler
from standins.model_server import StandIn
from tests.ingest_helpers import ingest, tenant_client, upload
from tests.stack import LiveServer, OwnDatabase, Services, WorkerProcess, assert_saved_once
from tools.embedded import EmbeddedRedis
from transport.queue import HEARTBEATS_KEY
from workers.reaper import MAX_REQUEUES, Fleet, Reaped, reap

REPLY = " ".join(f"word{i}" for i in range(60)) + " [1]."

pytestmark = pytest.mark.standin(reply=REPLY, piece_delay=0.05)


def _read_until_broken(client: httpx.Client, url: str, kill: EmbeddedRedis) -> Answer:
    """Read five deltas, SIGKILL Redis, and read on until the stream says what happened."""
    answer = Answer()
    with connect_sse(client, "GET", url, timeout=30) as source:
        for sse in source.iter_sse():
            if not sse.data:
                continue  # a keep-alive that carries the reconnection delay: no event
            answer.events.append(Event(sse.event, sse.id, json.loads(sse.data)))
            if answer.names.count("delta") == 5 and kill.pid:
                os.kill(kill.pid, signal.SIGKILL)  # no save: everything in Redis is gone
            if sse.event in ("end", "error"):
                break
    return answer


def _start_empty(server: EmbeddedRedis) -> None:
    """Start again on the same port with nothing: a Redis that kept no data (a failover, a
    server without persistence)."""
    for saved in ("appendonly.aof", "dump.rdb"):
        (server.dir / saved).unlink(missing_ok=True)
    server.start()


def _resume(client: httpx.Client, url: str, last_event_id: str, timeout: float = 60) -> Answer:
    """Reconnect as EventSource does, with Last-Event-ID, until the answer's last event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = read_stream(client, url, last_event_id=last_event_id)
        except (httpx.HTTPError, AssertionError):
            answer = Answer()
        if answer.names and answer.names[-1] == "end":
            return answer
        time.sleep(0.5)
    raise AssertionError("the answer never ended after Redis came back")


@pytest.mark.parametrize(
    ("outage", "wait"),
    [(0.0, "120"), (3.0, "120"), (3.0, "0")],
    ids=["blip", "three-seconds", "three-seconds-worker-gives-up"],
)
def test_an_answer_survives_redis_losing_everything_mid_stream(
    services: Services,
    own_database: OwnDatabase,
    standin: StandIn,
    own_redis: EmbeddedRedis,
    outage: float,
    wait: str,
) -> None:
    """The worker holds what it could not write until Redis is back (REDIS_OUTAGE_WAIT_SECONDS),
    finds the new Redis without what it wrote before and writes the answer so far again, after
    a `restart`. A worker that does not wait: its write fails, the job's message is gone with
    Redis, the reaper sends it again. Either way the client shows the whole answer once."""
    engine = own_database.engine
    settings = own_database.settings(
        services,
        REDIS_URL=own_redis.url,
        RATE_LIMIT_PER_MINUTE="100000",
        OPENAI_BASE_URL=standin.base_url,
        REAPER_INTERVAL_SECONDS="0.5",
        REAPER_GRACE_SECONDS="1",
        REDIS_OUTAGE_WAIT_SECONDS=wait,
    )
    pages = ["The copper lantern hangs in the old harbour. " + filler(1, 4)]
    with (
        LiveServer(settings) as server,
        tenant_client(engine, settings, server.url) as client,
        WorkerProcess(settings, threads=1, REDIS_OUTAGE_WAIT_SECONDS=wait),
    ):
        ingest(client, english_pdf(pages), "harbour.pdf")
        started = ask(client, "Where does the copper lantern hang?")
        broken = _read_until_broken(client, started["stream_url"], own_redis)
        time.sleep(outage)
        _start_empty(own_redis)
        last_id = next(e.id for e in reversed(broken.events) if e.event == "delta")
        resumed = _resume(client, started["stream_url"], last_id)
        job = client.get(f"/v1/jobs/{started['job_id']}").json()
        requeues = assert_saved_once(client, engine, started, REPLY)

    assert broken.names[-1] == "error"
    assert broken.last("error")["code"] == "stream_unavailable"
    shown = resumed.text if "restart" in resumed.names else broken.text + resumed.text
    assert shown == REPLY  # what the client shows: nothing lost, nothing twice
    assert job["status"] == "succeeded"
    assert "restart" in resumed.names  # what the client had shown is gone with Redis
    # A worker that waited wrote the answer so far again; one that gave up left its job to
    # the reaper, which found its message gone and sent it again.
    # (More than once when a worker fetched the sent message just as Redis failed again.)
    assert requeues >= 1 if wait == "0" else requeues == 0


def test_the_reaper_resends_lost_answers_and_gives_up_after_its_limit(
    services: Services, own_database: OwnDatabase, own_redis: EmbeddedRedis
) -> None:
    """No worker listens here: the reaper is called directly on jobs whose messages it sees."""
    settings = own_database.settings(
        services, REDIS_URL=own_redis.url, RATE_LIMIT_PER_MINUTE="100000"
    )
    parts = bootstrap(settings)
    queued = redis.Redis.from_url(own_redis.url)
    try:
        with (
            LiveServer(settings) as server,
            tenant_client(own_database.engine, settings, server.url) as client,
        ):
            kept = ask(client, "Which lantern is kept?")["job_id"]
            lost = ask(client, "Which lantern is lost?")["job_id"]
            _lose(queued, "chat", lost)  # as if Redis had lost its message

            def reap_now() -> Reaped:
                return reap(parts.engine, queued, parts.broker, timedelta(0), 3600, FLEET)

            first = reap_now()
            for _ in range(MAX_REQUEUES - 1):
                _lose(queued, "chat", lost)
                reap_now()
            _lose(queued, "chat", lost)
            last = reap_now()
            kept_job = client.get(f"/v1/jobs/{kept}").json()
            lost_job = client.get(f"/v1/jobs/{lost}").json()
    finally:
        parts.close()
        queued.close()
    assert first.requeued == [uuid.UUID(lost)] and first.failed == []
    assert kept_job["status"] == "queued"
    assert last.requeued == [] and last.failed == [uuid.UUID(lost)]
    assert lost_job["status"] == "failed" and "queue message was lost" in lost_job["error"]


def test_the_reaper_hands_on_the_batches_of_a_dead_worker_and_sends_lost_turns(
    services: Services, own_database: OwnDatabase, own_redis: EmbeddedRedis
) -> None:
    """No worker listens here either: a batch claimed by a worker whose heartbeat is gone goes
    back to the queue, and a claimable batch whose turn Redis lost gets one again."""
    settings = own_database.settings(
        services, REDIS_URL=own_redis.url, RATE_LIMIT_PER_MINUTE="100000"
    )
    parts = bootstrap(settings)
    queued = redis.Redis.from_url(own_redis.url)

    def reap_now() -> Reaped:
        return reap(parts.engine, queued, parts.broker, timedelta(0), 3600, FLEET)

    try:
        with (
            LiveServer(settings) as server,
            tenant_client(own_database.engine, settings, server.url) as client,
        ):
            response = upload(client, english_pdf([filler(1, 3)]))
            assert response.status_code == 202, response.text
            assert _turns(queued) == 1  # one batch, one turn
            assert reap_now().turns == 0  # it has its turn
            _lose(queued, "ingest", None)  # Redis lost the turn
            assert reap_now().turns == 1
            queued.zadd(HEARTBEATS_KEY, {"a-worker-that-died": 1})  # its last beat, long ago
            with unit_of_work(parts.engine) as session:
                claimed = claim_batch(session, "a-worker-that-died", 1)
            assert claimed is not None
            held = reap_now()
            job = client.get(f"/v1/jobs/{response.json()['job']['id']}").json()
    finally:
        parts.close()
        queued.close()
    assert held.released == [claimed.batch_id]
    assert held.turns == 0  # the turn sent before is still waiting for it
    assert job["status"] == "running"  # its first batch was claimed once
    with own_database.engine.connect() as conn:
        batch = conn.execute(
            text("SELECT status, claimed_by, error FROM ingest_batches WHERE id = :b"),
            {"b": claimed.batch_id},
        ).one()
    assert tuple(batch) == ("queued", None, "its worker stopped")


FLEET = Fleet(heartbeat_timeout=timedelta(seconds=60), tenant_ingest_share=1)


def _turns(queued: redis.Redis) -> int:
    return int(queued.hlen("docuchat:ingest.msgs"))


def _lose(queued: redis.Redis, queue: str, job_id: str | None) -> None:
    """Remove a job's messages (any message, without a job) from a queue's hash, as a Redis
    restart would."""
    key = f"docuchat:{queue}.msgs"
    for field, raw in queued.hgetall(key).items():
        if job_id is None or json.loads(raw)["message_id"] == job_id:
            queued.hdel(key, field)
    if job_id is None:
        queued.delete(f"docuchat:{queue}")

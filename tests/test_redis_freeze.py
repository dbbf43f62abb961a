"""Redis frozen (SIGSTOP) while answers stream and a document ingests, then resumed (SIGCONT):
every answer finishes with each token exactly once, every document is ready, within a
deadline after the freeze ends, and nothing waits for an unrelated upload or a restart.

The API, workers and Redis are these tests' own (see test_worker_crash.py): the workers
started here are the only ones.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from datetime import timedelta

import httpx
import pytest
import redis
from sqlalchemy import Engine, text

from bootstrap import bootstrap
from standins.chat_client import Answer, Event, ask, read_stream
from standins.documents import costly_pdf, english_pdf, filler
from standins.model_server import StandIn
from tests.ingest_helpers import (
    assert_one_set_of_chunks,
    ingest,
    tenant_client,
    upload,
    wait_for_job,
)
from tests.stack import LiveServer, OwnDatabase, Services, WorkerProcess, assert_saved_once
from tools.embedded import EmbeddedRedis
from transport.queue import HEARTBEATS_KEY, queue_key
from workers.reaper import Fleet, Reaped, reap

REPLY = " ".join(f"word{i}" for i in range(60)) + " [1]."
RECOVERY_DEADLINE = 60.0  # seconds after the fault ends: the promise of docs/faults.md
FREEZE_SECONDS = 8.0

pytestmark = pytest.mark.standin(reply=REPLY, piece_delay=0.05)


def freeze(server: EmbeddedRedis, seconds: float) -> float:
    """Stop Redis for `seconds` (its connections stay open, nothing answers); returns when it
    was resumed (time.monotonic())."""
    assert server.pid
    os.kill(server.pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    return time.monotonic()


class Follower(threading.Thread):
    """A reader as EventSource behaves: it reads the stream, and when the stream breaks (an
    error event about the stream, a refused or cut connection) reconnects with Last-Event-ID,
    until the answer ends. `finished_at` is when it read the answer's last event."""

    def __init__(self, client: httpx.Client, url: str, first_deltas: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client, self.url, self.first_deltas = client, url, first_deltas
        self.answer = Answer()
        self.finished_at: float | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            last = self.answer.events[-1].id if self.answer.events else None
            try:
                part = read_stream(self.client, self.url, last_event_id=last, on_event=self._seen)
            except (httpx.HTTPError, AssertionError):
                time.sleep(0.5)
                continue
            if part.names and part.names[-1] == "end":
                self.finished_at = time.monotonic()
                return
            if part.names and part.names[-1] == "error":
                if not part.last("error")["code"].startswith("stream_"):
                    return  # the answer failed: the test says so
                self.answer.events.pop()  # about the stream, not the answer: read on
            time.sleep(0.5)

    def _seen(self, event: Event) -> None:
        self.answer.events.append(event)
        if self.answer.names.count("delta") >= 5:
            self.first_deltas.set()


def _stack(redis_url: str, standin: StandIn, **extra: str) -> dict[str, str]:
    """The settings of the API and the workers: a sweep every half second."""
    return {
        "REDIS_URL": redis_url,
        "RATE_LIMIT_PER_MINUTE": "100000",
        "OPENAI_BASE_URL": standin.base_url,
        "REAPER_INTERVAL_SECONDS": "0.5",
        "REAPER_GRACE_SECONDS": "1",
        "REDIS_TIMEOUT_SECONDS": "1",
        **extra,
    }


@pytest.mark.parametrize(
    "outage_wait",
    ["120", "0"],
    ids=["the-worker-waits-for-redis", "the-worker-gives-up-and-the-sweep-restarts-it"],
)
def test_answers_streaming_through_a_redis_freeze_finish_exactly_once(
    services: Services,
    own_database: OwnDatabase,
    standin: StandIn,
    own_redis: EmbeddedRedis,
    outage_wait: str,
) -> None:
    """Waiting: the worker holds the text it could not write and goes on where it was once
    Redis answers. Giving up: the attempt fails during the freeze and its retry cannot be
    queued, so the worker keeps the message; the sweep takes it back and sends it again, and
    the answer starts over (a `restart`). Either way the reader shows the answer once."""
    engine = own_database.engine
    overrides = _stack(own_redis.url, standin, REDIS_OUTAGE_WAIT_SECONDS=outage_wait)
    settings = own_database.settings(services, **overrides)
    pages = ["The copper lantern hangs in the old harbour. " + filler(1, 4)]
    with (
        LiveServer(settings) as server,
        tenant_client(engine, settings, server.url) as client,
        WorkerProcess(settings, threads=2, **overrides),
    ):
        ingest(client, english_pdf(pages), "harbour.pdf")
        started = ask(client, "Where does the copper lantern hang?")
        first_deltas = threading.Event()
        follower = Follower(client, started["stream_url"], first_deltas)
        follower.start()
        assert first_deltas.wait(30), "the answer never started"
        thawed = freeze(own_redis, FREEZE_SECONDS)
        follower.join(RECOVERY_DEADLINE + 10)
        job = client.get(f"/v1/jobs/{started['job_id']}").json()
        requeues = assert_saved_once(client, engine, started, REPLY)

    assert follower.finished_at is not None, f"the answer never finished: {job}"
    assert follower.finished_at - thawed < RECOVERY_DEADLINE
    assert follower.answer.text == REPLY  # every token shown exactly once
    assert job["status"] == "succeeded", job
    if outage_wait == "0":
        assert "restart" in follower.answer.names
        assert requeues == 1  # the sweep took the kept message back and sent it again
    else:
        assert "restart" not in follower.answer.names
        assert requeues == 0


def test_a_document_ingesting_through_a_redis_freeze_is_ready_soon_after(
    services: Services, own_database: OwnDatabase, standin: StandIn, own_redis: EmbeddedRedis
) -> None:
    """The turn for the next batch of pages cannot be sent while Redis is frozen, and the
    turn that ran cannot be acknowledged: the sweep sends the turns the document needs once
    Redis answers, and the document ends with one set of chunks covering every page."""
    engine = own_database.engine
    overrides = _stack(own_redis.url, standin, INGEST_BATCH_PAGES="2")
    settings = own_database.settings(services, **overrides)
    pages = [f"Page {n} of the harbour log. " + filler(n, 3) for n in range(1, 7)]
    pdf = costly_pdf([(page, 1_000_000) for page in pages])  # a batch outlasts a moment
    with (
        LiveServer(settings) as server,
        tenant_client(engine, settings, server.url) as client,
        WorkerProcess(settings, threads=1, **overrides),
    ):
        response = upload(client, pdf, "log.pdf")
        assert response.status_code == 202, response.text
        job_id, document_id = response.json()["job"]["id"], response.json()["document"]["id"]
        deadline = time.monotonic() + 60
        while _batches_done(engine, document_id) < 1:  # part-way through the document
            assert time.monotonic() < deadline, "ingestion never started"
            time.sleep(0.05)
        thawed = freeze(own_redis, FREEZE_SECONDS)
        job = wait_for_job(client, job_id, timeout=RECOVERY_DEADLINE + 10)
        ready_after = time.monotonic() - thawed
        document = client.get(f"/v1/files/{document_id}").json()
    assert job["status"] == "succeeded", job
    assert ready_after < RECOVERY_DEADLINE
    assert document["status"] == "ready" and document["pages"] == len(pages)
    assert_one_set_of_chunks(engine, document, len(pages))


def _batches_done(engine: Engine, document_id: str) -> int:
    with engine.connect() as conn:
        done = conn.execute(
            text("SELECT count(*) FROM ingest_batches WHERE document_id = :d AND status = 'done'"),
            {"d": document_id},
        )
        return int(done.scalar_one())


def test_the_sweep_takes_back_messages_a_live_worker_holds_but_no_longer_works_on(
    services: Services, own_database: OwnDatabase, own_redis: EmbeddedRedis
) -> None:
    """No worker listens here: the sweep is called directly. A worker took a question's
    message and a document's turn and, Redis frozen, could neither retry nor acknowledge
    them: the job waits `queued`, the batch claimable, while the worker's heartbeat goes on.
    The sweep sends both again and takes the held copies back."""
    settings = own_database.settings(
        services, REDIS_URL=own_redis.url, RATE_LIMIT_PER_MINUTE="100000"
    )
    parts = bootstrap(settings)
    queued = redis.Redis.from_url(own_redis.url)
    worker = "a-worker-that-lives"

    def sweep() -> Reaped:
        queued.zadd(HEARTBEATS_KEY, {worker: int(time.time() * 1000)})
        return reap(parts.engine, queued, parts.broker, timedelta(0), 3600, FLEET)

    try:
        with (
            LiveServer(settings) as server,
            tenant_client(own_database.engine, settings, server.url) as client,
        ):
            job_id = ask(client, "Which lantern is kept?")["job_id"]
            response = upload(client, english_pdf([filler(1, 3)]))
            assert response.status_code == 202, response.text
            _hold(queued, worker)
            first = sweep()
            second = sweep()
            job = client.get(f"/v1/jobs/{job_id}").json()
            document = client.get(f"/v1/jobs/{response.json()['job']['id']}").json()
        waiting = {queue: queued.llen(queue_key(queue)) for queue in ("chat", "ingest")}
        still_held = queued.scard(f"docuchat:__acks__.{worker}.chat")
    finally:
        parts.close()
        queued.close()
    assert first.requeued == [uuid.UUID(job_id)]
    assert first.turns == 1  # the held turn is not waiting: the batch gets one
    assert second.requeued == [] and second.turns == 0  # both wait now: nothing more
    assert job["status"] == "queued" and "held by a worker" in job["error"]
    assert document["status"] == "queued"
    assert waiting == {"chat": 1, "ingest": 1}
    assert still_held == 0  # the worker can no longer acknowledge the copy sent again


FLEET = Fleet(heartbeat_timeout=timedelta(seconds=60), tenant_ingest_share=1)


def _hold(queued: redis.Redis, worker: str) -> None:
    """Move every waiting message into `worker`'s hands, as its fetch does."""
    for queue in ("chat", "ingest"):
        while (copy := queued.lpop(queue_key(queue))) is not None:
            queued.sadd(f"docuchat:__acks__.{worker}.{queue}", copy)

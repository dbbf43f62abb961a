"""A worker killed with SIGKILL mid-ingestion or mid-answer: another worker finishes the job,
with no duplicate chunks, messages or usage.

These tests' API and workers use their own Redis and Postgres databases, so the run's shared
worker cannot take the work first: the workers started here are the only ones.
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest
import redis
from sqlalchemy import Engine, text

from standins.chat_client import ask, read_stream
from standins.documents import costly_pdf, english_pdf, filler
from standins.model_server import StandIn
from tests.ingest_helpers import (
    assert_one_set_of_chunks,
    ingest,
    tenant_client,
    upload,
    wait_for_job,
)
from tests.stack import LiveServer, OwnDatabase, Services, WorkerProcess
from transport.queue import HEARTBEATS_KEY

REPLY = " ".join(f"word{i}" for i in range(40)) + " [1]."

pytestmark = pytest.mark.standin(reply=REPLY, piece_delay=0.05)


def test_two_workers_share_a_document_s_batches_and_a_killed_one_loses_nothing(
    services: Services, own_database: OwnDatabase, redis_database: str
) -> None:
    """One document in six batches of two pages, on two worker processes: both take batches.
    One is SIGKILLed in the middle of a batch; once its heartbeat is past the timeout the
    reaper hands that batch to the other, and the document ends with exactly one set of
    chunks, every page in it, its embedding counted once."""
    engine = own_database.engine
    settings = own_database.settings(
        services,
        REDIS_URL=redis_database,
        WORKER_HEARTBEAT_TIMEOUT_SECONDS="2",
        REAPER_INTERVAL_SECONDS="1",
        INGEST_BATCH_PAGES="2",
        TENANT_INGEST_CONCURRENCY="4",
        RATE_LIMIT_PER_MINUTE="100000",
    )
    pages = [f"Page {n} of the harbour log. " + filler(n, 3) for n in range(1, 13)]
    pdf = costly_pdf([(page, 4_000_000) for page in pages])  # about half a second of CPU a page
    queues = redis.Redis.from_url(settings.redis_url or "")
    with LiveServer(settings) as server, tenant_client(engine, settings, server.url) as client:
        victim = WorkerProcess(settings, threads=1).__enter__()
        try:
            victim_id = _only_heartbeat(queues)
            with WorkerProcess(settings, threads=1):
                response = upload(client, pdf, "log.pdf")
                assert response.status_code == 202, response.text
                job_id = response.json()["job"]["id"]
                document_id = response.json()["document"]["id"]
                claimants: set[str] = set()
                deadline = time.monotonic() + 60
                while True:  # until the victim is part-way through a batch, the other busy too
                    running = _running_batches(engine, document_id)
                    claimants |= {claimant for claimant, _, _ in running}
                    held = [b for claimant, b, done in running if claimant == victim_id and done]
                    if held and len(claimants) == 2:
                        break
                    assert time.monotonic() < deadline, f"no two workers busy: {claimants}"
                    time.sleep(0.02)
                victim.kill()
                job = wait_for_job(client, job_id, timeout=120)
            document = client.get(f"/v1/files/{document_id}").json()
        finally:
            if victim.process is not None and victim.process.poll() is None:
                victim.kill()
            queues.close()
    assert job["status"] == "succeeded", job
    assert document["status"] == "ready" and document["pages"] == len(pages)
    assert_one_set_of_chunks(engine, document, len(pages))
    with engine.connect() as conn:
        handed_on = conn.execute(
            text("SELECT attempts FROM ingest_batches WHERE id = :b"), {"b": held[0]}
        ).scalar_one()
        usage = conn.execute(
            text("SELECT count(*) FROM usage_records WHERE job_id = :j AND kind = 'embedding'"),
            {"j": job_id},
        ).scalar_one()
    assert handed_on == 2, "the killed worker's batch ran again, on the other"
    assert usage == 1, "the embedding usage is counted once"


def _only_heartbeat(queues: redis.Redis, timeout: float = 30) -> str:
    """The id of the one worker whose heartbeat Redis holds (the first to start)."""
    deadline = time.monotonic() + timeout
    while not (members := queues.zrange(HEARTBEATS_KEY, 0, -1)):
        assert time.monotonic() < deadline, "the worker never beat"
        time.sleep(0.05)
    assert len(members) == 1
    return str(members[0].decode())


def _running_batches(engine: Engine, document_id: str) -> list[tuple[str, str, int]]:
    """(claimant, batch id, pages read) of the document's running batches."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT claimed_by, id, pages_done FROM ingest_batches "
                "WHERE document_id = :d AND status = 'running'"
            ),
            {"d": document_id},
        ).all()
    return [(str(claimant), str(batch), int(done)) for claimant, batch, done in rows]


def test_a_killed_worker_s_answer_restarts_on_another_and_is_saved_once(
    services: Services, own_database: OwnDatabase, standin: StandIn, redis_database: str
) -> None:
    engine = own_database.engine
    settings = own_database.settings(
        services,
        REDIS_URL=redis_database,
        WORKER_HEARTBEAT_TIMEOUT_SECONDS="2",
        RATE_LIMIT_PER_MINUTE="100000",
        OPENAI_BASE_URL=standin.base_url,
    )
    pages = ["The copper lantern hangs in the old harbour. " + filler(1, 4)]
    with LiveServer(settings) as server, tenant_client(engine, settings, server.url) as client:
        first = WorkerProcess(settings, threads=1).__enter__()
        try:
            ingest(client, english_pdf(pages), "harbour.pdf")
            started = ask(client, "Where does the copper lantern hang?")
            before = read_stream(client, started["stream_url"], stop_after_deltas=5)
        finally:
            first.kill()
        job_id = started["job_id"]
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"  # orphaned
        with WorkerProcess(settings, threads=1):
            resumed = read_stream(client, started["stream_url"], last_event_id=before.events[-1].id)
            whole = read_stream(client, started["stream_url"])
        messages = _messages(client, started["session_id"])
    assert before.text and REPLY.startswith(before.text)
    assert resumed.names[0] == "restart" and resumed.names[-1] == "end"
    assert whole.names.count("restart") == 1
    assert resumed.text == whole.text == REPLY  # what a client shows after the restart
    assert [m["content"] for m in messages if m["role"] == "assistant"] == [REPLY]
    with engine.connect() as conn:
        kinds = conn.execute(
            text("SELECT kind FROM usage_records WHERE job_id = :j ORDER BY kind"), {"j": job_id}
        ).scalars()
        assert list(kinds) == ["chat", "embedding"]  # counted once each


def _messages(client: httpx.Client, session_id: str) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = client.get(f"/v1/sessions/{session_id}/messages").json()[
        "messages"
    ]
    return messages


def test_sigterm_lets_a_worker_finish_the_answer_it_is_streaming(
    services: Services, own_database: OwnDatabase, standin: StandIn, redis_database: str
) -> None:
    engine = own_database.engine
    settings = own_database.settings(
        services,
        REDIS_URL=redis_database,
        RATE_LIMIT_PER_MINUTE="100000",
        OPENAI_BASE_URL=standin.base_url,
    )
    pages = ["The copper lantern hangs in the old harbour. " + filler(1, 4)]
    with LiveServer(settings) as server, tenant_client(engine, settings, server.url) as client:
        worker = WorkerProcess(settings, threads=1).__enter__()
        try:
            ingest(client, english_pdf(pages), "harbour.pdf")
            started = ask(client, "Where does the copper lantern hang?")
            before = read_stream(client, started["stream_url"], stop_after_deltas=3)
            assert worker.process is not None
            worker.process.send_signal(signal.SIGTERM)  # as a deploy stops it
            rest = read_stream(client, started["stream_url"], last_event_id=before.events[-1].id)
            exit_code = worker.process.wait(timeout=30)
        finally:
            worker.__exit__()
        job = client.get(f"/v1/jobs/{started['job_id']}").json()
    assert "restart" not in rest.names and rest.names[-1] == "end"
    assert before.text + rest.text == REPLY  # the answer it was streaming, finished
    assert job["status"] == "succeeded"
    assert exit_code == 0

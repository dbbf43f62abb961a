"""A worker killed with SIGKILL mid-ingestion or mid-answer: another worker finishes the job,
with no duplicate chunks, messages or usage.

These tests' API and workers use their own Redis databases, so the run's shared worker cannot
take the message first: the one worker alive when the job is queued is the one that dies.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.chat_helpers import ask, read_stream
from tests.conftest import LiveServer, Services, WorkerProcess, settings_for
from tests.ingest_helpers import ingest, tenant_client, upload, wait_for_job
from tests.openai_standin import StandIn
from tests.pdfs import english_pdf, filler

REPLY = " ".join(f"word{i}" for i in range(40)) + " [1]."


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(reply=REPLY, piece_delay=0.05) as server:
        yield server


def test_a_killed_worker_s_job_is_redelivered_and_finished_once(
    services: Services, engine: Engine
) -> None:
    settings = settings_for(
        services,
        REDIS_URL=services.redis_url.rsplit("/", 1)[0] + "/3",
        WORKER_HEARTBEAT_TIMEOUT_SECONDS="2",
        RATE_LIMIT_PER_MINUTE="100000",
    )
    pdf = english_pdf([filler(n, 20) for n in range(20)])
    with LiveServer(settings) as server, tenant_client(engine, settings, server.url) as client:
        first = WorkerProcess(settings, threads=1).__enter__()
        try:
            response = upload(client, pdf, "long.pdf")
            assert response.status_code == 202, response.text
            job_id = response.json()["job"]["id"]
            document_id = response.json()["document"]["id"]
            deadline = time.monotonic() + 60
            while client.get(f"/v1/jobs/{job_id}").json()["progress"].get("stage") != "embedding":
                assert time.monotonic() < deadline, "the first worker never started embedding"
                time.sleep(0.05)
        finally:
            first.kill()
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"  # orphaned
        with WorkerProcess(settings, threads=1):
            job = wait_for_job(client, job_id, timeout=120)
        assert job["status"] == "succeeded", job
        document = client.get(f"/v1/files/{document_id}").json()
    with engine.connect() as conn:
        ordinals = [
            row[0]
            for row in conn.execute(
                text("SELECT ordinal FROM chunks WHERE document_id = :d ORDER BY ordinal"),
                {"d": document_id},
            )
        ]
        usage = conn.execute(
            text(
                "SELECT count(*) FROM usage_records u JOIN documents d "
                "ON d.uploaded_by = u.user_id WHERE d.id = :d AND u.kind = 'embedding'"
            ),
            {"d": document_id},
        ).scalar()
    assert document["status"] == "ready"
    assert ordinals == list(range(document["chunks"])), "exactly one set of chunks"
    assert usage == 1, "the embedding usage is counted once"


def test_a_killed_worker_s_answer_restarts_on_another_and_is_saved_once(
    services: Services, engine: Engine, standin: StandIn
) -> None:
    settings = settings_for(
        services,
        REDIS_URL=services.redis_url.rsplit("/", 1)[0] + "/6",
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
    services: Services, engine: Engine, standin: StandIn
) -> None:
    settings = settings_for(
        services,
        REDIS_URL=services.redis_url.rsplit("/", 1)[0] + "/11",
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
